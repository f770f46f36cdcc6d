"""``genbench diff``: compare two results trees (or two files) with per-column tolerances.

Tables (Parquet, CSV) are matched row by row on their key columns and compared column by column with
``|a - b| <= atol + rtol * |a|`` (``a`` from the first tree, the reference); images are decoded and compared
pixel by pixel; ``.npz`` and ``.safetensors`` arrays (and metadata) by value; every other file by SHA-256.
The rules come from a YAML file (docs/tables.md describes it)::

    include: ["tables/*.parquet", "figures/*.csv"]   # compare only these paths (default: everything)
    ignore: ["models/*"]                              # never compare these (logs/ and benchmarks/ never are)
    default: {atol: 0.0, rtol: 0.0}                   # numeric tolerance of every column not named below
    images: {max_abs: 0, max_fraction: 0.0}           # pixel values may differ by max_abs; more only in
                                                      # at most max_fraction of the pixels
    metrics:                                          # per metric kind: the float columns of a row whose
      fid: {rtol: 1.0e-3}                             # 'metric' column names it, a float column named after
      kid: {atol: 1.0e-4, rtol: 1.0e-2}               # it, or every float column of a table that names it
    tables:                                           # with 'metric:'
      "tables/gen2d_metrics.parquet":                 # fnmatch pattern on the path relative to the tree
        keys: [dataset, model, steps, cfg, seed, metric]
        columns: {value: {rtol: 1.0e-6}, ci_low: {atol: 0.01}}
      "figures/step_scaling.csv": {metric: fid}

A numeric column's tolerance is, from the most specific: the table's ``columns`` entry, the row's (or column's,
or table's) metric kind under ``metrics`` (its ``ci`` entry for the interval columns ci_low, ci_high, ci_bias,
band_low, band_high, whose ends move more than the value they bracket), then ``default``. Integer columns (counts)
never take a metric's tolerance. ``text_numbers: ignore`` compares text cells (notes) with their numbers masked:
the numbers are compared through the value columns, the wording still exactly.

Without ``keys`` a Parquet table's own key columns (its genbench metadata) are used, else every column that is
not floating point. Path patterns are fnmatch patterns on the path relative to the tree, where '*' also matches
'/'.
"""

from __future__ import annotations

import fnmatch
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ..errors import GenbenchError
from ..io import sha256_file

# fnmatch patterns on the relative path; '*' also matches '/', so "*/logs/*" covers results/logs/a/b.log
DEFAULT_IGNORE = ["logs/*", "*/logs/*", "benchmarks/*", "*/benchmarks/*", ".snakemake/*", "*/.snakemake/*",
                  "*/__pycache__/*"]
TABLE_SUFFIXES = {".parquet", ".csv"}
# interval columns: a metric kind's 'ci' tolerance applies to them
CI_COLUMNS = {"ci_low", "ci_high", "ci_bias", "band_low", "band_high"}
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def _image_decode_errors() -> tuple[type[BaseException], ...]:
    from PIL import Image

    # PIL: OSError (truncated, unidentified), SyntaxError (broken chunks), ValueError, DecompressionBombError
    return OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError


IMAGE_DECODE_ERRORS = _image_decode_errors()


class DiffConfigError(GenbenchError, ValueError):
    """A tolerance file that cannot be used (unknown key, wrong type)."""


@dataclass
class Finding:
    path: str
    kind: str  # added | removed | changed | rows_added | rows_removed | value | columns | image | error
    message: str


@dataclass
class DiffResult:
    findings: list[Finding] = field(default_factory=list)
    compared: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, path: str, kind: str, message: str) -> None:
        self.findings.append(Finding(path, kind, message))

    def summary(self, max_per_file: int = 20) -> str:
        lines = [f"compared {self.compared} file(s)"]
        lines += [f"note: {n}" for n in self.notes]
        by_path: dict[str, list[Finding]] = {}
        for f in self.findings:
            by_path.setdefault(f.path, []).append(f)
        for path, items in by_path.items():
            lines.append(f"{path}:")
            for f in items[:max_per_file]:
                lines.append(f"  [{f.kind}] {f.message}")
            if len(items) > max_per_file:
                lines.append(f"  ... and {len(items) - max_per_file} more difference(s)")
        lines.append("identical within tolerance" if self.ok else
                     f"DIFFERENT: {len(self.findings)} difference(s) in {len(by_path)} file(s)")
        return "\n".join(lines)


