"""How far another machine moves a config's metrics: the config run twice on this host, the second time as another
machine would run it, and the per-metric deviations printed (docs/tables.md quotes them).

    .venv/bin/python benchmarks/cross_machine.py [--config config/config.yaml] [--cores 2]
        [--target results/tables/gen2d_metrics.parquet] [--workdir /tmp/cross_machine]

"Another machine" (genbench.repro): torch, oneDNN and MKL held one SIMD level below this CPU's best
(ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA / MKL_CBWR), every trained stand-in with another train.threads and its
initial weights perturbed (1e-6 relative in float32, 1e-12 in float64). Both runs build ``target`` from scratch in
their own copy of the workflow; nothing is timed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from genbench import layout  # noqa: E402
from genbench.repro import metric_deviations, other_machine_config, other_machine_env, simd_level  # noqa: E402
from genbench.tables.keys import GEN2D_TABLE_KEYS  # noqa: E402

KEYS = list(GEN2D_TABLE_KEYS)


def run(workdir: Path, config: dict, target: str, cores: int, env: dict[str, str]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("workflow", "config", "profiles", "resources"):
        src = ROOT / name
        if not src.exists():
            continue
        if src.is_dir():
            shutil.copytree(src, workdir / name, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        else:
            shutil.copy2(src, workdir / name)
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), target], cwd=workdir, check=True,
                   env=dict(os.environ, **env))
    return workdir / layout.table("gen2d_metrics")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "config/config.yaml"))
    ap.add_argument("--target", default=layout.table("gen2d_metrics"),
                    help="what both runs build (a file or a rule, e.g. 'all'); it must include the 2D metrics table")
    ap.add_argument("--workdir", default="/tmp/cross_machine")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    work = Path(args.workdir)
    a = run(work / "this", config, args.target, args.cores, {})
    b = run(work / "other", other_machine_config(config), args.target, args.cores, other_machine_env())
    ta, tb = pd.read_parquet(a), pd.read_parquet(b)
    dev = metric_deviations(ta, tb, KEYS)
    print(f"config {args.config}; host {simd_level()}, other machine {other_machine_env()}")
    print(dev.to_string(index=False))
    fid = ta[ta.metric == "fid"].merge(tb[tb.metric == "fid"], on=KEYS)
    fid["rel"] = (fid["value_y"] - fid["value_x"]).abs() / fid["value_x"].abs()
    print("\nFID per cell (this machine, other machine, relative difference):")
    print(fid[["dataset", "model", "steps", "cfg", "value_x", "value_y", "rel"]].to_string(index=False))
    dev.to_csv(work / "deviations.csv", index=False)
    if args.target == "all":  # every table and figure, as the golden comparison sees them
        from genbench.tables.diff import Tolerances, diff_paths

        res = diff_paths(work / "this/results", work / "other/results",
                         Tolerances.load(ROOT / "tests/golden/tolerances.yaml"))
        print("\n" + res.summary())


if __name__ == "__main__":
    main()
