"""Write the mini-world's committed review fixtures (config/curation/mw_relaionet/reviewer_{a,b}.jsonl).

No person reviews the mini-world here, so two scripted reviewers stand in for the people who would use
`genbench review`: they see what the page shows, which for the mini-world means the true shape (the hidden
ground truth ``mw_true_label``) and content that is visibly unsafe or watermarked (planted ``unsafe`` /
``watermark``); they cannot tell reposts or leaked evaluation images (the automatic checks catch those). Each
errs at a fixed rate and stops part-way, as people do; the files use the same JSON-lines format and field
names the review server writes. Rerun after a change to the mini-world's laion split or the curation stages
before the review (then rerun the pipeline):

    python resources/curation/simulate_reviewers.py results/curate/mw_relaionet config/curation/mw_relaionet
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REVIEWERS = {  # name: (error rate, fraction of the queue reviewed in order, skip rate, seed)
    "reviewer_a": (0.04, 0.85, 0.03, 1),
    "reviewer_b": (0.08, 0.50, 0.05, 2),
}


def simulate(curation_dir: Path, out_dir: Path) -> None:
    queue = pd.read_parquet(curation_dir / "review_queue.parquet")
    truth = pd.read_parquet(curation_dir / "candidates.parquet").set_index("item_id")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (err, frac, skip, seed) in REVIEWERS.items():
        rng = np.random.default_rng(seed)
        lines = []
        for r in queue.iloc[: int(round(frac * len(queue)))].itertuples():
            t = truth.loc[r.item_id]
            good = int(r.label_id) == int(t["mw_true_label"]) and t["mw_planted"] not in ("unsafe", "watermark")
            if rng.uniform() < skip:
                decision = "skip"
            else:
                correct = rng.uniform() >= err
                decision = "accept" if good == correct else "reject"
            lines.append(json.dumps({"item_id": r.item_id, "decision": decision, "reviewer": name,
                                     "time": "2026-11-22T00:00:00+0000"}))
        (out_dir / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        print(f"{name}: {len(lines)} decisions")


if __name__ == "__main__":
    simulate(Path(sys.argv[1]), Path(sys.argv[2]))
