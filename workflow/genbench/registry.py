"""The one registry type behind generator families, feature extractors, text-image embedders, reconstructors and
data set adapters: an explicit name -> :class:`Plugin` map (genbench.catalog holds one per kind).

An entry names its implementation by import target (``"genbench.gen2d.families:SiT"``), loaded when it is looked
up, and declares what the workflow's rules need to schedule it (its conda env, its GPUs): the Snakefile reads the
entries at parse time without importing the implementation (and so without torch). A look-up of an unknown name
fails in one line with the available names listed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import GenbenchError

T = TypeVar("T")


class UnknownNameError(GenbenchError, NotImplementedError):
    """A name that no entry of a registry has (a config naming a family or kind this version does not have)."""


class DuplicateNameError(GenbenchError, ValueError):
    """A second entry under a name a registry already has."""


@dataclass(frozen=True)
class Plugin:
    """One registry entry. ``target``: ``"package.module:attribute"``, imported on look-up. ``env``: the conda env
    (a file stem under workflow/envs) of the jobs that run this entry alone, for the kinds whose rule picks the
    env per entry (generator families, reconstructors); ``gpus``: the GPUs such a job asks for (its ``gpu``
    resource). ``traits``: named capabilities the config checks ask about (e.g. ``per_steps`` samplers)."""

    target: str
    env: str | None = None
    gpus: int = 0
    traits: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self):
        module, sep, attr = self.target.partition(":")
        if not (module and sep and attr):
            raise ValueError(f"plugin target '{self.target}' is not 'package.module:attribute'")
        object.__setattr__(self, "traits", frozenset(self.traits))

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


class Registry(dict[str, Plugin], Generic[T]):
    """``what``: how the error names an entry ("generator family"); ``entries``: the explicit map."""

    def __init__(self, what: str, entries: Mapping[str, Plugin] | None = None):
        super().__init__(entries or {})
        self.what = what
        self._loaded: dict[str, T] = {}

    def plugin(self, name: str) -> Plugin:
        """The entry's wiring (no import)."""
        if name not in self:
            raise UnknownNameError(f"{self.what} '{name}' is not available in this genbench version "
                                   f"(available: {', '.join(sorted(self)) or 'none'})")
        return self[name]

    def lookup(self, name: str) -> T:
        """The implementation, its module imported on first use."""
        plugin = self.plugin(name)
        if name not in self._loaded:
            self._loaded[name] = plugin.load()
        return self._loaded[name]

    def with_trait(self, trait: str) -> list[str]:
        return [name for name, p in self.items() if trait in p.traits]

    def register(self, name: str, env: str | None = None, gpus: int = 0) -> Callable[[T], T]:
        """Add an entry at run time (tests' stand-ins); genbench's own entries are in genbench.catalog."""

        def deco(obj: T) -> T:
            if name in self:
                raise DuplicateNameError(f"{self.what} '{name}' is registered twice")
            named = obj if hasattr(obj, "__qualname__") else type(obj)
            self[name] = Plugin(f"{named.__module__}:{named.__qualname__}", env, gpus)
            self._loaded[name] = obj
            return obj

        return deco