@dataclass
class Tolerances:
    include: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=lambda: list(DEFAULT_IGNORE))
    default: dict[str, float] = field(default_factory=lambda: {"atol": 0.0, "rtol": 0.0})
    images: dict[str, float] = field(default_factory=lambda: {"max_abs": 0, "max_fraction": 0.0})
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    text_numbers: str = "exact"

    @classmethod
    def load(cls, path: str | Path | None) -> Tolerances:
        if path is None:
            return cls()
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "tolerances") -> Tolerances:
        known = {"include", "ignore", "default", "images", "tables", "metrics", "text_numbers"}
        unknown = set(raw) - known
        if unknown:
            raise DiffConfigError(f"{source}: unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}")
        tol = cls()
        tol.include = list(raw.get("include", []))
        tol.ignore = DEFAULT_IGNORE + list(raw.get("ignore", []))
        tol.default = {**tol.default, **_numeric(raw.get("default", {}), f"{source}: default", {"atol", "rtol"})}
        tol.images = {**tol.images, **_numeric(raw.get("images", {}), f"{source}: images",
                                               {"max_abs", "max_fraction"})}
        tol.metrics = {}
        for m, t in (raw.get("metrics") or {}).items():
            if not isinstance(t, dict):
                raise DiffConfigError(f"{source}: metrics.{m}: expected a mapping with atol, rtol, ci")
            entry = _numeric({k: v for k, v in t.items() if k != "ci"}, f"{source}: metrics.{m}", {"atol", "rtol"})
            if "ci" in t:
                entry["ci"] = _numeric(t["ci"], f"{source}: metrics.{m}.ci", {"atol", "rtol"})
            tol.metrics[m] = entry
        text_numbers = raw.get("text_numbers", "exact")
        if text_numbers not in ("exact", "ignore"):
            raise DiffConfigError(f"{source}: text_numbers: expected 'exact' or 'ignore', got {text_numbers!r}")
        tol.text_numbers = text_numbers
        for pattern, spec in (raw.get("tables") or {}).items():
            bad = set(spec) - {"keys", "columns", "metric"}
            if bad:
                raise DiffConfigError(f"{source}: tables.{pattern}: unknown key(s) {sorted(bad)}; "
                                      "allowed: keys, columns, metric")
            cols = {c: _numeric(t, f"{source}: tables.{pattern}.columns.{c}", {"atol", "rtol"})
                    for c, t in (spec.get("columns") or {}).items()}
            metric = spec.get("metric")
            if metric is not None and metric not in tol.metrics:
                raise DiffConfigError(f"{source}: tables.{pattern}.metric '{metric}' has no entry under 'metrics'")
            tol.tables[pattern] = {"keys": spec.get("keys"), "columns": cols, "metric": metric}
        return tol

    def table_spec(self, rel: str) -> dict[str, Any]:
        for pattern, spec in self.tables.items():
            if fnmatch.fnmatch(rel, pattern):
                return spec
        return {"keys": None, "columns": {}, "metric": None}

    def column_tolerance(self, spec: dict[str, Any], column: str, metric: str | None = None) -> tuple[float, float]:
        """(atol, rtol) of ``column``; ``metric``: the metric kind of the value (a row's 'metric', the column's
        own name or the table's 'metric'), whose tolerance applies unless the table names the column."""
        kind = self.metrics.get(metric or "", {})
        if column in CI_COLUMNS and "ci" in kind:  # an interval's ends move more than the value they bracket
            kind = kind["ci"]
        t = {**self.default, **{k: v for k, v in kind.items() if k != "ci"}, **spec["columns"].get(column, {})}
        return float(t.get("atol", 0.0)), float(t.get("rtol", 0.0))

    def selected(self, rel: str) -> bool:
        if any(_match(rel, p) for p in self.ignore):
            return False
        return not self.include or any(_match(rel, p) for p in self.include)


