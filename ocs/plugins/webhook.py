"""Webhook plug-in: POST the event as JSON, signed, with the event id as idempotency key.

Options: ``url`` (required), ``secret`` (HMAC key, at least 16 bytes; or ``secret_env``: the
name of an environment variable holding it), ``timeout_s`` (5). Headers sent:

- ``Idempotency-Key: <event id>`` — the same on every redelivery of the event;
- ``X-OCS-Event-Type: <type>``;
- ``X-OCS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`` — the
  receiver recomputes it over the raw body and may refuse old ``t`` (replays).

Answers: 2xx → ok; 408, 425, 429, 5xx, no answer → retry; any other 4xx → fail (the receiver
refuses the event itself; retrying would not help).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from balance.events import Event
from ocs.dispatch_core import Verdict
from ocs.plugins import PluginConfigError, option

SIGNATURE_HEADER = "X-OCS-Signature"
RETRY_STATUSES = frozenset({408, 425, 429})


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, header: str, body: bytes) -> bool:
    """What a receiver does (and the tests): recompute and compare in constant time."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        return False
    return hmac.compare_digest(sign(secret, int(parts["t"]), body), header)


def event_body(event: Event) -> bytes:
    return json.dumps(event.to_json(), separators=(",", ":"), sort_keys=True).encode("utf-8")


def verdict_of(status: int) -> Verdict:
    if 200 <= status < 300:
        return Verdict.OK
    if status in RETRY_STATUSES or status >= 500:
        return Verdict.RETRY
    return Verdict.FAIL


def secret_from(options: Mapping[str, Any]) -> bytes:
    if "secret_env" in options:
        name = option(options, "secret_env", str)
        value = os.environ.get(name)
        if not value:
            raise PluginConfigError(f"option 'secret_env': environment variable {name} is empty")
    else:
        value = option(options, "secret", str)
    if len(value.encode("utf-8")) < 16:
        raise PluginConfigError("option 'secret': at least 16 bytes")
    return value.encode("utf-8")


class WebhookPlugin:
    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise PluginConfigError("option 'url': must be an http:// or https:// URL")
        self.url = url
        self.secret = secret
        self.clock = clock
        self.client = httpx.AsyncClient(timeout=timeout_s)

    async def handle(self, event: Event) -> Verdict:
        body = event_body(event)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": event.id,
            "X-OCS-Event-Type": event.type,
            SIGNATURE_HEADER: sign(self.secret, int(self.clock()), body),
        }
        try:
            response = await self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError:
            return Verdict.RETRY
        return verdict_of(response.status_code)

    async def aclose(self) -> None:
        await self.client.aclose()


def create(options: Mapping[str, Any]) -> WebhookPlugin:
    return WebhookPlugin(
        option(options, "url", str),
        secret_from(options),
        timeout_s=option(options, "timeout_s", float, 5.0),
    )
