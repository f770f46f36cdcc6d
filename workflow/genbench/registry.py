"""The one registry type behind generators, feature extractors and data set adapters: a name -> class/function
map filled by a decorator, whose look-up fails with the available names listed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self:
                raise ValueError(f"{self.what} '{name}' is registered twice")
            self[name] = obj
            return obj

        return deco

    def lookup(self, name: str) -> T:
        if name not in self:
            raise NotImplementedError(f"{self.what} '{name}' is not available in this genbench version "
                                      f"(available: {', '.join(sorted(self)) or 'none'})")
        return self[name]
