"""``genbench plan``: what a config will cost before anyone submits its jobs.

The jobs come from Snakemake itself (a forced dry run of the config: every job the config's DAG holds, with its
rule, wildcards, threads and resources). What a job costs comes from jobs that already ran: Snakemake's benchmark
records (``benchmark:`` of every rule: wall seconds, CPU seconds, peak RSS) and the sizes of their outputs, of a
pilot run (by default the config's own results so far) or of a costs file. Each rule's cost (each model's, for
training and generation) is fitted per job as ``a + b * work``, where work is the images (or 3D items) a job
processes, times the sampling steps for generation: a pilot with a few small cells then predicts the full sweep.
Every number in the plan names where it came from.

Formulas and their limits: docs/scale.md ("Planning a run").
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from . import layout
from .config import model_shards
from .errors import GenbenchError

# How a rule's jobs scale. "dataset": a job processes every item of the data set named by its `dataset` (or
# `dataset3d`) wildcard
# (a real set's features, a cell's features and scores, a 3D set's reconstructions). "shard": one shard of a cell's
# generation (the data set's items / the model's shards). Other rules cost the same per job (training, tables,
# figures): their a + b * items fit has items = 1. tests/test_plan.py checks that every rule named here exists.
ITEM_RULES: dict[str, str] = {
    "prepare_dataset": "dataset",
    "features_real": "dataset",
    "embed_real": "dataset",
    "generate": "shard",
    "cell_features": "dataset",
    "score_cell": "dataset",
    "prepare_3d": "dataset",
    "reconstruct_3d": "dataset",
    "score_3d": "dataset",
    "appearance_3d": "dataset",
}

# Rules whose cost depends on the model (a paper model costs orders of magnitude more than another): their costs are
# kept per model, as "rule[model]", and a model without a recorded cost stays unknown rather than borrowing
# another's. For generate the work of an item is its sampling steps (network evaluations grow with them); CFG's
# second pass, where a family makes one, is not modelled: a pilot should cover the sweep's guidance settings.
PER_MODEL_RULES = ("train_generator", "convert_weights", "generate")
STEPS_RULES = ("generate",)

# The items of the official releases the 2D adapters read, for planning before a set is prepared (a prepared set's
# manifest, or `expected_items` in its config entry, take precedence). ILSVRC2012 validation: 50,000 images;
# ImageNetV2 (each variant): 10,000.
OFFICIAL_ITEMS: dict[str, int] = {"imagenet_val": 50_000, "imagenetv2": 10_000}

NO_COST = "no recorded cost: run a few of its jobs first (a pilot), or give --costs"


class PlanError(GenbenchError):
    """A plan that cannot be made (the dry run failed, a costs file is malformed): one line naming what and why."""


@dataclass
class Job:
    rule: str
    wildcards: dict[str, str] = field(default_factory=dict)
    resources: dict[str, str] = field(default_factory=dict)
    threads: int = 1
    outputs: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    benchmark: str | None = None

    @property
    def gpus(self) -> int:
        return int(float(self.resources.get("gpu", 0) or 0))


def _split_files(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _split_pairs(value: str) -> dict[str, str]:
    out = {}
    for part in re.split(r",\s+(?=\w+=)", value.strip()):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of a Snakemake dry run's output (the blocks that start with ``rule NAME:`` or ``localrule NAME:``)."""
    jobs: list[Job] = []
    current: Job | None = None
    for line in text.splitlines():
        m = re.match(r"^(?:local)?(?:rule|checkpoint) (\S+):$", line)
        if m:
            current = Job(m.group(1))
            jobs.append(current)
            continue
        if current is None:
            continue
        f = re.match(r"^    (\w+): (.*)$", line)
        if not f:
            current = None
            continue
        key, value = f.groups()
        if key == "wildcards":
            current.wildcards = _split_pairs(value)
        elif key == "resources":
            current.resources = _split_pairs(value)
        elif key == "threads":
            current.threads = int(value)
        elif key == "output":
            current.outputs = _split_files(value)
        elif key == "log":
            current.log = _split_files(value)
        elif key == "benchmark":
            current.benchmark = value.strip()
    return jobs