def _numeric(d: Any, where: str, allowed: set[str]) -> dict[str, float]:
    if not isinstance(d, dict):
        raise DiffConfigError(f"{where}: expected a mapping with {sorted(allowed)}")
    bad = set(d) - allowed
    if bad:
        raise DiffConfigError(f"{where}: unknown key(s) {sorted(bad)}; allowed: {sorted(allowed)}")
    out = {}
    for k, v in d.items():
        if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
            raise DiffConfigError(f"{where}.{k}: expected a non-negative number, got {v!r}")
        out[k] = float(v)
    return out


def _match(rel: str, pattern: str) -> bool:
    return fnmatch.fnmatch(rel, pattern)


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def diff_paths(a: str | Path, b: str | Path, tolerances: Tolerances | None = None) -> DiffResult:
    """Compare ``a`` (the reference) with ``b``: two directories, or two files."""
    tol = tolerances or Tolerances()
    a, b = Path(a), Path(b)
    res = DiffResult()
    for p in (a, b):
        if not p.exists():
            raise FileNotFoundError(f"genbench diff: {p} does not exist")
    if a.is_file() and b.is_file():
        res.compared = 1
        _diff_file(a, b, a.name, tol, res)
        return res
    if a.is_file() != b.is_file():
        raise ValueError(f"genbench diff: compare two directories or two files, not {a} and {b}")
    fa = {k: v for k, v in _files(a).items() if tol.selected(k)}
    fb = {k: v for k, v in _files(b).items() if tol.selected(k)}
    for rel in sorted(fa.keys() - fb.keys()):
        res.add(rel, "removed", f"only in {a}")
    for rel in sorted(fb.keys() - fa.keys()):
        res.add(rel, "added", f"only in {b}")
    for rel in sorted(fa.keys() & fb.keys()):
        res.compared += 1
        _diff_file(fa[rel], fb[rel], rel, tol, res)
    return res


def _diff_file(pa: Path, pb: Path, rel: str, tol: Tolerances, res: DiffResult) -> None:
    suffix = pa.suffix.lower()
    try:
        if suffix in TABLE_SUFFIXES:
            _diff_table(_read_table(pa), _read_table(pb), rel, tol, res, key_hint=_metadata_keys(pa))
        elif suffix in IMAGE_SUFFIXES:
            _diff_image(pa, pb, rel, tol, res)
        elif suffix == ".npz":
            _diff_arrays(*_load_npz(pa), *_load_npz(pb), rel, tol, res)
        elif suffix == ".safetensors":  # its header's metadata order is not stable: compare contents
            _diff_arrays(*_load_safetensors(pa), *_load_safetensors(pb), rel, tol, res)
        elif (ha := sha256_file(pa)) != (hb := sha256_file(pb)):
            res.add(rel, "changed", f"contents differ (sha256 {ha[:12]} vs {hb[:12]})")
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        # an unreadable table or array file: reported with the reason and the file, never a traceback
        res.add(rel, "error", f"could not compare: {type(exc).__name__}: {exc}")


def _read_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _metadata_keys(path: Path) -> list[str] | None:
    if path.suffix != ".parquet":
        return None
    from . import read_metadata

    return read_metadata(path).get("key_columns")


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return "nan" if math.isnan(v) else f"{v:.10g}"
    return str(v)


def _row_label(keys: list[str], values: tuple) -> str:
    return "(" + ", ".join(f"{k}={_fmt(v)}" for k, v in zip(keys, values, strict=True)) + ")"


