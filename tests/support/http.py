"""Reading a process's JSON endpoints (``/healthz``) in tests, error statuses included."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def get_json(url: str, timeout_s: float = 2.0) -> dict[str, object]:
    """The JSON body of ``url``; a 4xx/5xx answer's body too (``/healthz`` says 503 + why)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            result: dict[str, object] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        result = json.loads(exc.read())
    return result
