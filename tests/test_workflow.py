"""Workflow tests: Snakemake itself on a temporary copy of the workflow (the tiny config end to end, rerun
behaviour, lint, and the paper DAG through the slurm profile with config/paper.yaml)."""

import json
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from wfutil import SNAKEMAKE, copy_workflow, planned_jobs, smk

from genbench.plots.registry import FIGURES as REGISTRY
from genbench.tables import read_metadata, write_parquet
from genbench.tables.diff import Tolerances, diff_paths

# the registered figures (the tiny config draws every one: test_outputs checks it), and those drawn from the
# metrics table
FIGURES = list(REGISTRY)
FROM_METRICS = [name for name, fig in REGISTRY.items() if "gen2d_metrics" in (fig.table, *fig.extra_tables)]
METRICS = {"fid", "is", "is_std", "kid", "kid_std", "clip_score", "pick_score", "csfid", "psfid", "csis", "psis",
           "mmhm", "fd_dinov2", "kd_dinov2", "kd_dinov2_std", "precision", "recall", "density", "coverage", "vendi",
           "cmmd", "fid_inf", "sfid"}
SIT_CELLS = 8  # sit_tiny: 2 data sets x 2 step counts x 2 guidance scales
CELLS = SIT_CELLS + 2 + 2 + 1  # + meanflow_tiny and soflow_tiny at 1 and 2 steps on mw_val, sit_tiny on the
# curated mw_relaionet

pytestmark = pytest.mark.workflow


def test_tiny_end_to_end(tiny_run):
    table = pd.read_parquet(tiny_run / "results/tables/gen2d_metrics.parquet")
    assert len(table) == CELLS * len(METRICS)
    assert set(table["metric"]) == METRICS
    assert set(table["model"]) == {"sit_tiny", "meanflow_tiny", "soflow_tiny"}
    # every family records its own NFE: Heun 2 per step, MeanFlow and SoFlow 1 per step
    nfe = table.drop_duplicates(["model", "steps"]).set_index(["model", "steps"])["nfe"]
    assert nfe.to_dict() == {("sit_tiny", 1): 2, ("sit_tiny", 2): 4, ("meanflow_tiny", 1): 1,
                             ("meanflow_tiny", 2): 2, ("soflow_tiny", 1): 1, ("soflow_tiny", 2): 2}
    table = table[table["model"] == "sit_tiny"]
    kid = table[(table["metric"] == "kid") & table["dataset"].isin(["mw_val", "mw_v2"])]
    assert (kid["note"] == "10 subsets of 40 (shrunk from 1000)").all()
    assert set(zip(table["steps"], table["cfg"], strict=True)) == {(1, 1.0), (1, 2.0), (2, 1.0), (2, 2.0)}
    # the config's order, not alphabetical; the curated data set is scored like the others
    assert list(dict.fromkeys(table["dataset"])) == ["mw_val", "mw_v2", "mw_relaionet"]
    fid = table[table["metric"] == "fid"]
    assert (fid["value"] > 0).all() and fid["value"].notna().all()
    assert (fid["ci_low"] <= fid["ci_high"]).all()
    # the trained tiny model: two Heun steps beat one on both data sets, and the shifted V2 split scores worse
    by = fid.set_index(["dataset", "steps", "cfg"])["value"]
    for ds in ("mw_val", "mw_v2"):
        assert by[ds, 2, 1.0] < by[ds, 1, 1.0]
    assert by["mw_v2", 2, 1.0] > by["mw_val", 2, 1.0]
    # Heun: 2 evaluations per step
    assert sorted(set(fid["nfe"])) == [2, 4]
    meta = read_metadata(tiny_run / "results/tables/gen2d_metrics.parquet")
    assert meta["config_hash"] and "torch" in meta["versions"]
    assert meta["extractors"]["mw_classifier"]["kind"] == "miniworld_classifier"
    for name in FIGURES:
        for ext in ("pdf", "png", "csv"):
            assert (tiny_run / f"results/figures/{name}.{ext}").stat().st_size > 0
    assert len(list((tiny_run / "results/gen2d/sit_tiny/mw_val/steps1_cfg2/seed0").glob("shard-*.npz"))) == 2
    assert (tiny_run / "results/logs/generate/sit_tiny/mw_val/steps1_cfg2/seed0/shard-1.log").exists()


