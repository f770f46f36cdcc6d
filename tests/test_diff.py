"""`genbench diff` on synthetic results trees: identical, within and beyond tolerance, missing rows, extra files,
changed images, and the command's exit codes and summary."""

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from genbench.cli import main
from genbench.tables import write_parquet
from genbench.tables.diff import DiffConfigError, Tolerances, diff_paths, snapshot
from genbench.tables.keys import GEN2D_TABLE_KEYS

KEYS = list(GEN2D_TABLE_KEYS)


def metrics_table() -> pd.DataFrame:
    rows = []
    for steps in (1, 4):
        for cfg in (1.0, 2.0):
            for metric, value in (("fid", 10.0 * steps + cfg), ("is", 3.0 + cfg)):
                rows.append(dict(dataset="mw_val", model="sit_mini", steps=steps, cfg=cfg, seed=0, metric=metric,
                                 value=value, ci_low=value - 1, ci_high=value + 1, n=400, note=""))
    return pd.DataFrame(rows)


def make_tree(root, table=None, image=None, extra=None):
    (root / "tables").mkdir(parents=True)
    (root / "figures").mkdir()
    write_parquet(metrics_table() if table is None else table, root / "tables/gen2d_metrics.parquet",
                  metadata={"key_columns": KEYS, "git_commit": str(root)})  # provenance differs: never compared
    img = np.zeros((20, 30, 3), np.uint8) if image is None else image
    Image.fromarray(img).save(root / "figures/fid_vs_cfg.png")
    (root / "figures/fid_vs_cfg.csv").write_text("cfg,value\n1,10.5\n2,11.0\n")
    (root / "logs").mkdir()
    (root / "logs/run.log").write_text(f"host {root}\n")  # logs differ between runs and are ignored
    for name, text in (extra or {}).items():
        (root / name).write_text(text)
    return root


def test_identical_trees_are_equal(tmp_path):
    a, b = make_tree(tmp_path / "a"), make_tree(tmp_path / "b")
    res = diff_paths(a, b)
    assert res.ok, res.summary()
    assert res.compared == 3  # the table, the image, the csv; not the log
    assert main(["diff", str(a), str(b)]) == 0


def test_value_within_tolerance_passes_and_beyond_fails_naming_the_cell(tmp_path, capsys):
    a = make_tree(tmp_path / "a")
    t = metrics_table()
    hit = (t["steps"] == 4) & (t["cfg"] == 2.0) & (t["metric"] == "fid")
    t.loc[hit, "value"] = 42.0 * (1 + 1e-7)
    b = make_tree(tmp_path / "b", table=t)
    tol_file = tmp_path / "tol.yaml"
    tol_file.write_text(yaml.safe_dump({"tables": {"tables/*.parquet": {"columns": {"value": {"rtol": 1e-6}}}}}))
    assert main(["diff", str(a), str(b), "--tolerances", str(tol_file)]) == 0

    t.loc[hit, "value"] = 43.5
    c = make_tree(tmp_path / "c", table=t)
    capsys.readouterr()
    assert main(["diff", str(a), str(c), "--tolerances", str(tol_file)]) == 1
    out = capsys.readouterr().out
    assert "tables/gen2d_metrics.parquet" in out
    assert "(dataset=mw_val, model=sit_mini, steps=4, cfg=2, seed=0, metric=fid) column 'value': 42 -> 43.5" in out
    assert "DIFFERENT: 1 difference(s) in 1 file(s)" in out


def test_default_tolerance_is_exact(tmp_path):
    a = make_tree(tmp_path / "a")
    t = metrics_table()
    t.loc[0, "ci_high"] += 1e-12
    res = diff_paths(a, make_tree(tmp_path / "b", table=t))
    assert [f.kind for f in res.findings] == ["value"]
    assert "column 'ci_high'" in res.findings[0].message


def test_null_text_cells_equal_on_both_sides_and_differ_from_text(tmp_path):
    t = metrics_table().assign(note=None)  # a text column that is null in every row (parquet: null)
    a = make_tree(tmp_path / "a", table=t)
    assert diff_paths(a, make_tree(tmp_path / "b", table=t.copy())).ok
    t2 = t.copy()
    t2.loc[0, "note"] = "skipped"
    res = diff_paths(a, make_tree(tmp_path / "c", table=t2))
    assert [f.kind for f in res.findings] == ["value"] and "None -> 'skipped'" in res.findings[0].message


