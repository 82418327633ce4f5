"""The API key format, shared by ``ocs api`` (every key) and ``ocs serve`` (proxy keys), so the
serving process checks a key without importing the API.

A key is ``ocs_<key id>_<secret>``: the key id (12 hex digits) is public — it names the key in
lists and in the audit log — and the secret is 32 random bytes. Only its SHA-256 is ever stored.
Why SHA-256 and not a slow password hash: the key has 256 bits of entropy, so nobody can guess it
from its hash however fast the hash is (slow hashes protect low-entropy passwords); a fast hash
keeps each request's check one lookup.
"""

from __future__ import annotations

import hashlib
import re
import secrets

KEY_PATTERN = re.compile(r"ocs_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
KEY_ID_PATTERN = re.compile(r"[0-9a-f]{12}")
KEY_HEADER = "x-api-key"


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def new_key() -> tuple[str, str]:
    """(key id, whole key)."""
    key_id = secrets.token_hex(6)
    return key_id, f"ocs_{key_id}_{secrets.token_urlsafe(32)}"


def presented_key(headers: dict[str, str]) -> str | None:
    """The key of ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (lower-case header
    names), or None."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get(KEY_HEADER, "").strip() or None
