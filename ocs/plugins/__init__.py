"""Dispatcher plug-ins: the contract and how they are found.

A plug-in is an object with an async ``handle(event) -> Verdict`` (``ok`` delivered, ``retry``
transient failure, ``fail`` permanent failure) and an async ``aclose()``. It is created by a
factory ``create(options: dict) -> Plugin`` published under the entry point group
``mvna_ocs.plugins``; the dispatch file names the entry point as ``kind`` and passes
``options``. ``handle`` may be called again for an event it has seen (at least once delivery):
it passes ``event.id`` on as the idempotency key. An exception from ``handle`` counts as
``retry``. Bad options raise ``PluginConfigError`` naming the option.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, Protocol

from balance.events import Event
from ocs.dispatch_core import Verdict

ENTRY_POINT_GROUP = "mvna_ocs.plugins"


class PluginConfigError(ValueError):
    """A plug-in's options are wrong; the message names the option."""


class Plugin(Protocol):
    async def handle(self, event: Event) -> Verdict: ...

    async def aclose(self) -> None: ...


PluginFactory = Callable[[Mapping[str, Any]], Plugin]


def find_factory(kind: str) -> PluginFactory:
    """The factory published under ``kind`` in the ``mvna_ocs.plugins`` entry points."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == kind]
    if not found:
        known = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        raise PluginConfigError(f"kind {kind!r}: no such plug-in (installed: {', '.join(known)})")
    factory: PluginFactory = found[0].load()
    return factory


def option(options: Mapping[str, Any], name: str, kind: type, default: Any = None) -> Any:
    """One typed option (``default`` None = required)."""
    value = options.get(name, default)
    if value is None:
        raise PluginConfigError(f"option {name!r} is required")
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise PluginConfigError(f"option {name!r} must be a {kind.__name__}")
    return value