def dry_run(directory: str | Path, configfile: str | Path | None = None, cores: int = 256) -> list[Job]:
    """Every job of the config's DAG (a forced dry run in ``directory``: nothing runs, nothing is written but
    Snakemake's own metadata). ``cores`` is high so that no rule's threads are capped by this machine's cores."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "-F", "--nolock", "--cores", str(cores)]
    if configfile is not None:
        cmd += ["--configfile", str(Path(configfile).resolve())]
    proc = subprocess.run(cmd, cwd=directory, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-5:]
        raise PlanError(f"the dry run in {directory} failed: {' | '.join(last)}; run `snakemake -n` there to see why")
    jobs = parse_dry_run(proc.stdout + "\n" + proc.stderr)
    if not jobs:
        raise PlanError(f"the dry run in {directory} listed no jobs; is there a Snakefile?")
    return [j for j in jobs if j.rule != "all"]


def load_run_config(directory: str | Path, configfile: str | Path | None) -> dict[str, Any]:
    """The config a dry run in ``directory`` uses: ``configfile``, else the default config/config.yaml there."""
    from .config import ConfigError, load_config

    path = Path(configfile) if configfile is not None else Path(directory) / "config" / "config.yaml"
    if not path.is_file():
        raise PlanError(f"{path}: no such config; give --configfile")
    try:
        return load_config(path)  # the schema's defaults filled in, as the workflow sees it
    except ConfigError as e:
        raise PlanError(f"{path}: {' '.join(str(e).split())}") from e


def _declared_size(section: str, spec: dict[str, Any], config: dict[str, Any]) -> tuple[int, str] | None:
    """A data set's size from its config alone, for the adapters whose size the config fixes."""
    adapter = spec.get("adapter")
    if adapter in OFFICIAL_ITEMS:
        return OFFICIAL_ITEMS[adapter], f"the official {adapter} release"
    if adapter == "miniworld":
        mw = config.get("miniworld") or {}
        per_class = (mw.get("per_class") or {}).get(spec.get("split"))
        if per_class is not None and mw.get("classes"):
            return int(per_class) * len(mw["classes"]), "miniworld.per_class x classes"
    if section == "datasets3d" and adapter == "phantoms" and "cases" in spec:
        return int(spec["cases"]), "its cases"
    if section == "datasets3d" and adapter == "procedural" and "objects" in spec:
        return int(spec["objects"]), "its objects"
    return None


def dataset_sizes(config: dict[str, Any], directory: str | Path,
                  given: dict[str, int] | None = None) -> dict[str, tuple[int | None, str]]:
    """Items per data set (2D and 3D) and where the number comes from: ``given`` (``genbench plan --items``), the
    prepared manifest in ``directory``, what the adapter's settings fix, the official release's size, or unknown."""
    out: dict[str, tuple[int | None, str]] = {}
    given = given or {}
    unknown = [name for name in given if name not in (config.get("datasets") or {})
               and name not in (config.get("datasets3d") or {})]
    if unknown:
        raise PlanError(f"--items {unknown[0]}: no such data set in the config; use a name under datasets or "
                        "datasets3d")
    for section, where in (("datasets", layout.manifest), ("datasets3d", layout.manifest3d)):
        for name, spec in (config.get(section) or {}).items():
            manifest = Path(directory) / where(name)
            declared = _declared_size(section, spec or {}, config)
            if name in given:
                out[name] = (int(given[name]), "--items")
            elif manifest.is_file():
                out[name] = (len(pd.read_parquet(manifest, columns=[])), f"the prepared manifest {manifest}")
            elif declared is not None:
                out[name] = (declared[0], f"{section}.{name}: {declared[1]}")
            else:
                out[name] = (None, "unknown until prepared: give --items NAME=N")
    return out


def cost_key(job: Job) -> str:
    """What a job's cost is kept under: the rule, or ``rule[model]`` for the rules whose cost depends on the model."""
    if job.rule in PER_MODEL_RULES and "model" in job.wildcards:
        return f"{job.rule}[{job.wildcards['model']}]"
    return job.rule


def job_work(job: Job, config: dict[str, Any], sizes: dict[str, tuple[int | None, str]]) -> int | None:
    """The units a job's cost is fitted against: its items, times its sampling steps for generation."""
    items = job_items(job, config, sizes)
    if items is not None and job.rule in STEPS_RULES and job.wildcards.get("steps", "").isdigit():
        return items * int(job.wildcards["steps"])
    return items


def job_items(job: Job, config: dict[str, Any], sizes: dict[str, tuple[int | None, str]]) -> int | None:
    """The items a job processes (1 for a rule whose cost does not grow with a data set; None when unknown)."""
    kind = ITEM_RULES.get(job.rule)
    dataset = job.wildcards.get("dataset", job.wildcards.get("dataset3d"))
    if kind is None or dataset is None:
        return 1
    n = sizes.get(dataset, (None, ""))[0]
    if n is None:
        return None
    if kind == "shard":
        return math.ceil(n / model_shards(config, job.wildcards.get("model", "")))
    return n