def test_missing_and_extra_rows_and_columns(tmp_path):
    a = make_tree(tmp_path / "a")
    t = metrics_table()
    t = t[~((t["steps"] == 1) & (t["cfg"] == 1.0) & (t["metric"] == "is"))]
    extra = t.iloc[[0]].assign(seed=1)
    t = pd.concat([t, extra]).drop(columns=["note"])
    res = diff_paths(a, make_tree(tmp_path / "b", table=t))
    kinds = {f.kind: f.message for f in res.findings}
    assert "(dataset=mw_val, model=sit_mini, steps=1, cfg=1, seed=0, metric=is) missing" in kinds["rows_removed"]
    assert "seed=1" in kinds["rows_added"]
    assert "columns removed ['note']" in kinds["columns"]


def test_extra_and_missing_files_reported(tmp_path):
    a = make_tree(tmp_path / "a")
    b = make_tree(tmp_path / "b", extra={"figures/new.csv": "x\n1\n"})
    (b / "figures/fid_vs_cfg.csv").unlink()
    res = diff_paths(a, b)
    found = {(f.path, f.kind) for f in res.findings}
    assert found == {("figures/new.csv", "added"), ("figures/fid_vs_cfg.csv", "removed")}


def test_changed_image_reported_and_pixel_tolerance(tmp_path):
    a = make_tree(tmp_path / "a")
    img = np.zeros((20, 30, 3), np.uint8)
    img[5, 7] = (3, 0, 0)  # one pixel off by 3
    b = make_tree(tmp_path / "b", image=img)
    res = diff_paths(a, b)
    assert [(f.path, f.kind) for f in res.findings] == [("figures/fid_vs_cfg.png", "image")]
    assert "1 of 600 pixels" in res.findings[0].message and "(max 3)" in res.findings[0].message
    assert diff_paths(a, b, Tolerances.from_dict({"images": {"max_abs": 3}})).ok
    assert diff_paths(a, b, Tolerances.from_dict({"images": {"max_fraction": 0.002}})).ok
    assert not diff_paths(a, b, Tolerances.from_dict({"images": {"max_fraction": 0.001}})).ok
    c = make_tree(tmp_path / "c", image=np.zeros((21, 30, 3), np.uint8))
    assert "size 30x20 -> 30x21" in diff_paths(a, c).findings[0].message


def test_other_files_by_hash_and_two_files_directly(tmp_path):
    a = make_tree(tmp_path / "a", extra={"config.json": '{"a": 1}'})
    b = make_tree(tmp_path / "b", extra={"config.json": '{"a": 2}'})
    res = diff_paths(a, b)
    assert [(f.path, f.kind) for f in res.findings] == [("config.json", "changed")]
    # two files
    assert diff_paths(a / "tables/gen2d_metrics.parquet", b / "tables/gen2d_metrics.parquet").ok
    assert not diff_paths(a / "config.json", b / "config.json").ok


def test_npz_arrays_compared_by_value(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    np.savez(tmp_path / "a/f.npz", x=np.arange(4.0), y=np.arange(3))
    np.savez(tmp_path / "b/f.npz", x=np.arange(4.0) + 1e-9, y=np.arange(3))
    res = diff_paths(tmp_path / "a", tmp_path / "b")
    assert "array 'x': 4 of 4 values differ" in res.findings[0].message
    assert diff_paths(tmp_path / "a", tmp_path / "b", Tolerances.from_dict({"default": {"atol": 1e-8}})).ok


def test_npz_runtime_record_is_provenance_not_data(tmp_path):
    """Two feature files computed on different machines differ in their runtime record (device, versions), which
    is provenance like a Parquet table's metadata: not compared. Their arrays still are."""
    from genbench.io import save_npz

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    save_npz(tmp_path / "a/f.npz", runtime={"features_real": {"device": "cpu"}}, x=np.arange(4.0))
    save_npz(tmp_path / "b/f.npz", runtime={"features_real": {"device": "cuda", "gpu_name": "H100"}},
             x=np.arange(4.0))
    assert diff_paths(tmp_path / "a", tmp_path / "b").ok
    save_npz(tmp_path / "b/f.npz", runtime={"features_real": {"device": "cpu"}}, x=np.arange(4.0) + 1)
    assert "array 'x'" in diff_paths(tmp_path / "a", tmp_path / "b").findings[0].message


def test_safetensors_compared_by_content_not_header_order(tmp_path):
    """safetensors writes its metadata map in no fixed order, so equal checkpoints can differ in bytes."""
    from safetensors.numpy import save_file

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    w = {"w": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)}
    save_file(w, str(tmp_path / "a/m.safetensors"), metadata={"model": "x", "family": "sit"})
    save_file(dict(reversed(list(w.items()))), str(tmp_path / "b/m.safetensors"),
              metadata={"family": "sit", "model": "x"})
    assert diff_paths(tmp_path / "a", tmp_path / "b").ok
    save_file({**w, "w": w["w"] * 2}, str(tmp_path / "b/m.safetensors"), metadata={"family": "sit", "model": "y"})
    msgs = [f.message for f in diff_paths(tmp_path / "a", tmp_path / "b").findings]
    assert any("metadata" in m and "'y'" in m for m in msgs) and any("array 'w': 6 of 6" in m for m in msgs)