def test_tiny_curation(tiny_run):
    """The curation stages end to end on the tiny laion split: every candidate has one final reason, each planted
    fault is caught by its check, accepted items are in the manifest with their files, the datasheet and the
    coverage figure exist, and the curated manifest feeds the sweep."""
    cur = tiny_run / "results/curate/mw_relaionet"
    cands = pd.read_parquet(cur / "candidates.parquet")
    status = pd.read_parquet(cur / "status.parquet").set_index("item_id")
    assert len(status) == len(cands) == 24
    planted = cands.set_index("item_id")["mw_planted"]
    reason = status["reason"]
    assert len(reason[planted == "failed"]) == 1 and (reason[planted == "failed"] == "download").all()
    checks = pd.read_parquet(cur / "checks.parquet").set_index("item_id")
    for kind, check in (("repost", "dup_within"), ("eval_copy", "dup_eval"), ("unsafe", "nsfw"),
                        ("corrupt", "decode")):
        (item,) = planted.index[planted == kind]
        # a planted item that reaches the checks fails its own one (and is excluded, by it or an earlier check);
        # one whose caption fails lemma matching or the text filter never gets there
        if item in checks.index:
            assert not checks.loc[item, f"{check}_ok"] and not status.loc[item, "accepted"], kind
        else:
            assert reason[item] in {"no_lemma", "multiple_synsets", "text_similarity"}, kind
    manifest = pd.read_parquet(tiny_run / "results/data/mw_relaionet/manifest.parquet")
    assert set(manifest["item_id"]) == set(status.index[status["accepted"]])
    assert all((tiny_run / "results/data/mw_relaionet" / p).is_file() for p in manifest["path"])
    assert (manifest["split"] == "relaionet").all() and manifest["prompt"].str.startswith("a photo of a ").all()
    reasons = pd.read_parquet(tiny_run / "results/tables/curation_mw_relaionet_reasons.parquet")
    assert reasons["items"].sum() == 24
    catch = pd.read_parquet(tiny_run / "results/tables/curation_mw_relaionet_catch.parquet")
    assert list(catch["stage"]) == ["text filter", "automatic checks", "human review + policy"]
    assert catch["recall"].is_monotonic_increasing
    agree = pd.read_parquet(tiny_run / "results/tables/curation_mw_relaionet_agreement.parquet")
    assert len(agree) == 1 and agree.loc[0, "n_common"] > 0
    per_class = pd.read_csv(tiny_run / "results/figures/curation_coverage_mw_relaionet.csv")
    assert per_class["accepted"].sum() == len(manifest)
    assert (per_class["matched"] >= per_class["text_filter"]).all() and (
        per_class["text_filter"] >= per_class["checks"]).all()
    assert "## Reviewer agreement" in (cur / "datasheet.md").read_text()
    queue = pd.read_parquet(cur / "review_queue.parquet")
    assert set(queue["item_id"]) <= set(status.index)


