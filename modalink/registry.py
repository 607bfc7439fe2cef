"""timm-style registries: small named entry points, ``create``/``list`` and clear errors."""
from __future__ import annotations

import fnmatch
from typing import Any, Callable, Generic, TypeVar

from modalink.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → factory map. ``register`` is a decorator; unknown names raise with the known list."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

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
        names = sorted(self._factories)
        return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._factories
