"""The class-coverage figure of a curated data set: how many candidates of each class survive each stage."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .figures import PALETTE, STYLE, save_data, save_figure  # noqa: E402

STAGES = [("matched", "caption matches the class"), ("text_filter", "passes the text filter"),
          ("checks", "passes the automatic checks"), ("accepted", "accepted (final)")]


def coverage_figure(per_class: pd.DataFrame, dataset: str, pdf: str | Path, png: str | Path,
                    csv: str | Path) -> None:
    save_data(per_class, csv)
    with plt.rc_context(STYLE):
        _draw(per_class, dataset, pdf, png)


def _draw(per_class: pd.DataFrame, dataset: str, pdf: str | Path, png: str | Path) -> None:
    n = len(per_class)
    covered = int((per_class["accepted"] > 0).sum())
    if n <= 40:  # one bar group per class
        fig, ax = plt.subplots(figsize=(7, 0.35 * n + 1.4))
        y = np.arange(n)
        h = 0.8 / len(STAGES)
        for k, (col, label) in enumerate(STAGES):
            ax.barh(y - 0.4 + h * (k + 0.5), per_class[col], height=h, color=PALETTE[k], label=label)
        ax.set_yticks(y, per_class["name"])
        ax.invert_yaxis()
        ax.set_xlabel("items")
    else:  # many classes (ImageNet): the sorted count curve of each stage
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for k, (col, label) in enumerate(STAGES):
            v = np.sort(per_class[col].to_numpy())[::-1]
            ax.step(np.arange(1, n + 1), np.maximum(v, 0.8), where="post", color=PALETTE[k], label=label)
        ax.set_yscale("log")
        ax.set_xlabel("classes, sorted by count")
        ax.set_ylabel("items (log)")
    ax.set_title(f"{dataset}: class coverage ({covered} of {n} classes have accepted items, "
                 f"{int(per_class['accepted'].sum())} items)", fontsize=9, pad=30)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    save_figure(fig, pdf, png)
