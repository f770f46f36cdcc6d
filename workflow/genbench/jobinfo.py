"""What a job costs besides its work, written to the rule's log when the job ends: how long the process ran before
the stage started (interpreter, Snakemake's script wrapper, imports), how long the stage took, whether torch was
imported, and the peak RSS. Summed over a run's logs, the start-up share is the per-job overhead of the DAG
(``genbench.jobinfo.summarise``; docs/scale.md)."""

from __future__ import annotations

import atexit
import logging
import os
import re
import resource
import sys
import time
from collections.abc import Iterable
from pathlib import Path

FOOTER = "job cost:"
_PATTERN = re.compile(FOOTER + r" start-up (?P<startup>[\d.]+|\?) s, stage (?P<stage>[\d.]+) s, "
                      r"torch imported: (?P<torch>yes|no), peak RSS (?P<rss>[\d.]+) MiB")


def process_age() -> float | None:
    """Seconds since this process was created (Linux /proc; None where that is not available)."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the command name may hold spaces and ")"
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"), 0.0)  # field 22 of stat: starttime
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def footer(startup: float | None, stage: float) -> str:
    age = "?" if startup is None else f"{startup:.2f}"
    return (f"{FOOTER} start-up {age} s, stage {stage:.2f} s, torch imported: "
            f"{'yes' if 'torch' in sys.modules else 'no'}, peak RSS {peak_rss_mib():.0f} MiB")


def report_at_exit(logger: logging.Logger) -> None:
    """Log the job's cost line when the process exits (atexit runs last-registered first, so before logging's own
    shutdown closes the rule's log)."""
    startup, t0 = process_age(), time.monotonic()
    atexit.register(lambda: logger.info(footer(startup, time.monotonic() - t0)))


def parse(text: str) -> dict[str, float | bool | None] | None:
    """The cost line of one log, or None when the job did not finish normally."""
    matches = list(_PATTERN.finditer(text))  # the last one counts (a rerun job's log may hold earlier attempts)
    if not matches:
        return None
    found = matches[-1]
    return dict(startup=None if found["startup"] == "?" else float(found["startup"]), stage=float(found["stage"]),
                torch=found["torch"] == "yes", rss_mib=float(found["rss"]))


def summarise(logs: Iterable[Path]) -> dict[str, dict[str, float | int]]:
    """Per rule (the log's folder under results/logs): jobs, summed start-up and stage seconds, and how many jobs
    imported torch."""
    out: dict[str, dict[str, float | int]] = {}
    for path in logs:
        info = parse(Path(path).read_text(errors="replace"))
        if info is None:
            continue
        parts = Path(path).parts
        last = len(parts) - 1 - parts[::-1].index("logs") if "logs" in parts else None  # results/logs, not a
        rule = parts[last + 1] if last is not None and last + 1 < len(parts) - 1 else "?"  # parent named "logs"
        row = out.setdefault(rule, dict(jobs=0, startup_s=0.0, stage_s=0.0, torch_jobs=0))
        row["jobs"] += 1
        row["startup_s"] += info["startup"] or 0.0
        row["stage_s"] += info["stage"]
        row["torch_jobs"] += int(bool(info["torch"]))
    return out
