"""The deployment's current catalog, shared through Redis by every server process.

The stored catalog is one hash, ``CATALOG_KEY``: one field per tenant (its id) holding the
tenant file's name and text as JSON. ``ocs catalog load`` changes it tenant by tenant (a tenant
absent from the files loaded is kept; only ``--remove`` drops one), ``ocs serve --catalog`` stores
its files only when nothing is stored yet or with ``--catalog-replace``. Each change publishes a
``catalog`` notice and every server rebuilds its rating and ingestion tables from the stored
texts, without a restart.

Hashes written before the per-tenant layout (field = file name, value = YAML text) are still
read; the next write converts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec
from redis.exceptions import WatchError

from ocs.charging.notifications import publish_notice
from tariffs.loader import load_texts
from tariffs.model import Catalog

CATALOG_KEY = "ocs:catalog"
CATALOG_NOTICE = "catalog"

Sources = list[tuple[str, str]]  # (file name, YAML text), as tariffs.loader reads them


class StoredTenant(msgspec.Struct, frozen=True):
    """One tenant's entry in the stored catalog."""

    file: str
    text: str


class CatalogChanged(RuntimeError):
    """Someone else changed the stored catalog between our read and our write."""


class StoredCatalog(msgspec.Struct, frozen=True):
    """What Redis holds: the raw hash (to detect a concurrent change), the texts and the
    validated catalog built from them."""

    raw: dict[bytes, bytes]
    sources: tuple[tuple[str, str], ...]
    catalog: Catalog

    def sources_by_tenant(self) -> dict[str, tuple[str, str]]:
        """``{tenant id: (file, text)}`` (a tenant's ``source`` is the file it was read from)."""
        return by_tenant(self.catalog, self.sources)


def by_tenant(catalog: Catalog, sources: Sequence[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """``{tenant id: (file, text)}``. A valid catalog has one tenant per source, in the sources'
    order (``load_texts``); paired by position, not by file name, because two tenants loaded
    from different directories may well share a name (``tenant.yaml``)."""
    if len(catalog.tenants) != len(sources):
        raise ValueError("a catalog and its sources must pair one tenant per file")
    return {t.id: source for t, source in zip(catalog.tenants, sources, strict=True)}


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(StoredTenant).decode


def _sources_of(raw: Mapping[bytes, bytes]) -> Sources:
    out: Sources = []
    for field, value in raw.items():
        try:
            entry = _decode(value)
        except msgspec.DecodeError:  # the older layout: field = file name, value = YAML text
            out.append((_text(field), _text(value)))
        else:
            out.append((entry.file, entry.text))
    return sorted(out)


async def read_stored(client: Any) -> StoredCatalog | None:
    """The stored catalog, checked again (CatalogError if it no longer validates); None if
    nothing was ever stored."""
    raw: dict[bytes, bytes] = await client.hgetall(CATALOG_KEY)
    if not raw:
        return None
    sources = _sources_of(raw)
    return StoredCatalog(raw=raw, sources=tuple(sources), catalog=load_texts(sources))


async def stored_catalog(client: Any) -> Catalog | None:
    """The stored catalog (CatalogError if it no longer validates); None if none is stored."""
    stored = await read_stored(client)
    return None if stored is None else stored.catalog


def merge_sources(
    stored: StoredCatalog | None,
    loaded: Catalog,
    loaded_sources: Iterable[tuple[str, str]],
    remove: Iterable[str] = (),
) -> Sources:
    """The sources of the catalog after loading ``loaded`` tenant by tenant: every stored tenant
    not loaded and not in ``remove`` is kept as stored, every loaded tenant comes from its file."""
    replaced = {t.id for t in loaded.tenants} | set(remove)
    kept = [] if stored is None else [
        source for tenant, source in stored.sources_by_tenant().items() if tenant not in replaced
    ]  # fmt: skip
    return sorted([*kept, *by_tenant(loaded, list(loaded_sources)).values()])


def _fields(catalog: Catalog, sources: Sequence[tuple[str, str]]) -> dict[str, bytes]:
    return {
        tenant: _encode(StoredTenant(file=file, text=text))
        for tenant, (file, text) in by_tenant(catalog, sources).items()
    }


async def write_catalog(
    client: Any,
    sources: Sequence[tuple[str, str]],
    *,
    expected: StoredCatalog | None = None,
    check_unchanged: bool = True,
) -> Catalog:
    """Replace the stored catalog with the one built from ``sources`` (validated here; raises
    CatalogError), then tell every server to reload it.

    ``expected`` is the stored catalog the caller computed ``sources`` from (None: nothing was
    stored): with ``check_unchanged``, if the hash changed since, CatalogChanged is raised and
    nothing is written, so two concurrent loads never silently undo each other.
    """
    catalog = load_texts(list(sources))
    fields = _fields(catalog, sources)
    async with client.pipeline(transaction=True) as pipe:
        if check_unchanged:
            await pipe.watch(CATALOG_KEY)
            current = await pipe.hgetall(CATALOG_KEY)
            if current != ({} if expected is None else expected.raw):
                await pipe.reset()
                raise CatalogChanged("the stored catalog changed meanwhile; run the command again")
            pipe.multi()
        pipe.delete(CATALOG_KEY)
        if fields:
            pipe.hset(CATALOG_KEY, mapping=fields)
        try:
            await pipe.execute()
        except WatchError as exc:
            raise CatalogChanged(
                "the stored catalog changed meanwhile; run the command again"
            ) from exc
    await publish_notice(client, "", "", CATALOG_NOTICE)
    return catalog


async def store_catalog(client: Any, sources: Sequence[tuple[str, str]]) -> None:
    """Replace the whole stored catalog with ``sources`` (tenants not in them are dropped) and
    tell every server to reload it."""
    await write_catalog(client, sources, check_unchanged=False)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
