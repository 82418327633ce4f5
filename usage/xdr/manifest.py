"""Per-file manifests: a file imported to the end is known by its sha256 and never read again.

One JSON file per imported file under the state directory (``<state dir>/manifests/<sha>.json``),
written atomically (temporary file, fsync, rename) once the import finished, so a crash mid-way
leaves no manifest and the same import runs again (the ledger's op ids keep it exact).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import msgspec

_SHA256 = re.compile(r"[0-9a-f]{64}")


class TenantTotals(msgspec.Struct):
    """One tenant's figures of one import (money in micro-units of the tenant's currency)."""

    read: int = 0
    rated: int = 0
    charged: int = 0
    duplicate: int = 0
    rejected: int = 0
    retail: int = 0
    wholesale: int = 0
    leakage: int = 0
    bucket_units: int = 0

    def add(self, other: TenantTotals) -> None:
        for field in self.__struct_fields__:
            setattr(self, field, getattr(self, field) + getattr(other, field))


class FileManifest(msgspec.Struct):
    sha256: str
    file: str
    mno: str
    completed_at_s: float
    tenants: dict[str, TenantTotals]


class ManifestStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root) / "manifests"

    def _path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"{sha256!r} is not a sha256 hex digest")
        return self.root / f"{sha256}.json"

    def find(self, sha256: str) -> FileManifest | None:
        try:
            data = self._path(sha256).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return msgspec.json.decode(data, type=FileManifest)
        except msgspec.DecodeError:
            return None  # a damaged manifest: import again (the ledger keeps it exact)

    def save(self, manifest: FileManifest) -> Path:
        path = self._path(manifest.sha256)
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        with temporary.open("wb") as handle:
            handle.write(msgspec.json.format(msgspec.json.encode(manifest)))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        with contextlib.suppress(OSError):
            directory = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        return path
