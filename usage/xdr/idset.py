"""The record ids of one file seen so far, in bounded memory (the in-file duplicate check)."""

from __future__ import annotations

from array import array

import numpy as np
import numpy.typing as npt


class IdSet:
    """The record ids of one file, as 64-bit hashes in an open-addressing table (16 bytes per
    id at most half full, instead of ~100 for a set of strings), growing to ``slots_max``
    slots (8 MiB: 512Ki ids) and no further, so memory is bounded whatever the file's size.

    Past that, ids are no longer remembered; an id repeated in the file is then caught by the
    ledger instead (the same op id: a replay, counted as duplicate, or with other content a
    ``duplicate_id`` reject), so it is still never charged twice. Two ids with one hash (odds
    ~n²/2⁶⁵) would make the second a false duplicate: rejected, never charged twice."""

    def __init__(self, capacity: int = 1 << 16, slots_max: int = 1 << 20) -> None:
        self._slots = array("q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._count = 0
        self._slots_max = slots_max
        self.full = False

    def add(self, key: str) -> bool:
        """Add ``key``; False when it was there already (or True, unremembered, when full)."""
        value = hash(key) or 1  # 0 marks an empty slot
        slots, mask = self._slots, self._mask
        index = value & mask
        while True:
            found = slots[index]
            if found == 0:
                if self.full:
                    return True
                slots[index] = value
                self._count += 1
                if self._count * 2 > mask:
                    if mask + 1 >= self._slots_max:
                        self.full = True
                    else:
                        self._grow()
                return True
            if found == value:
                return False
            index = (index + 1) & mask

    def add_many(self, keys: list[str]) -> npt.NDArray[np.bool_]:
        """``add`` for each key in order, with vector operations: True where it was new."""
        values = np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys))
        values[values == 0] = 1
        new = np.zeros(len(keys), dtype=np.bool_)
        start = 0
        while start < len(values):
            if self.full:
                new[start:] = self._probe(values[start:], insert=False)
                break
            # At most this many inserts before the table must grow (or stop growing).
            room = max(self._mask // 2 + 1 - self._count, 1)
            piece = values[start : start + room]
            new[start : start + len(piece)] = self._probe(piece, insert=True)
            start += len(piece)
            if self._count * 2 > self._mask:
                if self._mask + 1 >= self._slots_max:
                    self.full = True
                else:
                    self._grow()
        return new

    def _probe(self, values: npt.NDArray[np.int64], *, insert: bool) -> npt.NDArray[np.bool_]:
        """Linear probing for all ``values`` at once: each finds itself (False) or an empty
        slot (True, taken when ``insert``; of several values meeting one empty slot the
        earliest takes it and the others look on, as one at a time in order would)."""
        table = np.frombuffer(self._slots, dtype=np.int64)
        mask = self._mask
        index = values & mask
        new = np.zeros(len(values), dtype=np.bool_)
        pending = np.arange(len(values))
        while pending.size:
            slots = table[index[pending]]
            hit = slots == values[pending]
            empty = slots == 0
            waiting = pending[empty]
            if waiting.size and insert:
                _, first = np.unique(index[waiting], return_index=True)
                winners = waiting[first]
                table[index[winners]] = values[winners]
                new[winners] = True
                self._count += len(winners)
                losers = np.setdiff1d(waiting, winners, assume_unique=True)
            else:
                new[waiting] = True
                losers = waiting[:0]
            moving = pending[~hit & ~empty]
            index[moving] = (index[moving] + 1) & mask
            pending = np.sort(np.concatenate([moving, losers]))
        return new

    def _grow(self) -> None:
        old = np.frombuffer(self._slots, dtype=np.int64)
        capacity = (self._mask + 1) * 2
        self._slots = array("q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._probe(old[old != 0], insert=True)
        self._count = int(np.count_nonzero(old))