def test_recon3d_tables_and_figures(tiny_run):
    """The 3D track end to end: phantoms and solids x (a baseline, the GT ceiling) x (legacy, corrected)."""
    items = pd.read_parquet(tiny_run / "results/tables/recon3d_items.parquet")
    summary = pd.read_parquet(tiny_run / "results/tables/recon3d_summary.parquet")
    assert set(items["protocol"]) == {"legacy", "corrected"} and set(items["model"]) == {"revolution", "ceiling"}
    assert (items["status"] == "ok").all()
    # the medical legacy protocol scores the reconstruction of the seed code's slice, the corrected one the new slice
    ph = items[items["dataset"] == "mw_phantoms"]
    assert set(ph.loc[ph["protocol"] == "legacy", "input"]) == {"legacy_input"}
    assert set(ph.loc[ph["protocol"] == "corrected", "input"]) == {"input"}
    cor = summary[summary["protocol"] == "corrected"].set_index(["dataset", "model", "metric"]).sort_index()
    for ds in ("mw_phantoms", "mw_solids"):  # the ceiling is the ceiling
        v = cor.loc[ds, "value"]
        assert v["ceiling", "solid_iou"] > 0.9 > v["revolution", "solid_iou"]
        assert v["ceiling", "fscore@0.01"] > 3 * v["revolution", "fscore@0.01"]
        # with 2,000 samples the points lie ~0.035 apart: F@0.01 cannot reach 1 and the table says so
        assert cor.loc[(ds, "ceiling", "sample_spacing"), "value"] > 0.01
        assert "raise the protocol's samples" in cor.loc[(ds, "ceiling", "fscore@0.01"), "note"]
        assert pd.isna(cor.loc[(ds, "ceiling", "chamfer_l1"), "note"])
    protocols = pd.read_csv(tiny_run / "results/figures/recon3d_protocols.csv")
    assert not protocols.duplicated(["dataset", "model", "item_id"]).any()
    assert {"legacy_f1", "corrected_fscore@0.01", "legacy_point_bin_iou", "corrected_solid_iou"} <= set(protocols)
    row = summary.iloc[0]
    assert row["ci_low"] <= row["value"] <= row["ci_high"] and row["n_failed"] == 0
    assert summary.loc[summary["model"] == "ceiling", "ceiling"].all()
    meta = read_metadata(tiny_run / "results/tables/recon3d_summary.parquet")
    assert meta["protocols"]["corrected"]["samples"] == 2000 and meta["reconstructors"]["revolution"]["kind"]
    for name in ("recon3d_bars", "recon3d_protocols", "recon3d_grid"):
        for ext in ("pdf", "png", "csv"):
            assert (tiny_run / f"results/figures/{name}.{ext}").stat().st_size > 0
    assert (tiny_run / "results/logs/score_3d/mw_solids/revolution.log").exists()


def test_per_class_table(tiny_run):
    per = pd.read_parquet(tiny_run / "results/tables/gen2d_per_class.parquet")
    assert len(per) == CELLS * 4 * 4  # cells x classes x (fid, is, clip_score, pick_score)
    assert set(per["class_name"]) == {"circle", "square", "triangle", "star"}
    # (the curated set has classes with a single image, whose per-class FID is undefined: NaN)
    fid = per[(per["metric"] == "fid") & per["dataset"].isin(["mw_val", "mw_v2"])]
    assert fid["value"].notna().all() and (fid["ci_low"] <= fid["ci_high"]).all()
    assert read_metadata(tiny_run / "results/tables/gen2d_per_class.parquet")["key_columns"][-2:] == \
        ["label_id", "metric"]


def test_text_image_metrics_and_mmhm(tiny_run):
    """CLIP Score / PickScore from the tiny CLIP trained on mini-world captions: guidance raises the agreement of
    two-step samples with their prompts; the scaled metrics and MMHM follow their definitions row by row."""
    t = pd.read_parquet(tiny_run / "results/tables/gen2d_metrics.parquet")
    v = t[t["model"] == "sit_tiny"].set_index(["dataset", "steps", "cfg", "metric"])["value"]
    for ds in ("mw_val", "mw_v2"):
        assert v[ds, 2, 2.0, "clip_score"] > v[ds, 2, 1.0, "clip_score"]
    va = t.set_index(["model", "dataset", "steps", "cfg", "metric"])["value"]
    clip = t[t["metric"] == "clip_score"]
    real = clip["note"].str.extract(r"CLIP Score ([0-9.]+)$")[0].astype(float)
    assert (real > 0).all() and (clip["ci_low"] <= clip["value"]).all() and (clip["value"] <= clip["ci_high"]).all()
    for row in clip.itertuples():
        r = row.value / float(row.note.rsplit(" ", 1)[1])
        key = (row.model, row.dataset, row.steps, row.cfg)
        assert va[(*key, "csfid")] == pytest.approx(va[(*key, "fid")] / r, rel=1e-3)
    mmhm = t[t["metric"] == "mmhm"]
    assert len(mmhm) == CELLS
    bounds = json.loads((tiny_run / "results/tables/mmhm_bounds.json").read_text())["bounds_per_dataset"]
    assert set(bounds) == {"mw_val", "mw_v2", "mw_relaionet"}
    assert set(bounds["mw_val"]) == {"FID", "IS", "CLIP Score", "Pick Score"}
    # each row recomputed from its four metrics and the saved per-data-set bounds (the seed paper's formula)
    names = {"fid": "FID", "is": "IS", "clip_score": "CLIP Score", "pick_score": "Pick Score"}
    for row in mmhm.itertuples():
        inv = 0.0
        for metric, key in names.items():
            lo, hi = bounds[row.dataset][key]["min"], bounds[row.dataset][key]["max"]
            x = va[(row.model, row.dataset, row.steps, row.cfg, metric)]
            u = 1.0 if hi == lo else ((hi - x) if metric == "fid" else (x - lo)) / (hi - lo)
            inv += 1 / (1e-3 + u)
        assert row.value == pytest.approx(4 / inv, rel=1e-9)
    train = json.loads((tiny_run / "results/embedders/mw_clip/train.json").read_text())
    assert train["zero_shot_train_accuracy"] > 0.5  # 4 classes: chance is 0.25