def test_include_and_ignore_patterns(tmp_path):
    a = make_tree(tmp_path / "a", extra={"notes.txt": "a"})
    b = make_tree(tmp_path / "b", extra={"notes.txt": "b"})
    assert not diff_paths(a, b).ok
    assert diff_paths(a, b, Tolerances.from_dict({"ignore": ["*.txt"]})).ok
    tol = Tolerances.from_dict({"include": ["tables/*", "figures/*.csv"]})
    res = diff_paths(a, b, tol)
    assert res.ok and res.compared == 2


def test_key_columns_from_tolerance_file_and_duplicate_keys(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    pd.DataFrame({"k": [1, 2], "v": [1.0, 2.0]}).to_csv(a, index=False)
    pd.DataFrame({"k": [2, 1], "v": [2.0, 1.0]}).to_csv(b, index=False)  # same rows, other order
    assert diff_paths(a, b, Tolerances.from_dict({"tables": {"*.csv": {"keys": ["k"]}}})).ok
    pd.DataFrame({"k": [1, 1], "v": [1.0, 2.0]}).to_csv(b, index=False)
    res = diff_paths(a, b, Tolerances.from_dict({"tables": {"*.csv": {"keys": ["k"]}}}))
    assert res.findings[0].kind == "error" and "duplicate keys" in res.findings[0].message


def test_bad_tolerance_file_exits_2_naming_the_key(tmp_path, capsys):
    tol = tmp_path / "tol.yaml"
    tol.write_text("tables:\n  '*.parquet': {columns: {value: {rtoll: 1}}}\n")
    assert main(["diff", str(tmp_path), str(tmp_path), "-t", str(tol)]) == 2
    assert "rtoll" in capsys.readouterr().err
    with pytest.raises(DiffConfigError, match="non-negative"):
        Tolerances.from_dict({"default": {"atol": -1}})
    assert main(["diff", str(tmp_path / "nope"), str(tmp_path)]) == 2


def test_snapshot_copies_included_files_and_drops_stale_ones(tmp_path):
    a = make_tree(tmp_path / "a")
    dest = tmp_path / "golden"
    (dest / "tables").mkdir(parents=True)
    (dest / "tables/stale.parquet").write_text("old")
    tol = Tolerances.from_dict({"include": ["tables/*.parquet", "figures/*.png"]})
    copied = snapshot(a, dest, tol)
    assert copied == ["figures/fid_vs_cfg.png", "tables/gen2d_metrics.parquet"]
    assert not (dest / "tables/stale.parquet").exists()
    assert diff_paths(dest, a, tol).ok


def test_undecodable_images_compared_by_bytes(tmp_path):
    """A deliberately truncated image (the curation's planted corrupt files) is equal to its copy, and a different
    truncation is reported, not an error."""
    import io

    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 7, np.uint8)).save(buf, format="PNG")
    data = buf.getvalue()
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "x.png").write_bytes(data[: len(data) // 3])
    assert diff_paths(tmp_path / "a", tmp_path / "b", Tolerances.from_dict({})).ok
    (tmp_path / "b" / "x.png").write_bytes(data[: len(data) // 2])
    res = diff_paths(tmp_path / "a", tmp_path / "b", Tolerances.from_dict({}))
    assert not res.ok and "undecodable image, contents differ" in res.summary()


def test_metric_kind_tolerances_apply_per_row_per_column_and_per_table(tmp_path):
    """`metrics:` tolerances follow a row's metric kind (FID may move 5 %, IS only 1 %), a column named after a
    metric, or a table that names its metric; a table's own column entry wins, and counts stay exact."""
    a = make_tree(tmp_path / "a")
    t = metrics_table()
    t.loc[t.metric == "fid", "value"] *= 1.04
    t.loc[t.metric == "is", "value"] *= 1.02
    b = make_tree(tmp_path / "b", table=t)
    tol = Tolerances.from_dict({"metrics": {"fid": {"rtol": 0.05}, "is": {"rtol": 0.01}},
                                "include": ["tables/*"]})
    res = diff_paths(a, b, tol)
    assert {f.message.split("column")[0] for f in res.findings} == {
        f"row (dataset=mw_val, model=sit_mini, steps={s}, cfg={c}, seed=0, metric=is) " for s in (1, 4)
        for c in (1, 2)}
    assert all("allowed atol 0 + rtol 0.01" in f.message for f in res.findings)
    # a column named after its metric, and a table that names its metric
    (a / "figures/scaled.csv").write_text("model,fid,fid_ci_low,note\nm,10.0,9.0,x\n")
    (b / "figures/scaled.csv").write_text("model,fid,fid_ci_low,note\nm,10.4,9.4,x\n")
    (a / "figures/step.csv").write_text("model,value,n\nm,10.0,400\n")
    (b / "figures/step.csv").write_text("model,value,n\nm,10.4,401\n")
    tol = Tolerances.from_dict({"metrics": {"fid": {"rtol": 0.05}}, "include": ["figures/s*.csv"],
                                "tables": {"figures/scaled.csv": {"keys": ["model"]},
                                           "figures/step.csv": {"keys": ["model"], "metric": "fid"}}})
    res = diff_paths(a, b, tol)
    assert [(f.path, f.message.split("'")[1]) for f in res.findings] == [("figures/step.csv", "n")]
    tol.tables["figures/step.csv"]["columns"] = {"value": {"rtol": 0.01}}
    assert len(diff_paths(a, b, tol).findings) == 2
    with pytest.raises(DiffConfigError, match="metric 'kid' has no entry"):
        Tolerances.from_dict({"metrics": {"fid": {}}, "tables": {"x": {"metric": "kid"}}})


def test_interval_columns_take_the_metric_ci_tolerance_and_text_numbers_can_be_masked(tmp_path):
    """A metric kind's `ci` tolerance covers its interval columns (their ends move more than the value), and
    `text_numbers: ignore` compares notes with their numbers masked, the wording still exactly."""
    t = metrics_table()
    a = make_tree(tmp_path / "a", table=t.assign(note="r = 5.9 (of 400)"))
    b = make_tree(tmp_path / "b", table=t.assign(ci_low=t.ci_low * 1.03, note="r = 5.899 (of 400)"))
    raw = {"metrics": {"fid": {"rtol": 0.01, "ci": {"rtol": 0.05}}, "is": {"rtol": 0.01}},
           "include": ["tables/*"]}
    res = diff_paths(a, b, Tolerances.from_dict(raw))
    cols = {(f.message.split("metric=")[1].split(")")[0], f.message.split("'")[1]) for f in res.findings}
    assert cols == {("is", "ci_low"), ("fid", "note"), ("is", "note")}  # fid's ci_low within its ci rtol
    res = diff_paths(a, b, Tolerances.from_dict({**raw, "text_numbers": "ignore"}))
    assert {f.message.split("'")[1] for f in res.findings} == {"ci_low"}
    c = make_tree(tmp_path / "c", table=t.assign(ci_low=t.ci_low * 1.03, note="r = 5.899 (of all)"))
    res = diff_paths(a, c, Tolerances.from_dict({**raw, "text_numbers": "ignore"}))
    assert "note" in {f.message.split("'")[1] for f in res.findings}  # changed wording is still a difference
    with pytest.raises(DiffConfigError, match="text_numbers"):
        Tolerances.from_dict({"text_numbers": "fuzzy"})
