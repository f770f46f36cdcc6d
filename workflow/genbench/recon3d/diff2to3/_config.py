"""The one constructor of the Diff2to3 configs (transformer and VAE) from a config mapping."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_known_keys(cls: type[T], d: dict[str, Any], what: str) -> T:
    """``cls(**d)``, refusing keys ``cls`` does not have (a misspelt size must not be silently ignored)."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {what} config keys: {', '.join(sorted(unknown))} (known: {sorted(known)})")
    return cls(**d)


def check_choice(value: str, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ValueError(f"{key} must be {' or '.join(repr(a) for a in allowed)}, got {value!r}")


def check_heads(hidden: int, heads: int) -> None:
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