def test_features_and_embeddings_computed_once_per_set(root, tmp_path):
    """Real-set features/embeddings once per data set, generated ones once per cell, whatever the metrics."""
    wd = copy_workflow(root, tmp_path)
    shutil.copy(root / "tests/config/tiny.yaml", wd / "config/config.yaml")
    jobs = planned_jobs(smk(wd, "-n", "--forceall").stdout)
    # (classifier, DINOv2) x (mw_val, mw_v2, mw_relaionet)
    assert jobs["features_real"] == 2 * 3 and jobs["embed_real"] == 3
    # one job per cell writes the features of both extractors and the tiny CLIP's image embeddings
    assert jobs["cell_features"] == CELLS and "features_gen" not in jobs and "embed_gen" not in jobs
    assert jobs["train_extractor"] == jobs["train_embedder"] == jobs["init_extractor"] == 1
    assert jobs["train_generator"] == 3 and jobs["score_cell"] == CELLS


def test_paper_tables_exported(tiny_run):
    md = (tiny_run / "results/tables/gen2d_best.md").read_text()
    table, _, footnote = md.strip().partition("\n\n")
    lines = table.splitlines()
    assert lines[0] == ("| dataset | model | steps | cfg | seed | NFE | FID | IS | KID×10³ | FD-DINOv2 | KD-DINOv2 | "
                        "CLIP Score | PickScore | csFID | psFID | csIS | psIS | MMHM | Precision | Recall | Density | "
                        "Coverage | Vendi | CMMD | FID∞ | sFID | "
                        "FID vs other cfg (paired, Holm p_adj; * significant) |")
    # header + rule + sit (2 data sets x 2 steps) + one-step models (2 each) + sit on the curated set
    assert len(lines) == 2 + 2 * 2 + 2 + 2 + 1
    # KID over 10-40 images: every subset is the whole set, so no spread is shown, and the footnote says why
    assert "†" in lines[2] and footnote.startswith("† no spread shown")
    fid = pd.read_parquet(tiny_run / "results/tables/gen2d_metrics.parquet").query(
        "metric == 'fid' and model == 'sit_tiny'")
    best = fid.loc[fid.groupby(["dataset", "steps"])["value"].idxmin()]
    for r in best.itertuples():
        assert f"| {r.dataset} | sit_tiny | {r.steps} | {r.cfg:g} | 0 | {r.nfe} | {r.value:.4g} [" in md
    tex = (tiny_run / "results/tables/gen2d_sweep.tex").read_text()
    assert r"\toprule" in tex and "sit\\_tiny" in tex and tex.count(r" \\") == 1 + CELLS
    html = (tiny_run / "results/tables/gen2d_sweep.html").read_text()
    assert html.count("<tr>") == 1 + CELLS


