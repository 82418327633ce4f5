"""The deployment's current catalog, shared through Redis by every server process.

``ocs catalog load`` (and ``ocs serve --catalog``) store the tenant files' texts under
``CATALOG_KEY`` and publish a ``catalog`` notice; each server rebuilds its rating and ingestion
tables from the stored texts, without a restart. A server started without ``--catalog`` uses
the stored catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ocs.charging.notifications import publish_notice
from tariffs.loader import load_texts
from tariffs.model import Catalog

CATALOG_KEY = "ocs:catalog"
CATALOG_NOTICE = "catalog"


async def store_catalog(client: Any, sources: Sequence[tuple[str, str]]) -> None:
    """Replace the stored catalog with ``sources`` and tell every server to reload it."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(CATALOG_KEY)
        pipe.hset(CATALOG_KEY, mapping=dict(sources))
        await pipe.execute()
    await publish_notice(client, "", "", CATALOG_NOTICE)


async def stored_catalog(client: Any) -> Catalog | None:
    """The stored catalog, checked again (CatalogError if it no longer validates); None if
    nothing was ever stored."""
    stored = await client.hgetall(CATALOG_KEY)
    if not stored:
        return None
    sources = sorted((_text(name), _text(text)) for name, text in stored.items())
    return load_texts(sources)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
