"""A watched drop directory: the host MNO (or its SFTP job) puts files in, each is imported
once it has stopped growing, then moved to ``processed/`` or ``rejected/``.

- A file is taken when its size and mtime were the same at two polls in a row (an MNO
  writing a file over minutes is not read half-way); names starting with ``.`` or ending in
  ``.tmp``/``.part`` are never taken (the usual "upload, then rename" convention).
- ``processed/``: the file was read to its end (some lines may be in its rejects file, which
  moves with it). ``rejected/``: the file as a whole could not be read as the mapping says
  (e.g. its header lacks a mapped column); nothing of it was charged.
- Polling is bounded (``interval_s`` 0.1-3600) and time is injected (``sleep``), so tests run
  rounds without waiting.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

from usage.xdr.importer import ImportResult

INTERVAL_S_MIN = 0.1
INTERVAL_S_MAX = 3600.0
FILES_PER_ROUND_MAX = 1000
RESULTS_KEPT_MAX = 10_000  # a watcher runs for months: only the latest results are kept
PROCESSED = "processed"
REJECTED = "rejected"
_SKIPPED_SUFFIXES = (".tmp", ".part", ".rejects.csv")

ImportFile = Callable[[Path], Awaitable[ImportResult]]
Sleep = Callable[[float], Awaitable[None]]


class DropWatcher:
    def __init__(
        self, directory: Path, import_file: ImportFile, *, sleep: Sleep, interval_s: float = 10.0
    ) -> None:
        if not INTERVAL_S_MIN <= interval_s <= INTERVAL_S_MAX:
            raise ValueError(f"interval must be {INTERVAL_S_MIN}-{INTERVAL_S_MAX} s")
        self.directory = directory
        self.import_file = import_file
        self.sleep = sleep
        self.interval_s = interval_s
        self._seen: dict[str, tuple[int, int]] = {}
        self.results: deque[ImportResult] = deque(maxlen=RESULTS_KEPT_MAX)

    def _candidates(self) -> list[Path]:
        found = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or name.endswith(_SKIPPED_SUFFIXES):
                    continue
                if entry.is_file(follow_symlinks=False):
                    found.append(Path(entry.path))
        return sorted(found)[:FILES_PER_ROUND_MAX]

    async def poll(self) -> list[ImportResult]:
        """One round: import every file that has stopped changing since the last round."""
        done: list[ImportResult] = []
        current: dict[str, tuple[int, int]] = {}
        for path in self._candidates():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            signature = (stat.st_size, stat.st_mtime_ns)
            if self._seen.get(path.name) != signature:
                current[path.name] = signature  # new or still growing: next round
                continue
            result = await self.import_file(path)
            self._move(path, result)
            done.append(result)
        self._seen = current
        self.results.extend(done)
        return done

    def _move(self, path: Path, result: ImportResult) -> None:
        target = self.directory / (REJECTED if result.layout_error else PROCESSED)
        target.mkdir(exist_ok=True)
        os.replace(path, target / path.name)
        if result.rejects_path is not None:
            rejects = Path(result.rejects_path)
            if rejects.exists():
                os.replace(rejects, target / rejects.name)
                result.rejects_path = str(target / rejects.name)

    async def run(self, rounds: int | None = None) -> None:
        """Poll for ever (or ``rounds`` times), ``interval_s`` apart."""
        count = 0
        while rounds is None or count < rounds:
            await self.poll()
            count += 1
            if rounds is None or count < rounds:
                await self.sleep(self.interval_s)