def _diff_table(ta: pd.DataFrame, tb: pd.DataFrame, rel: str, tol: Tolerances, res: DiffResult,
                key_hint: list[str] | None = None) -> None:
    spec = tol.table_spec(rel)
    keys = spec["keys"] or key_hint or [c for c in ta.columns if not pd.api.types.is_float_dtype(ta[c])]
    missing = [k for k in keys if k not in ta.columns or k not in tb.columns]
    if missing:
        raise ValueError(f"key column(s) {missing} not in both tables; set 'keys' for '{rel}' in the tolerance file")
    only_a, only_b = sorted(set(ta.columns) - set(tb.columns)), sorted(set(tb.columns) - set(ta.columns))
    if only_a or only_b:
        res.add(rel, "columns", f"columns removed {only_a}, added {only_b}")
    for name, t in (("first", ta), ("second", tb)):
        dup = t.duplicated(keys, keep=False)
        if dup.any():
            raise ValueError(f"the {name} table has {int(dup.sum())} rows with duplicate keys {keys}, e.g. "
                             f"{_row_label(keys, tuple(t.loc[dup, keys].iloc[0]))}; name unique key columns")
    ia = {tuple(r): i for i, r in enumerate(ta[keys].itertuples(index=False, name=None))}
    ib = {tuple(r): i for i, r in enumerate(tb[keys].itertuples(index=False, name=None))}
    for k in sorted(ia.keys() - ib.keys(), key=str):
        res.add(rel, "rows_removed", f"row {_row_label(keys, k)} missing from the second table")
    for k in sorted(ib.keys() - ia.keys(), key=str):
        res.add(rel, "rows_added", f"row {_row_label(keys, k)} only in the second table")
    common = sorted(ia.keys() & ib.keys(), key=str)
    if not common:
        return
    ra = ta.iloc[[ia[k] for k in common]].reset_index(drop=True)
    rb = tb.iloc[[ib[k] for k in common]].reset_index(drop=True)
    for col in [c for c in ta.columns if c in tb.columns and c not in keys]:
        xa, xb = ra[col], rb[col]
        if pd.api.types.is_numeric_dtype(xa) and pd.api.types.is_numeric_dtype(xb) \
                and not pd.api.types.is_bool_dtype(xa):
            atol, rtol = _row_tolerances(tol, spec, col, ra, pd.api.types.is_float_dtype(xa))
            va, vb = xa.to_numpy(np.float64), xb.to_numpy(np.float64)
            both_nan = np.isnan(va) & np.isnan(vb)
            with np.errstate(invalid="ignore"):
                close = (np.abs(va - vb) <= atol + rtol * np.abs(va)) | both_nan | (va == vb)
            for i in np.flatnonzero(~close):
                d = abs(va[i] - vb[i])
                rel_d = d / abs(va[i]) if va[i] not in (0.0,) and not math.isnan(d) else float("inf")
                res.add(rel, "value", f"row {_row_label(keys, common[i])} column '{col}': {_fmt(va[i])} -> "
                                      f"{_fmt(vb[i])} (|diff| {_fmt(d)}, rel {_fmt(rel_d)}; "
                                      f"allowed atol {atol[i]:g} + rtol {rtol[i]:g})")
        else:
            sa, sb = xa.astype(object).where(xa.notna(), None), xb.astype(object).where(xb.notna(), None)
            if tol.text_numbers == "ignore":  # numbers in notes: compared through the value columns instead
                sa, sb = (x.map(lambda v: _NUMBER.sub("#", v) if isinstance(v, str) else v) for x in (sa, sb))
            # null on both sides is equal (pandas' != treats None like NaN, which never equals itself)
            differ = (sa != sb).to_numpy() & ~(xa.isna() & xb.isna()).to_numpy()
            for i in np.flatnonzero(differ):
                res.add(rel, "value", f"row {_row_label(keys, common[i])} column '{col}': {sa[i]!r} -> {sb[i]!r}")


