"""Paper tables from the tidy metrics table: Markdown, LaTeX (booktabs) and HTML (for the Snakemake report).

Two tables per track-2D run:
- *sweep*: every cell (data set, model, steps, guidance, seed) with each metric as ``value [CI low, CI high]``, or
  ``value ± std`` where the metric comes with a spread instead of a CI (IS over splits, KID over subsets), or
  ``value†`` where that spread is 0 because every split/subset is the whole set (never "± 0");
- *best*: per (data set, model, steps), the guidance scale with the best FID on that data set and its metrics —
  the setting-matched comparison the seed paper argues for.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd

from ..io import atomic_path
from ..metrics.names import best_settings
from ..metrics.registry import LABELS, display_name
from ..metrics.registry import SCORING_METRICS as ORDER
from .keys import CELL_KEYS_BY_DATASET

CELL_COLUMNS = list(CELL_KEYS_BY_DATASET)
HEADERS = {**LABELS, "kid": "KID×10³"}
SCALE = {"kid": 1e3}
NO_SPREAD = "†"
NO_SPREAD_NOTE = (f"{NO_SPREAD} no spread shown: every split/subset is the whole set (fewer images than the subset "
                  "size), so the std over them is 0 (or not reported) and says nothing about the uncertainty.")


def _num(v: float, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if abs(v) >= 10 ** digits:  # no exponent for large values: 23420, not 2.342e+04
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def wide_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell, one formatted column per metric (``*_std`` rows fold into their metric's column)."""
    present = [m for m in dict.fromkeys(table["metric"]) if not m.endswith("_std")]
    metrics = [m for m in ORDER if m in present] + [m for m in present if m not in ORDER]
    stds = table[table["metric"].str.endswith("_std")].assign(metric=lambda d: d["metric"].str[:-4])
    std_of = {(*k, m): v for *k, m, v in stds[CELL_COLUMNS + ["metric", "value"]].itertuples(index=False)}
    facts = [c for c in ("nfe",) if c in table.columns]
    # data sets and models in the table's order (the config's), then steps, guidance and seed ascending
    cells = table.drop_duplicates(CELL_COLUMNS)[CELL_COLUMNS + facts]
    rank = {c: cells[c].map({v: i for i, v in enumerate(dict.fromkeys(cells[c]))}) for c in ("dataset", "model")}
    cells = (cells.assign(_d=rank["dataset"], _m=rank["model"])
             .sort_values(["_d", "_m", "steps", "cfg", "seed"]).drop(columns=["_d", "_m"]))
    out = cells.copy()
    by_key = {(*k, m): (v, lo, hi) for *k, m, v, lo, hi in
              table[CELL_COLUMNS + ["metric", "value", "ci_low", "ci_high"]].itertuples(index=False)}
    for m in metrics:
        s = SCALE.get(m, 1.0)
        col = []
        for key in cells[CELL_COLUMNS].itertuples(index=False):
            v, lo, hi = by_key.get((*key, m), (float("nan"),) * 3)
            std = std_of.get((*key, m))
            if not math.isnan(lo) and not math.isnan(hi):
                col.append(f"{_num(v * s)} [{_num(lo * s)}, {_num(hi * s)}]")
            elif std is not None:
                # NaN (scoring's mark that every subset is the whole set) or a spread below the value's float
                # resolution (rounding noise): no spread to report
                if math.isnan(std) or abs(std) <= 1e-9 * abs(v) or _num(std * s, 2) == "0":
                    col.append(f"{_num(v * s)}{NO_SPREAD}")  # not "± 0": there is no spread to report
                else:
                    col.append(f"{_num(v * s)} ± {_num(std * s, 2)}")
            else:
                col.append(_num(v * s))
        out[HEADERS.get(m) or display_name(m)] = col
    out["cfg"] = out["cfg"].map(lambda c: f"{c:g}")
    return out.rename(columns={"nfe": "NFE"}).reset_index(drop=True)


SIGNIFICANCE_HEADER = "FID vs other cfg (paired, Holm p_adj; * significant)"


def best_table(table: pd.DataFrame, metric: str = "fid", pairwise: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (data set, model, steps) the cell whose ``metric`` (mean over seeds) is best, in the wide format; with
    the pairwise table (gen2d_pairwise.parquet), a last column gives the paired test of the chosen guidance scale
    against each other scale of that model and step count."""
    best = best_settings(table, metric, ["dataset", "model", "steps"])
    keep = table.merge(best[["dataset", "model", "steps", "cfg"]], on=["dataset", "model", "steps", "cfg"])
    wide = wide_table(keep)
    if pairwise is not None:
        from ..metrics.pairwise import best_significance

        cells = wide[["dataset", "model", "steps", "seed"]].assign(cfg=wide["cfg"].astype(float))
        wide[SIGNIFICANCE_HEADER] = best_significance(cells, pairwise, metric)
    return wide


def to_markdown(df: pd.DataFrame) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in df.columns) + " |",
             "|" + "|".join("---:" if _numeric_like(df[c]) else ":---" for c in df.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _numeric_like(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) or s.astype(str).str.match(r"^[-\d.]").all()


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "×": r"$\times$", "³": r"$^3$", "–": "--", NO_SPREAD: r"\textdagger{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def to_latex(df: pd.DataFrame, caption: str, label: str) -> str:
    align = "".join("r" if _numeric_like(df[c]) else "l" for c in df.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(caption)}}}", rf"\label{{{label}}}",
             r"\small", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(latex_escape(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(v) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


HTML_STYLE = ("body{font-family:system-ui,sans-serif;margin:1em}table{border-collapse:collapse;font-size:13px}"
              "th,td{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}"
              "th{border-bottom:2px solid #333}td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}"
              "caption{caption-side:top;text-align:left;font-weight:600;margin-bottom:6px}")


def to_html(df: pd.DataFrame, caption: str) -> str:
    """A standalone page; every value is HTML-escaped."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(caption)}</title>"
            f"<style>{HTML_STYLE}</style></head><body><table><caption>{html.escape(caption)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>\n")


