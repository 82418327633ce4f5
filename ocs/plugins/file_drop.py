"""File drop: events batched into CSV files per interval, each with a manifest, for host MNOs
that take files instead of calls.

Options: ``directory`` (required; created if missing), ``interval_s`` (60: how long a batch
collects), ``batch_max`` (10000 events: a full batch is written at once), ``prefix``
(``events``). Each batch becomes ``<prefix>-<UTC time>-<n>.csv`` (columns ``id, type, tenant,
subscriber, at, op_id, payload``; payload as JSON) and then ``<same name>.manifest.json``
(``file``, ``rows``, ``sha256``, ``first_id``, ``last_id``, ``created_at``). Both are written
to a temporary name, fsynced and renamed, the manifest last: a collector takes a CSV only once
its manifest exists. ``handle`` answers ok only once the batch holding the event is on disk,
so the dispatch file's ``handle_timeout_s`` must exceed ``interval_s``. After a crash a batch
may be written again in a later file (at least once): the ``id`` column deduplicates.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from balance.events import Event
from ocs.dispatch_core import Verdict
from ocs.plugins import PluginConfigError, option

COLUMNS = ("id", "type", "tenant", "subscriber", "at", "op_id", "payload")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


class FileDropPlugin:
    def __init__(
        self,
        directory: Path,
        *,
        interval_s: float = 60.0,
        batch_max: int = 10_000,
        prefix: str = "events",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_s <= 0 or batch_max <= 0:
            raise PluginConfigError("options 'interval_s' and 'batch_max' must be positive")
        if not prefix.replace("-", "").replace("_", "").isalnum():
            raise PluginConfigError("option 'prefix': letters, digits, - and _ only")
        self.directory = directory
        self.interval_s = interval_s
        self.batch_max = batch_max
        self.prefix = prefix
        self.clock = clock
        self._batch: list[tuple[Event, asyncio.Future[Verdict]]] = []
        self._timer: asyncio.Task[None] | None = None
        self._sequence = 0
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PluginConfigError(f"option 'directory': {exc.strerror}") from None

    async def handle(self, event: Event) -> Verdict:
        done: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._batch.append((event, done))
        if len(self._batch) >= self.batch_max:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._after_interval())
        return await done

    async def _after_interval(self) -> None:
        await asyncio.sleep(self.interval_s)
        self._timer = None
        self._flush()

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            self._write([event for event, _ in batch])
            verdict = Verdict.OK
        except OSError:
            verdict = Verdict.RETRY  # disk full, directory gone: the events come back later
        for _, done in batch:
            if not done.done():
                done.set_result(verdict)

    def _write(self, events: list[Event]) -> None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(COLUMNS)
        for e in events:
            payload = json.dumps(e.payload, sort_keys=True, separators=(",", ":"))
            writer.writerow([e.id, e.type, e.tenant, e.subscriber, e.at_s, e.op_id, payload])
        data = text.getvalue().encode("utf-8")
        self._sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.clock()))
        name = f"{self.prefix}-{stamp}-{os.getpid()}-{self._sequence}.csv"
        _write_atomic(self.directory / name, data)
        manifest = {
            "file": name,
            "rows": len(events),
            "sha256": hashlib.sha256(data).hexdigest(),
            "first_id": events[0].id,
            "last_id": events[-1].id,
            "created_at": self.clock(),
        }
        _write_atomic(
            self.directory / f"{name}.manifest.json",
            json.dumps(manifest, indent=2).encode("utf-8"),
        )

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._flush()


def create(options: Mapping[str, Any]) -> FileDropPlugin:
    return FileDropPlugin(
        Path(option(options, "directory", str)),
        interval_s=option(options, "interval_s", float, 60.0),
        batch_max=option(options, "batch_max", int, 10_000),
        prefix=option(options, "prefix", str, "events"),
    )
