"""Proxy keys on ``ocs serve``'s call-end / reauth endpoints: checked without a database.

A SIP proxy (Kamailio, OpenSIPS) reports each call's end to ``POST /v1/calls/{reservation}/end``
and asks for more time at ``/reauth``. Those endpoints charge money, so they take a key: a
``proxy`` key made by ``ocs apikey create --tenant T --role proxy``, good for its tenants' calls
only (the reservation id names the tenant) and for nothing in the API.

Where the key is checked, and why there: the store of record for keys is PostgreSQL (``ocs
api``'s ``api_keys``), which ``ocs serve`` — the hot path — does not talk to. ``ocs apikey`` and
every ``ocs api`` start copy the usable proxy keys into one Redis hash (``ocs:proxy_keys``: the
key's SHA-256 -> its id, tenants and expiry; never the key). ``ProxyKeyVerifier`` looks a
presented key up there by its digest and remembers the answer in memory for ``cache_s``: a
steady stream of call ends costs one SHA-256 and one dict lookup each, and one Redis HGET per
key per ``cache_s``. The price is the revocation delay: a revoked key keeps working for at most
``cache_s`` (``[sip] call_key_cache_s``) on a server that checked it just before.

Timing: the lookup compares SHA-256 digests, never the secret, so how long a comparison takes
tells an attacker about a digest, from which the key cannot be recovered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from ocs.key_format import KEY_PATTERN, key_hash

PROXY_KEYS_KEY = "ocs:proxy_keys"
CACHE_ENTRIES_MAX = 10_000  # distinct presented keys remembered (cleared whole when full)


class ProxyKey(msgspec.Struct, frozen=True, array_like=True):
    key_id: str
    tenants: tuple[str, ...]
    expires_at_s: float

    def usable(self, now_s: float) -> bool:
        return now_s < self.expires_at_s


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(ProxyKey)


async def replace_all(client: Any, keys: Iterable[tuple[bytes, ProxyKey]]) -> int:
    """Make the Redis copy exactly ``keys`` (digest, key): the usable proxy keys of the store.
    A revoked or expired key drops out. Returns how many there are."""
    wanted = {digest.hex(): _ENCODER.encode(key) for digest, key in keys}
    present = {
        (field.decode() if isinstance(field, bytes) else field)
        for field in await client.hkeys(PROXY_KEYS_KEY)
    }
    stale = present - set(wanted)
    async with client.pipeline(transaction=True) as pipe:
        if stale:
            pipe.hdel(PROXY_KEYS_KEY, *sorted(stale))
        if wanted:
            pipe.hset(PROXY_KEYS_KEY, mapping=wanted)
        await pipe.execute()
    return len(wanted)


class ProxyKeyVerifier:
    """``await verify(key)``: the usable proxy key ``key`` stands for, or None."""

    def __init__(self, client: Any, *, cache_s: float, clock: Callable[[], float]) -> None:
        self._client = client
        self._cache_s = cache_s
        self._clock = clock
        self._cache: dict[bytes, tuple[float, ProxyKey | None]] = {}

    async def verify(self, presented: str) -> ProxyKey | None:
        if not KEY_PATTERN.fullmatch(presented):
            return None  # not a key at all: no lookup
        digest = key_hash(presented)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is None or now - cached[0] >= self._cache_s:
            raw = await self._client.hget(PROXY_KEYS_KEY, digest.hex())
            if len(self._cache) >= CACHE_ENTRIES_MAX:
                self._cache.clear()
            cached = (now, None if raw is None else _DECODER.decode(raw))
            self._cache[digest] = cached
        found = cached[1]
        return found if found is not None and found.usable(now) else None