CAPTIONS = {
    "sweep": "Every generated cell of the sweep: metric with its bootstrap CI in brackets, or ± the spread over "
             "splits/subsets where the protocol reports one.",
    "best": "Setting-matched comparison: per data set, model and step count, the guidance scale with the best FID; "
            "the last column tests that choice against each other guidance scale (paired bootstrap of the FID "
            "difference on the same items, Holm-adjusted p over all FID comparisons of gen2d_pairwise.parquet; "
            "* p_adj < 1 - confidence).",
}


def export_tables(table: pd.DataFrame, outputs: dict[str, str | Path], pairwise: pd.DataFrame | None = None) -> None:
    """Write the paper tables; ``outputs`` maps '{sweep,best}_{md,tex,html}' to paths. With ``pairwise`` (the
    gen2d_pairwise table) the best table marks whether its choice of guidance is significant."""
    frames = {"sweep": wide_table(table), "best": best_table(table, pairwise=pairwise)}
    for key, path in outputs.items():
        name, fmt = key.rsplit("_", 1)
        df, caption = frames[name], CAPTIONS[name]
        footnote = df.astype(str).apply(lambda c: c.str.endswith(NO_SPREAD)).any().any()
        if footnote:
            caption = f"{caption} {NO_SPREAD_NOTE}"
        _write_table(df, fmt, path, caption, f"tab:gen2d_{name}", f"export_tables: output '{key}'",
                     f"\n{NO_SPREAD_NOTE}\n" if footnote else "")


def _write_table(df: pd.DataFrame, fmt: str, path: str | Path, caption: str, label: str, what: str,
                 md_footer: str = "") -> None:
    """One table as Markdown (plus ``md_footer``), LaTeX or HTML, written atomically."""
    if fmt == "md":
        text = to_markdown(df) + md_footer
    elif fmt == "tex":
        text = to_latex(df, caption, label)
    elif fmt == "html":
        text = to_html(df, caption)
    else:
        raise ValueError(f"{what}: unknown format '{fmt}' (md, tex or html)")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


# --- 3D track: the summary in the report ------------------------------------------------------------------------
# the headline metrics of the 3D track: (protocol, metric, label); the bar figure draws the same ones
RECON3D_HEADLINE = [("corrected", "fscore@0.01", "F-score@0.01 (corrected)"),
                    ("corrected", "solid_iou", "solid IoU (corrected)"),
                    ("corrected", "chamfer_l1", "Chamfer-L1 (corrected, lower is better)"),
                    ("legacy", "f1", "F1@0.01 (legacy)"),
                    ("appearance", "psnr", "PSNR on renders (dB)")]


def recon3d_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (data set, reconstructor) in the summary's order: items scored of items, failed items, and each
    headline metric present as ``mean [CI low, CI high]``; notes (e.g. a capped F-score) named by metric."""
    present = [h for h in RECON3D_HEADLINE
               if ((summary["protocol"] == h[0]) & (summary["metric"] == h[1])).any()]
    if not present:
        raise ValueError("recon3d summary table: the summary has none of the headline metrics "
                         f"{[h[1] for h in RECON3D_HEADLINE]}")
    by = summary.set_index(["dataset", "model", "protocol", "metric"]).sort_index()
    rows = []
    for ds, model in dict.fromkeys(zip(summary["dataset"], summary["model"], strict=True)):
        sub = summary[(summary["dataset"] == ds) & (summary["model"] == model)]
        row = {"dataset": ds, "model": model,
               "kind": "GT ceiling" if bool(sub["ceiling"].any()) else "reconstructor",
               "items scored": f"{int(sub['n_scored'].max())} of {int(sub['n'].max())}",
               "failed": int(sub["n_failed"].max())}
        notes = []
        for proto, metric, label in present:
            key = (ds, model, proto, metric)
            if key not in by.index:
                row[label] = "–"
                continue
            r = by.loc[key]
            if pd.notna(r["ci_low"]) and pd.notna(r["ci_high"]):
                row[label] = f"{_num(r['value'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]"
            else:
                row[label] = _num(r["value"])
            if isinstance(r.get("note"), str) and r["note"]:
                notes.append(f"{metric}: {r['note']}")
        row["notes"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows)


def export_recon3d_table(summary: pd.DataFrame, outputs: dict[str, str | Path], confidence: float) -> None:
    """The 3D summary as Markdown, LaTeX and HTML; ``outputs`` maps 'md', 'tex', 'html' to paths; ``confidence``
    is the level of the CIs (recon3d.bootstrap.confidence), stated in the caption."""
    df = recon3d_table(summary)
    caption = (f"3D reconstruction per data set: mean over items [{100 * float(confidence):g}% bootstrap CI over "
               "items]; the GT ceiling is the ground truth scored against an independent resampling of itself.")
    for fmt, path in outputs.items():
        _write_table(df, fmt, path, caption, "tab:recon3d_summary", "export_recon3d_table")


def markdown_page(text: str, title: str) -> str:
    """A Markdown document (e.g. a curation datasheet) as a standalone HTML page for the Snakemake report: rendered
    by markdown-it-py (CommonMark + tables) with raw HTML off, so data in the text is escaped, never markup."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{HTML_STYLE}</style></head><body>{body}</body></html>\n")
