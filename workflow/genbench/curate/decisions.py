"""Reviewer decision files: JSON lines ``{"item_id", "decision", "reviewer", "time"}`` appended as decisions are
made (flushed and fsynced per line), so a killed browser or server loses nothing. The last line of an item wins
(a reviewer may go back and change a decision); ``skip`` means seen but undecided. A torn last line (the
machine died mid-write) is ignored with a warning when read, and isolated before the next append: the file is cut
back to its last complete line and the torn bytes are kept in ``<file>.torn``, so the next decision starts on a
line of its own and the file stays valid JSON lines.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import GenbenchError

log = logging.getLogger(__name__)

DECISIONS = ("accept", "reject", "skip")


class DecisionError(GenbenchError, ValueError):
    pass


def read_decisions(path: str | Path) -> dict[str, str]:
    """item_id -> last decision of one file (missing file: no decisions yet)."""
    path = Path(path)
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):
                log.warning("%s: ignoring a torn last line", path)
                continue
            raise DecisionError(f"{path}:{n}: not a JSON line; fix or remove it") from None
        if rec.get("decision") not in DECISIONS or not isinstance(rec.get("item_id"), str):
            raise DecisionError(f"{path}:{n}: expected item_id and decision in {DECISIONS}, got {line[:80]!r}")
        out[rec["item_id"]] = rec["decision"]
    return out


def reviewer_name(path: str | Path) -> str:
    """The reviewer of a file: its records' ``reviewer`` field, else the file stem."""
    path = Path(path)
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                name = json.loads(line).get("reviewer")
            except json.JSONDecodeError:
                continue
            if name:
                return str(name)
    return path.stem


class DecisionLog:
    """Append-only decision file of one reviewer (thread-safe)."""

    def __init__(self, path: str | Path, reviewer: str):
        self.path, self.reviewer = Path(path), reviewer
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.decisions = read_decisions(self.path)
        self._lock = threading.Lock()

    def _isolate_torn_tail(self) -> None:
        """Before appending: a file that does not end in a newline has a torn last line (a crash mid-write). A tail
        that is a complete JSON record only lacks its newline and gets one; anything else moves to ``<file>.torn``
        and the file is cut back to its last complete line."""
        try:
            if self.path.stat().st_size == 0:
                return
        except FileNotFoundError:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            try:
                complete = isinstance(json.loads(tail), dict)
            except ValueError:  # JSONDecodeError and UnicodeDecodeError
                complete = False
            if complete:
                f.seek(0, os.SEEK_END)
                f.write(b"\n")
            else:
                torn = self.path.with_name(self.path.name + ".torn")
                with open(torn, "ab") as t:
                    t.write(tail + b"\n")
                    t.flush()
                    os.fsync(t.fileno())
                f.truncate(cut)
                log.warning("%s: a torn last line (%d bytes) was moved to %s before appending", self.path,
                            len(tail), torn)
            f.flush()
            os.fsync(f.fileno())

    def record(self, item_id: str, decision: str) -> None:
        if decision not in DECISIONS:
            raise DecisionError(f"decision must be one of {DECISIONS}, got {decision!r}")
        line = json.dumps({"item_id": item_id, "decision": decision, "reviewer": self.reviewer,
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n"
        with self._lock:
            self._isolate_torn_tail()
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self.decisions[item_id] = decision


def agreement(files: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Pairwise agreement of reviewers on the items both accepted or rejected: fraction and Cohen's kappa."""
    names = sorted(files)
    rows = []
    for a_i, a in enumerate(names):
        for b in names[a_i + 1:]:
            common = [i for i in files[a] if files[a][i] != "skip" and files[b].get(i, "skip") != "skip"]
            if not common:
                rows.append({"reviewer_a": a, "reviewer_b": b, "n_common": 0, "agreement": np.nan,
                             "cohen_kappa": np.nan})
                continue
            x = np.array([files[a][i] == "accept" for i in common])
            y = np.array([files[b][i] == "accept" for i in common])
            po = float((x == y).mean())
            pe = float(x.mean() * y.mean() + (1 - x.mean()) * (1 - y.mean()))
            kappa = 1.0 if pe == 1.0 else (po - pe) / (1 - pe)
            rows.append({"reviewer_a": a, "reviewer_b": b, "n_common": len(common), "agreement": po,
                         "cohen_kappa": kappa})
    return pd.DataFrame(rows, columns=["reviewer_a", "reviewer_b", "n_common", "agreement", "cohen_kappa"])
