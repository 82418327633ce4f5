"""The Lua scripts: read from ``balance/lua``, each prefixed with the shared ``lib.lua``, and run
by SHA with a fallback to the full body on NOSCRIPT (Redis restarted or failed over), so a
script cache loss never fails a request."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

LIB_NAME = "lib.lua"
# Flags per script (the #!lua shebang line); read-only scripts may run on replicas.
SCRIPT_FLAGS: dict[str, str] = {
    "ccr": "",
    "provision": "",
    "topup": "",
    "adjust": "",
    "state": "",
    "bucket": "",
    "debit": "",
    "refund": "",
    "expire": "",
    "price_check": "no-writes",
}


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    body: str
    sha: str


def _read(name: str) -> str:
    return resources.files("balance").joinpath("lua", name).read_text(encoding="utf-8")


def build_script(name: str) -> LuaScript:
    flags = SCRIPT_FLAGS[name]
    shebang = f"#!lua flags={flags}" if flags else "#!lua"
    body = f"{shebang}\n{_read(LIB_NAME)}\n{_read(name + '.lua')}"
    return LuaScript(name, body, hashlib.sha1(body.encode("utf-8")).hexdigest())


@dataclass(frozen=True, slots=True)
class ScriptSet:
    """All ledger scripts, built once per process (pure data; clients share it)."""

    scripts: dict[str, LuaScript]

    @classmethod
    def load(cls) -> ScriptSet:
        return cls({name: build_script(name) for name in SCRIPT_FLAGS})

    def __getitem__(self, name: str) -> LuaScript:
        return self.scripts[name]


async def run_script(
    client: Any, script: LuaScript, keys: Sequence[str], args: Sequence[bytes | str | int]
) -> Any:
    """EVALSHA, and on NOSCRIPT one EVAL of the body (which also caches it on that node)."""
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return await client.eval(script.body, len(keys), *keys, *args)
