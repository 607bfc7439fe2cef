"""timm-style registries: small named entry points, ``create``/``list`` and clear errors.

A registry is complete as soon as it is used: it names the modules whose import registers its
entries (``providers``) and imports them on the first look-up, so ``create_model("recsys_item_tower")``
works in a fresh interpreter whichever modalink modules were imported before.
"""
from __future__ import annotations

import fnmatch
import importlib
from typing import Any, Callable, Generic, Sequence, TypeVar

from modalink.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → factory map. ``register`` is a decorator; unknown names raise with the known list."""

    def __init__(self, kind: str, providers: Sequence[str] = ()) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._providers = tuple(providers)
        self._loaded = not self._providers

    def _complete(self) -> None:
        """Import the provider modules once, so every entry is registered before a look-up."""
        if not self._loaded:
            self._loaded = True  # set first: providers register while being imported
            for module in self._providers:
                importlib.import_module(module)

    def register(self, name: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            key = name or fn.__name__
            if key in self._factories:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._factories[key] = fn
            return fn

        return deco

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``; :class:`UnknownNameError` lists the known names."""
        self._complete()
        try:
            return self._factories[name]
        except (KeyError, TypeError):
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.list()) or '(none)'}"
            ) from None

    def create(self, name: str, **kwargs: Any) -> T:
        """Build ``name`` with ``kwargs``; an unknown name raises :class:`UnknownNameError`."""
        return self.get(name)(**kwargs)

    def list(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally filtered by a glob ``pattern``."""
        self._complete()
        names = sorted(self._factories)
        return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]

    def __contains__(self, name: object) -> bool:
        self._complete()
        return name in self._factories