def _row_tolerances(tol: Tolerances, spec: dict[str, Any], col: str, rows: pd.DataFrame,
                    is_float: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (atol, rtol) of ``col``: by the row's metric kind where the table has a 'metric' column, else by
    the column's name if it names a metric (or starts with one and '_'), else by the table's 'metric'. Integer
    columns take the default."""
    n = len(rows)
    if not is_float or not tol.metrics:
        atol, rtol = tol.column_tolerance(spec, col)
        return np.full(n, atol), np.full(n, rtol)
    if "metric" in rows.columns:
        kinds = rows["metric"].astype(str).to_numpy()
    else:  # a column named after a metric ('fid', or 'fid_ci_low': the longest metric name it starts with)
        named = [m for m in tol.metrics if col == m or col.startswith(f"{m}_")]
        kinds = np.full(n, max(named, key=len) if named else (spec.get("metric") or ""), dtype=object)
    pairs = {k: tol.column_tolerance(spec, col, k) for k in set(kinds)}
    return (np.array([pairs[k][0] for k in kinds], np.float64), np.array([pairs[k][1] for k in kinds], np.float64))


def _diff_image(pa: Path, pb: Path, rel: str, tol: Tolerances, res: DiffResult) -> None:
    from PIL import Image

    try:
        with Image.open(pa) as ia, Image.open(pb) as ib:
            a = np.asarray(ia.convert("RGBA"), dtype=np.int16)
            b = np.asarray(ib.convert("RGBA"), dtype=np.int16)
    except IMAGE_DECODE_ERRORS:  # not decodable (a truncated input, a bomb): equal bytes are equal files
        if (ha := sha256_file(pa)) != (hb := sha256_file(pb)):
            res.add(rel, "changed", f"undecodable image, contents differ (sha256 {ha[:12]} vs {hb[:12]})")
        return
    if a.shape != b.shape:
        res.add(rel, "image", f"size {a.shape[1]}x{a.shape[0]} -> {b.shape[1]}x{b.shape[0]}")
        return
    d = np.abs(a - b).max(axis=-1)
    over = d > tol.images["max_abs"]
    frac = float(over.mean())
    if over.any() and frac > tol.images["max_fraction"]:
        res.add(rel, "image", f"{int(over.sum())} of {d.size} pixels ({100 * frac:.3g}%) differ by more than "
                              f"{tol.images['max_abs']:g} (max {int(d.max())}); allowed "
                              f"{100 * tol.images['max_fraction']:g}% of the pixels")


def _load_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays of an .npz without its runtime record (where and how it was computed: provenance, which is not
    compared, as a Parquet table's metadata is not)."""
    from ..io import RUNTIME_KEY

    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != RUNTIME_KEY}, {}


def _load_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def _diff_arrays(xa: dict[str, np.ndarray], ma: dict[str, str], xb: dict[str, np.ndarray], mb: dict[str, str],
                 rel: str, tol: Tolerances, res: DiffResult) -> None:
    if ma != mb:
        res.add(rel, "value", f"metadata {ma} -> {mb}")
    ka, kb = set(xa), set(xb)
    if ka != kb:
        res.add(rel, "columns", f"arrays removed {sorted(ka - kb)}, added {sorted(kb - ka)}")
    for k in sorted(ka & kb):
        x, y = xa[k], xb[k]
        if x.shape != y.shape or x.dtype != y.dtype:
            res.add(rel, "value", f"array '{k}': {x.dtype}{list(x.shape)} -> {y.dtype}{list(y.shape)}")
        elif np.issubdtype(x.dtype, np.floating):
            atol, rtol = tol.default["atol"], tol.default["rtol"]
            bad = ~(np.isclose(y, x, atol=atol, rtol=rtol, equal_nan=True))
            if bad.any():
                worst = float(np.nanmax(np.abs(x.astype(np.float64) - y)))
                res.add(rel, "value", f"array '{k}': {int(bad.sum())} of {x.size} values differ beyond atol "
                                      f"{atol:g} + rtol {rtol:g} (max |diff| {worst:.4g})")
        elif not np.array_equal(x, y):
            n = int(np.sum(x != y)) if x.shape else 1
            res.add(rel, "value", f"array '{k}': {n} of {max(x.size, 1)} values differ")


def snapshot(src: str | Path, dest: str | Path, tolerances: Tolerances) -> list[str]:
    """Copy the files of ``src`` that ``tolerances`` selects into ``dest`` (e.g. to refresh golden artifacts);
    files of ``dest`` that are selected but no longer produced are removed. Returns the copied paths."""
    import shutil

    src, dest = Path(src), Path(dest)
    if not tolerances.include:
        raise DiffConfigError("snapshot needs 'include' patterns in the tolerance file (what the golden set holds)")
    wanted = {k: v for k, v in _files(src).items() if tolerances.selected(k)}
    if not wanted:
        raise FileNotFoundError(f"no file under {src} matches the include patterns {tolerances.include}")
    for rel, p in _files(dest).items() if dest.exists() else []:
        if tolerances.selected(rel) and rel not in wanted:
            p.unlink()
    for rel, p in wanted.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dest / rel)
    return sorted(wanted)
