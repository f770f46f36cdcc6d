"""Where a finished run's job time went: per rule, the jobs, the seconds before each stage started (interpreter,
Snakemake's script wrapper, imports: the per-job overhead), the stage's own seconds, and how many jobs imported
torch, from the cost line every job writes last in its log (genbench.jobinfo), next to the rule's benchmark records
(wall and CPU seconds of the whole job).

    .venv/bin/python benchmarks/job_overhead.py [RESULTS_DIR]   # default: results

Times depend on the machine's load: quote them only from an idle machine, and say so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from genbench.jobinfo import summarise  # noqa: E402


def benchmark_totals(bench: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted(bench.rglob("*.tsv")):
        rec = pd.read_csv(tsv, sep="\t").iloc[-1]
        rows.append({"rule": tsv.relative_to(bench).parts[0], "wall_s": float(rec["s"]),
                     "cpu_s": float(rec.get("cpu_time", float("nan")))})
    if not rows:
        return pd.DataFrame(columns=["wall_s", "cpu_s"])
    return pd.DataFrame(rows).groupby("rule")[["wall_s", "cpu_s"]].sum()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", default="results", type=Path)
    a = ap.parse_args()
    costs = pd.DataFrame.from_dict(summarise(sorted((a.results / "logs").rglob("*.log"))), orient="index")
    if costs.empty:
        sys.exit(f"{a.results}/logs: no job cost lines (run the pipeline with this genbench version first)")
    table = costs.join(benchmark_totals(a.results / "benchmarks"), how="left").sort_values("wall_s", ascending=False)
    total = table.sum(numeric_only=True)
    print(table.round(1).to_string())
    print(f"\n{int(total['jobs'])} jobs: start-up {total['startup_s']:.0f} s in all "
          f"({total['startup_s'] / max(total['jobs'], 1):.2f} s per job), stages {total['stage_s']:.0f} s, "
          f"benchmark wall {total['wall_s']:.0f} s, CPU {total['cpu_s']:.0f} s; "
          f"{int(total['torch_jobs'])} jobs imported torch")


if __name__ == "__main__":
    main()
