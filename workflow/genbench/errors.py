"""The one base of genbench's exceptions.

Every exception class genbench defines derives from :class:`GenbenchError` (and keeps the builtin base its callers
catch, e.g. ``ValueError`` or ``FileNotFoundError``, through multiple inheritance). A ``GenbenchError`` names the
item it is about and the fix, in one line::

    raise ManifestError("no 'item_id' column", item="results/data/mw_val/manifest.parquet",
                        fix="rerun prepare_dataset")
    # -> "results/data/mw_val/manifest.parquet: no 'item_id' column; rerun prepare_dataset"

A message already written as one sentence that names both (``raise ShardError(f"{path}: ...; rerun ...")``) is
accepted as is; any line breaks in it are folded into one line, so ``str(exc)`` is always a single line (what the
``genbench`` command prints instead of a traceback, and what Snakemake shows in its log).
"""

from __future__ import annotations

from typing import Any


def one_line(text: str) -> str:
    """``text`` folded into one line: lines joined with "; " (with a space after a line that ends in ':'), runs of
    spaces inside a line kept."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    out = ""
    for line in lines:
        if out:
            out += " " if out.endswith(":") else "; "
        out += line
    return out


def render(problem: str, item: str | None = None, fix: str | None = None) -> str:
    """``"<item>: <problem>; <fix>"``, leaving out what is not given."""
    text = one_line(problem)
    if item:
        text = f"{one_line(item)}: {text}" if text else one_line(item)
    if fix:
        text = f"{text}; {one_line(fix)}" if text else one_line(fix)
    return text


def _rebuild(cls: type[GenbenchError], problem: str, item: str | None, fix: str | None,
             state: dict[str, Any]) -> GenbenchError:
    exc = cls.__new__(cls)
    GenbenchError.__init__(exc, problem, item=item, fix=fix)
    exc.__dict__.update(state)
    return exc


class GenbenchError(Exception):
    """An error genbench reports to its user: ``item`` is what it is about (a file, a config key, a data set item,
    a model), ``fix`` what to do; ``str()`` is one line naming both."""

    def __init__(self, problem: str = "", *, item: str | None = None, fix: str | None = None) -> None:
        self.problem = one_line(problem)
        self.item = item
        self.fix = fix
        # one positional argument only, so that builtin bases with argument parsing (OSError) take it as the message
        super().__init__(render(problem, item, fix))

    def __str__(self) -> str:
        return render(self.problem, self.item, self.fix)

    def __reduce__(self):  # keep item and fix through pickling (multiprocessing workers, Snakemake)
        state = {k: v for k, v in self.__dict__.items() if k not in ("problem", "item", "fix")}
        return _rebuild, (type(self), self.problem, self.item, self.fix, state)