# the rules whose stages run a network (and so import torch), by their log folder under results/logs; every
# other job (scoring, statistics, 3D geometry, aggregation, figures, curation bookkeeping) must not import it
TORCH_LOGS = {"generate", "cell_features", "features_real", "embed_real", "train_generator", "train_extractor",
              "train_embedder", "init_extractor", "convert_weights", "curate_text_filter", "curate_checks",
              "appearance_3d", "statistics/metric_validation.log"}


def test_only_network_rules_import_torch(tiny_run):
    """Every job ends its log with its cost line (genbench.jobinfo), and a job imports torch only when its rule
    runs a network: the others start in about a second, which matters in a DAG of thousands of jobs."""
    from genbench.jobinfo import parse

    logs = tiny_run / "results/logs"
    seen, wrong, missing = 0, [], []
    for path in sorted(logs.rglob("*.log")):
        rel = path.relative_to(logs)
        info = parse(path.read_text(errors="replace"))
        if info is None:
            missing.append(str(rel))
            continue
        seen += 1
        allowed = rel.parts[0] in TORCH_LOGS or rel.as_posix() in TORCH_LOGS
        if info["torch"] and not allowed:
            wrong.append(str(rel))
    assert not missing, f"jobs without a cost line: {missing}"
    assert not wrong, f"these jobs imported torch without running a network: {wrong}"
    assert seen >= 100


def test_second_run_is_noop(tiny_run):
    out = smk(tiny_run, "-n", "--cores", "2")
    assert planned_jobs(out.stdout + out.stderr) == {}


def test_deleted_figure_rebuilds_alone(tiny_run):
    (tiny_run / "results/figures/fid_vs_cfg.pdf").unlink()
    out = smk(tiny_run, "-n", "results/figures/fid_vs_cfg.pdf")
    assert planned_jobs(out.stdout + out.stderr) == {"figure_fid_vs_cfg": 1}
    smk(tiny_run, "--cores", "1", "results/figures/fid_vs_cfg.pdf")
    assert (tiny_run / "results/figures/fid_vs_cfg.pdf").exists()


def test_changed_table_rebuilds_only_what_is_drawn_from_it(tiny_run):
    """A table whose content changes outdates exactly the figures and exports drawn from it. A bare touch (same
    content) outdates nothing: Snakemake 9 compares the checksums of small inputs, not only their mtimes."""
    path = tiny_run / "results/tables/gen2d_metrics.parquet"
    original = path.read_bytes()
    os.utime(path)
    assert planned_jobs(smk(tiny_run, "-n", "--cores", "1").stdout) == {}
    table = pd.read_parquet(path)
    table.loc[0, "value"] *= 1.01
    write_parquet(table, path, read_metadata(path))
    out = smk(tiny_run, "-n", "--cores", "1")
    # the sweep's figures and the metric correlation figure (statistics.smk) are drawn from the metrics table
    expected = ({f"figure_{name}": 1 for name in [*FROM_METRICS, "metric_correlation"]}
                | {"export_gen2d_tables": 1, "all": 1})
    assert planned_jobs(out.stdout + out.stderr) == expected  # not per_class_fid: drawn from the per-class table
    path.write_bytes(original)  # back to the run's own table: up to date again, nothing rebuilt
    assert planned_jobs(smk(tiny_run, "-n", "--cores", "1").stdout) == {}


def test_golden_artifacts(tiny_run, root):
    """The tiny CI config reproduces the committed golden tables and figures (`make golden` regenerates them)."""
    tol = Tolerances.load(root / "tests/golden/tolerances.yaml")
    res = diff_paths(root / "tests/golden", tiny_run / "results", tol)
    assert res.ok, res.summary() + "\n(if the change is intended: `make golden`, then review git diff tests/golden)"
    assert res.compared >= 8


