"""Holding the ledger's answers until replicas have its writes: ``WAIT`` (or ``WAITAOF``)
after each pipelined batch of script calls.

A write Redis acknowledged lives on the primary only until replication carries it; a primary
lost in that window (crash, then a replica promoted) takes the acknowledged charge with it,
and the gateway was told it was charged. With ``replicas`` > 0 every batch a lean connection
writes ends with ``WAIT replicas timeout_ms``, in the same write, and the batch's answers are
released only when that reply arrives: one extra reply per batch, no extra round trip.

``WAIT`` returning fewer replicas than asked (timeout: a replica down or lagging) does not
turn the answers into errors: the scripts have run and are committed on the primary, and an
error answer would make the gateway retransmit into the stored outcome anyway, or give the
service away with its failure handling. The answers go out as they are and the shortfall is
counted (``short_batches``, ``short_calls``) and reported (``on_short``) for the operator, who
can see that durability was degraded while it lasted.

``WAITAOF 0 replicas timeout_ms`` (Redis >= 7.2) additionally waits for the replicas to fsync
the write to their AOF, so an acknowledged charge survives even a power loss of the primary
and those replicas at once; it needs ``appendonly yes`` on the replicas.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from balance.resp import pack_command

WAITAOF_VERSION = (7, 2)
Held = list[tuple["asyncio.Future[Any]", "asyncio.Future[Any]"]]


def version_tuple(version: str) -> tuple[int, ...]:
    """``"7.0.15"`` → ``(7, 0, 15)`` (non-numeric parts end it)."""
    parts: list[int] = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def supports_waitaof(version: str) -> bool:
    return version_tuple(version) >= WAITAOF_VERSION


def _copy(result: asyncio.Future[Any], source: asyncio.Future[Any]) -> None:
    if result.done():
        return
    if source.cancelled():
        result.cancel()
    elif (error := source.exception()) is not None:
        result.set_exception(error)
    else:
        result.set_result(source.result())


class ReplicaWait:
    """The WAIT a lean connection appends to each batch, and what came of them."""

    def __init__(
        self,
        replicas: int,
        timeout_ms: int,
        *,
        aof: bool = False,
        on_short: Callable[[int, int], None] | None = None,
    ) -> None:
        """``on_short(acknowledged, calls)``: a batch of ``calls`` got fewer acknowledgements
        than asked (-1: the WAIT itself failed, e.g. the connection closed)."""
        if replicas <= 0 or timeout_ms <= 0:
            raise ValueError("a replica wait needs at least one replica and a timeout")
        self.replicas = replicas
        self.timeout_ms = timeout_ms
        self.aof = aof
        parts = ("WAITAOF", 0, replicas, timeout_ms) if aof else ("WAIT", replicas, timeout_ms)
        self.command = pack_command(parts)
        self.on_short = on_short
        self.batches = 0
        self.short_batches = 0
        self.short_calls = 0

    def acknowledged(self, reply: Any) -> int:
        """Replicas that have the batch: WAIT answers a count, WAITAOF [local, replicas]."""
        if isinstance(reply, list):
            return int(reply[1]) if len(reply) > 1 else -1
        return int(reply)

    def release(self, held: Held, waiter: asyncio.Future[Any]) -> None:
        """The WAIT's reply is in: hand each held call its own reply (they all came before)."""
        self.batches += 1
        if waiter.cancelled() or waiter.exception() is not None:
            acknowledged = -1
        else:
            acknowledged = self.acknowledged(waiter.result())
        if acknowledged < self.replicas:
            self.short_batches += 1
            self.short_calls += len(held)
            if self.on_short is not None:
                self.on_short(acknowledged, len(held))
        for raw, result in held:
            if raw.done():
                _copy(result, raw)
            else:  # not reachable with in-order replies; kept so no caller waits for ever
                raw.add_done_callback(functools.partial(_copy, result))