@dataclass
class RuleCost:
    """Per job of a rule: wall seconds, CPU seconds and output bytes as a + b * items; peak RSS (MiB) as recorded."""

    seconds: tuple[float, float]
    cpu_seconds: tuple[float, float]
    bytes: tuple[float, float] | None
    rss_mib: float
    source: str


def fit_linear(items: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """``values ~ a + b * items``, least squares, with a >= 0 and b >= 0. With one item count (or a fit that
    would go negative) it falls back to b = 0 (a per-job mean) or a = 0 (a per-item rate); each fallback, like the
    least-squares fit with an intercept, reproduces the total of the jobs it was fitted to."""
    items, values = np.asarray(items, float), np.asarray(values, float)
    if len(np.unique(items)) >= 2:
        b, a = np.polyfit(items, values, 1)
        if a >= 0 and b >= 0:
            return float(a), float(b)
        if b > 0:  # the intercept went negative: a pure per-item rate
            return 0.0, float(values.sum() / items.sum())
    return float(values.mean()), 0.0  # one item count, or a cost that does not grow with items: per job


def _output_bytes(directory: Path, job: Job) -> float | None:
    total = 0
    for out in job.outputs:
        p = directory / out
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        else:
            return None
    return float(total)


def costs_from_run(directory: str | Path, configfile: str | Path | None = None,
                   jobs: list[Job] | None = None) -> dict[str, RuleCost]:
    """Per-rule costs fitted to the jobs of a run in ``directory`` that left a benchmark record. ``jobs``: that
    run's dry-run jobs when the caller has them already (a dry run of a large config takes a while)."""
    directory = Path(directory)
    config = load_run_config(directory, configfile)
    sizes = dataset_sizes(config, directory)
    rows = []
    for job in jobs if jobs is not None else dry_run(directory, configfile):
        if not job.benchmark or not (directory / job.benchmark).is_file():
            continue
        items = job_work(job, config, sizes)
        if items is None:
            continue
        bench = pd.read_csv(directory / job.benchmark, sep="\t")
        if bench.empty:
            continue
        last = bench.iloc[-1]
        rows.append({"rule": cost_key(job), "items": items, "s": float(last["s"]),
                     "cpu": float(last.get("cpu_time", last["s"]) or 0.0),
                     "rss": float(pd.to_numeric(last.get("max_rss"), errors="coerce") or 0.0),
                     "bytes": _output_bytes(directory, job)})
    costs: dict[str, RuleCost] = {}
    for rule, g in pd.DataFrame(rows).groupby("rule", sort=True) if rows else []:
        known = g.dropna(subset=["bytes"])
        costs[rule] = RuleCost(
            seconds=fit_linear(g["items"], g["s"]), cpu_seconds=fit_linear(g["items"], g["cpu"]),
            bytes=fit_linear(known["items"], known["bytes"]) if len(known) else None,
            rss_mib=float(g["rss"].max()),
            source=f"{len(g)} recorded job(s) in {directory} (work {int(g['items'].min())}-{int(g['items'].max())})")
    return costs


def costs_from_file(path: str | Path) -> dict[str, RuleCost]:
    """Costs written by hand or by a benchmark: ``{key: {seconds_per_job, seconds_per_item, cpu_seconds_per_job,
    cpu_seconds_per_item, bytes_per_job, bytes_per_item, rss_mib, source}}``. A key is a rule, or ``rule[model]``
    for PER_MODEL_RULES; "per item" is per unit of work (for generate: per image and sampling step). Missing numbers
    are 0; ``source``, required, says where the numbers come from."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise PlanError(f"{path}: cannot read the costs file ({e}); see docs/scale.md for its format") from e
    out = {}
    for rule, c in data.items():
        if not isinstance(c, dict) or not c.get("source"):
            raise PlanError(f"{path}: rule '{rule}' needs a mapping with a 'source' (where its numbers come from)")

        def pair(kind: str, c: dict = c) -> tuple[float, float]:
            return float(c.get(f"{kind}_per_job", 0.0)), float(c.get(f"{kind}_per_item", 0.0))

        s = pair("seconds")
        cpu = pair("cpu_seconds") if any(f"cpu_seconds_{k}" in c for k in ("per_job", "per_item")) else s
        has_bytes = any(f"bytes_{k}" in c for k in ("per_job", "per_item"))
        out[rule] = RuleCost(s, cpu, pair("bytes") if has_bytes else None, float(c.get("rss_mib", 0.0)),
                             f"{path}: {c['source']}")
    return out


def make_plan(jobs: list[Job], config: dict[str, Any], sizes: dict[str, tuple[int | None, str]],
              costs: dict[str, RuleCost]) -> pd.DataFrame:
    """One row per rule (per rule and model for PER_MODEL_RULES): jobs, GPU jobs, items, work (items x steps for
    generation), wall hours summed over jobs, GPU-hours (wall x GPUs of GPU jobs), CPU-hours, peak RSS, disk (GB)
    and the source of the costs. NaN where a cost or an item count is unknown."""
    rows = []
    for key in dict.fromkeys(cost_key(j) for j in jobs):
        rjobs = [j for j in jobs if cost_key(j) == key]
        items = [job_items(j, config, sizes) for j in rjobs]
        work = [job_work(j, config, sizes) for j in rjobs]
        cost = costs.get(key)
        known = None not in work

        def total(pair: tuple[float, float] | None, w=work, known=known) -> float:
            if pair is None or not known:
                return math.nan
            return float(sum(pair[0] + pair[1] * u for u in w))

        gpu_wall = math.nan
        if cost and known:
            gpu_wall = float(sum((cost.seconds[0] + cost.seconds[1] * u) * j.gpus
                                 for j, u in zip(rjobs, work, strict=True)))
        rows.append({
            "rule": key, "jobs": len(rjobs), "gpu_jobs": sum(j.gpus > 0 for j in rjobs),
            "items": float(sum(items)) if None not in items else math.nan,
            "work": float(sum(work)) if known else math.nan,
            "hours": (total(cost.seconds) if cost else math.nan) / 3600, "gpu_hours": gpu_wall / 3600,
            "cpu_hours": (total(cost.cpu_seconds) if cost else math.nan) / 3600,
            "peak_rss_gib": (cost.rss_mib / 1024) if cost else math.nan,
            "disk_gb": (total(cost.bytes) if cost else math.nan) / 1e9,
            "cost_source": cost.source if cost else NO_COST,
            "unknown_items": ", ".join(sorted({j.wildcards.get("dataset", j.wildcards.get("dataset3d", "?"))
                                               for j, i in zip(rjobs, items, strict=True) if i is None})),
        })
    return pd.DataFrame(rows)


def format_plan(df: pd.DataFrame, sizes: dict[str, tuple[int | None, str]]) -> str:
    """The plan as a text table, with totals (over the rules whose costs are known) and every number's source."""
    def num(v: float | None, fmt: str) -> str:
        return "?" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    head = f"{'rule':<34}{'jobs':>6}{'gpu':>5}{'items':>12}{'hours':>10}{'GPU-h':>10}{'CPU-h':>10}" \
           f"{'RSS GiB':>9}{'disk GB':>10}"
    lines = [head, "-" * len(head)]
    for r in df.itertuples():
        lines.append(f"{r.rule:<34}{r.jobs:>6}{r.gpu_jobs:>5}{num(r.items, ',.0f'):>12}{num(r.hours, '.3g'):>10}"
                     f"{num(r.gpu_hours, '.3g'):>10}{num(r.cpu_hours, '.3g'):>10}{num(r.peak_rss_gib, '.2f'):>9}"
                     f"{num(r.disk_gb, '.3g'):>10}")
    lines.append("-" * len(head))
    lines.append(f"{'total (what is known)':<34}{int(df.jobs.sum()):>6}{int(df.gpu_jobs.sum()):>5}{'':>12}"
                 f"{num(df.hours.sum(min_count=1), '.3g'):>10}{num(df.gpu_hours.sum(min_count=1), '.3g'):>10}"
                 f"{num(df.cpu_hours.sum(min_count=1), '.3g'):>10}{num(df.peak_rss_gib.max(), '.2f'):>9}"
                 f"{num(df.disk_gb.sum(min_count=1), '.3g'):>10}")
    unknown = df[df.cost_source == NO_COST].rule.tolist()
    lines += ["", "hours: wall time summed over jobs (not the makespan); GPU-h: wall x GPUs of the jobs that request "
              "a GPU; CPU-h: recorded CPU time; RSS: the largest recorded peak; disk: the outputs' sizes."]
    if unknown:
        lines.append(f"not costed ({len(unknown)} rules, {NO_COST}): {', '.join(unknown)}")
    lines.append("costs from:")
    for src in dict.fromkeys(df.cost_source[df.cost_source != NO_COST]):
        lines.append(f"  {', '.join(df.rule[df.cost_source == src])}: {src}")
    lines.append("items from:")
    for name, (n, src) in sizes.items():
        lines.append(f"  {name}: {num(float(n), ',.0f') if n is not None else '?'} ({src})")
    missing = df[df.unknown_items != ""]
    if len(missing):
        lines.append(f"not costed for want of item counts: {', '.join(missing.rule)} (data sets "
                     f"{', '.join(sorted(set(', '.join(missing.unknown_items).split(', '))))})")
    return "\n".join(lines)