def test_report_shows_every_figure_and_table(tiny_run, tmp_path):
    """`snakemake --report` builds the HTML report; headless Chromium opens it and every figure and table displays
    with its caption (screenshots in the test's tmp dir)."""
    report = tiny_run / "results/report.html"
    smk(tiny_run, "--report", str(report))
    captions = {name: (tiny_run / f"workflow/report/figures/{name}.rst").read_text() for name in FIGURES}
    check_report(report, captions, {"gen2d_sweep": CELLS, "gen2d_best": 9}, tmp_path)
    # the 3D summary table (2 data sets x 2 reconstructors), the curation coverage figure and datasheet (issue 22)
    check_report(report, {}, {"recon3d_summary": 4}, tmp_path, category="3D track")
    coverage = (tiny_run / "workflow/report/curation/coverage.rst").read_text()
    check_report(report, {"curation_coverage_mw_relaionet": coverage}, {}, tmp_path, category="Curation",
                 pages={"mw_relaionet": ("Datasheets", "Reviewer agreement")})


def check_report(report, captions: dict[str, str], tables: dict[str, int], shots, category: str = "2D track",
                 pages: dict[str, tuple[str, str]] | None = None) -> None:
    """Open the Snakemake report in headless Chromium: in ``category``, each figure (name -> caption) shows as a
    decoded PNG with its caption; each table (name -> rows) shows its rows; each HTML page (label -> (subcategory,
    a text it holds)) shows that text."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the report test needs Debian's chromium (make test installs it as root: TEST_DEB_PACKAGES)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri())

        def open_list(sub: str) -> None:  # Results -> category -> Figures|Tables, from the start page
            page.goto(report.as_uri())
            for label in ("Results", category, sub):
                page.get_by_text(label, exact=True).first.click()

        for name, caption in captions.items():
            open_list("Figures")
            row = page.locator("tr", has_text=name)
            row.locator("a[iconname=eye]").click()
            img = page.locator(f"img[src^='data:image/png'][src*='filename={name}.png']")
            img.wait_for(timeout=10_000)
            assert img.evaluate("e => e.complete && e.naturalWidth > 100 && e.naturalHeight > 100"), name
            page.screenshot(path=str(shots / f"{name}.png"))
            row.locator("a[iconname=information-circle]").click()
            page.get_by_text("DESCRIPTION").wait_for(timeout=10_000)
            assert " ".join(caption.split()[:6]) in " ".join(page.inner_text("body").split()), name
        for name, n_rows in tables.items():
            open_list("Tables")
            page.locator("tr", has_text=name).locator("a[iconname=eye]").click()
            body = page.frame_locator("iframe").locator("table tbody tr")
            body.first.wait_for(timeout=10_000)
            assert body.count() == n_rows, name
            page.screenshot(path=str(shots / f"{name}.png"))
        for name, (sub, text) in (pages or {}).items():
            open_list(sub)
            page.locator("tr", has_text=name).locator("a[iconname=eye]").click()
            page.frame_locator("iframe").get_by_text(text).first.wait_for(timeout=10_000)
            page.screenshot(path=str(shots / f"{sub}_{name}.png"))
        browser.close()
    assert not errors, errors


def test_bad_config_fails_at_start_with_key(root, tmp_path):
    wd = copy_workflow(root, tmp_path)
    text = (root / "tests/config/tiny.yaml").read_text().replace("is_splits: 4", "is_spilts: 4")
    (wd / "config/config.yaml").write_text(text)
    out = smk(wd, "-n", check=False)
    assert out.returncode != 0
    assert "is_spilts" in out.stdout + out.stderr and "scoring" in out.stdout + out.stderr


def test_lint_is_clean(root, tmp_path):
    wd = copy_workflow(root, tmp_path)
    out = smk(wd, "--lint", check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "Lints for" not in text, text


def test_snakefmt_is_clean(root):
    """The Snakefile and the rules are formatted by snakefmt at the project's line length ([tool.snakefmt] in
    pyproject.toml), as `make lint` checks; a change to them is followed by `snakefmt workflow`."""
    out = subprocess.run([sys.executable, "-m", "snakefmt", "--config", "pyproject.toml", "--check", "workflow"],
                         cwd=root, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, f"{text}\nrun `snakefmt workflow` from the repo root"
    checked = re.search(r"(\d+) file\(s\) would be left unchanged", text)
    assert checked and int(checked.group(1)) >= 12, text  # workflow/Snakefile and every rule file


def test_paper_dag_through_slurm_profile(root, tmp_path):
    """The documented cluster command (`--profile profiles/slurm --configfile config/paper.yaml`) builds the full
    paper DAG on a machine without SLURM, GPUs on the GPU rules."""
    wd = copy_workflow(root, tmp_path)
    out = smk(wd, "-n", "--profile", "profiles/slurm", "--configfile", "config/paper.yaml", "--forceall", "--",
              "results/tables/gen2d_metrics.parquet", "results/tables/recon3d_summary.parquet",
              "results/curate/relaionet_curated/datasheet.md")
    jobs = planned_jobs(out.stdout + out.stderr)
    assert jobs["generate"] > 1000 and jobs["score_cell"] >= 8 * 3
    # the 3D sweep: every data set x reconstructor, external models on a GPU, the baselines without
    paper = yaml.safe_load((root / "config/paper.yaml").read_text())
    n3d = len(paper["recon3d"]["datasets"]) * len(paper["recon3d"]["models"])
    assert jobs["reconstruct_3d"] == jobs["score_3d"] == n3d and jobs["prepare_3d"] == len(paper["datasets3d"])
    app = paper["recon3d"]["appearance"]["datasets"]
    assert jobs["appearance_3d"] == len(app) * len(paper["recon3d"]["models"])
    blocks = {b.split("output: ")[1].split("\n")[0]: b for b in out.stdout.split("rule reconstruct_3d:")[1:]}
    assert "gpu=1" in blocks["results/recon3d/gso/trellis/reconstructions.parquet"]
    assert "gpu=0" in blocks["results/recon3d/gso/revolution/reconstructions.parquet"]
    assert jobs["convert_weights"] == 1  # MeanFlow's Flax checkpoint, converted once before its generation jobs
    assert "mw_train" not in out.stdout  # the mini-world config is replaced, not merged
    gen_block = out.stdout.split("rule generate:")[1].split("\n\n")[0]
    assert "gpu=1" in gen_block
    # the whole paper sweep: every model of config/paper.yaml on every data set of the sweep
    swept = {d for entry in paper["sweep"] for d in entry["datasets"]}
    assert swept == {"imagenet_val", "imagenetv2", "relaionet"}
    for model in paper["models"]:
        for dataset in swept:
            assert f"results/gen2d/{model}/{dataset}/" in out.stdout, (model, dataset)
    # the reLAIONet curation: download on a connected node, CLIP stages on a GPU
    for rule in ("laion_download", "curate_ingest", "curate_match", "curate_text_filter", "curate_checks",
                 "curate_final", "curate_datasheet"):
        assert jobs[rule] == 1, rule
    assert "gpu=1" in out.stdout.split("rule curate_checks:")[1].split("\n\n")[0]


def test_profile_by_name_after_make_slurm_profile(root, tmp_path):
    """`make slurm-profile` is the one documented step that makes `--profile slurm` resolve from the repo root; the
    paper config is named on the command line (the profile chooses none)."""
    wd = tmp_path / "repo"
    wd.mkdir()
    copy_workflow(root, wd)
    shutil.copy2(root / "Makefile", wd / "Makefile")
    home = tmp_path / "home"
    home.mkdir()
    subprocess.run(["make", "-s", "slurm-profile", f"HOME={home}"], cwd=wd, check=True, capture_output=True)
    assert (home / ".config/snakemake/slurm/config.yaml").exists()
    env = dict(os.environ, HOME=str(home))
    # `--` ends --configfile's list of files (it takes several), so the target is not read as a config
    out = subprocess.run([*SNAKEMAKE, "-n", "--profile", "slurm", "--configfile", "config/paper.yaml", "--",
                          "results/tables/gen2d_metrics.parquet"], cwd=wd, capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = planned_jobs(out.stdout + out.stderr)
    assert jobs["score_cell"] >= 8 * 3 and jobs["generate"] > 1000  # the paper sweep, not the mini-world
