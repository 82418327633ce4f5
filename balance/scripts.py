"""The Lua scripts: read from ``balance/lua``, each prefixed with the shared helpers
(``LIB_FILES``), and run by SHA with a fallback to the full body on NOSCRIPT (Redis restarted or
failed over), so a script cache loss never fails a request.

The same scripts also form one Redis Functions library (``library_source``): a function's
helpers are built once per library load instead of on every call, which makes the per-CCR script
markedly cheaper inside Redis. The lean standalone connection calls them with FCALL, loads the
library when Redis does not have it, and falls back to EVALSHA for good when the user may not
load or call functions (a tenant ACL user: ``balance.tenants`` loads the library with the admin
connection). Cluster and redis-py pipelines keep EVALSHA (redis-py resolves FCALL's keys with an
extra COMMAND GETKEYS round trip on a cluster).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, NoScriptError, ResponseError

from balance.cluster_lanes import ClusterLanes, redirected, table_stale
from balance.continuations import Then
from balance.replica_wait import ReplicaWait
from balance.resp import RespLane, fcall_head, pack_fcall

# The helpers prefixed to every script, in this order (each may use what the earlier define).
LIB_FILES = ("lib.lua", "lib_events.lua", "lib_offline.lua")
# Flags per script (the #!lua shebang line); read-only scripts may run on replicas.
SCRIPT_FLAGS: dict[str, str] = {
    "ccr": "",
    "provision": "",
    "topup": "",
    "adjust": "",
    "state": "",
    "bucket": "",
    "grant": "",
    "change_plan": "",
    "shared_fill": "",
    "shared_draw": "",
    "debit": "",
    "debit_many": "",
    "offline": "",
    "offline_many": "",
    "refund": "",
    "refund_debit": "",
    "expire": "",
    "sim": "",
    "delete": "",
    "activate": "",
    "expiry_warn": "",
    "price_check": "no-writes",
}


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    body: str
    sha: str
    function: str = ""  # FCALL name in the library ("" = EVAL only)


def _read(name: str) -> str:
    return resources.files("balance").joinpath("lua", name).read_text(encoding="utf-8")


_DEFINED_RE = re.compile(r"^local (?:function (\w+)|([\w, ]+?)\s*=)", re.MULTILINE)
_WORD_RE = re.compile(r"[A-Za-z_]\w*")


def _definitions(block: str) -> set[str]:
    names: set[str] = set()
    for function, variables in _DEFINED_RE.findall(block):
        names.update([function] if function else [v.strip() for v in variables.split(",")])
    return names


def lib_for(script_body: str, lib: str) -> str:
    """The blocks of ``lib`` (separated by blank lines) that ``script_body`` needs, in order.

    An EVAL script creates every closure of its chunk on every call (≈ 0.3 µs each on a small
    box), so a script carries only the helpers it references, directly or through other
    helpers. Blocks that define nothing (comments) are kept.
    """
    blocks = lib.split("\n\n")
    defined = [_definitions(block) for block in blocks]
    needed = set(_WORD_RE.findall(script_body))
    keep = [not names for names in defined]
    changed = True
    while changed:
        changed = False
        for index in range(len(blocks) - 1, -1, -1):
            if not keep[index] and defined[index] & needed:
                keep[index] = True
                needed.update(_WORD_RE.findall(blocks[index]))
                changed = True
    return "\n\n".join(block for block, kept in zip(blocks, keep, strict=True) if kept)


def shared_lib(read: Callable[[str], str] = _read) -> str:
    """The shared helpers (LIB_FILES), one text in their order."""
    return "\n".join(read(name) for name in LIB_FILES)


def build_script(name: str) -> LuaScript:
    flags = SCRIPT_FLAGS[name]
    shebang = f"#!lua flags={flags}" if flags else "#!lua"
    script = _read(name + ".lua")
    body = f"{shebang}\n{lib_for(script, shared_lib(_read))}\n{script}"
    return LuaScript(name, body, hashlib.sha1(body.encode("utf-8")).hexdigest())


LIBRARY_PREFIX = "ocs_ledger_"


def library_source(
    scripts: dict[str, LuaScript] | Sequence[str], read: Callable[[str], str] = _read
) -> tuple[str, dict[str, str]]:
    """The Functions library holding every script, and each script's function name.

    Names carry a digest of the source, so a deployment's library never replaces another
    version's (a rolling upgrade runs both) and loading is idempotent. Library code may not
    touch globals such as ``math`` while it loads, so the helpers and script bodies are built by
    ``build`` on the first call and kept as upvalues. ``read`` gives a file's text (another
    version's, for a before/after benchmark).
    """
    lib = shared_lib(read)
    bodies = {name: read(name + ".lua") for name in scripts}
    digest = hashlib.sha1(
        "\0".join([lib, *(f"{n}\0{b}" for n, b in sorted(bodies.items()))]).encode("utf-8")
    ).hexdigest()[:16]
    names = {name: f"ocs_{name}_{digest}" for name in scripts}
    parts = [f"#!lua name={LIBRARY_PREFIX}{digest}", "local impl", "local function build()", lib]
    parts.append("local scripts = {}")
    for name, body in bodies.items():
        parts.append(f"scripts[{name!r}] = function(KEYS, ARGV)\n{body}\nend")
    parts.append("return scripts\nend")
    for name in scripts:
        flags = SCRIPT_FLAGS[name]
        flag_list = "{" + ", ".join(repr(f) for f in flags.split(",") if f) + "}"
        parts.append(
            f"redis.register_function{{function_name = {names[name]!r}, flags = {flag_list},"
            f" callback = function(keys, args) if not impl then impl = build() end"
            f" return impl[{name!r}](keys, args) end}}"
        )
    return "\n".join(parts) + "\n", names


@dataclass(frozen=True, slots=True)
class ScriptSet:
    """All ledger scripts, built once per process (pure data; clients share it)."""

    scripts: dict[str, LuaScript]
    library: str = ""

    @classmethod
    def load(cls) -> ScriptSet:
        plain = {name: build_script(name) for name in SCRIPT_FLAGS}
        library, functions = library_source(plain)
        scripts = {
            name: LuaScript(s.name, s.body, s.sha, functions[name]) for name, s in plain.items()
        }
        return cls(scripts, library)

    def __getitem__(self, name: str) -> LuaScript:
        return self.scripts[name]


def function_missing(exc: ResponseError) -> bool:
    return "Function not found" in str(exc)


def _functions_refused(exc: ResponseError) -> bool:
    """The user may not call or load functions (the command itself refused, not a key)."""
    message = str(exc)
    return isinstance(exc, NoPermissionError) and ("'fcall'" in message or "'function" in message)


async def load_library(client: Any, library: str) -> None:
    """FUNCTION LOAD the ledger library (an admin connection; every primary of a cluster).
    A library of the same name is the same code, so "already exists" is success."""
    try:
        if isinstance(client, RedisCluster):
            await client.execute_command(
                "FUNCTION", "LOAD", library, target_nodes=client.get_primaries()
            )
        else:
            await client.execute_command("FUNCTION", "LOAD", library)
    except ResponseError as exc:
        if "already exists" not in str(exc):
            raise


async def run_script(
    client: Any, script: LuaScript, keys: Sequence[str], args: Sequence[bytes | str | int]
) -> Any:
    """EVALSHA, and on NOSCRIPT one EVAL of the body (which also caches it on that node)."""
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return await client.eval(script.body, len(keys), *keys, *args)


CLUSTER_ATTEMPTS = 4  # calls redirected or cut off this often go through redis-py's path
CLUSTER_RETRY_S = 0.05  # first pause before asking a moving cluster again (doubling)

PendingCall = tuple[LuaScript, Sequence[str], Sequence[bytes | str | int], "asyncio.Future[Any]"]


class ScriptCaller:
    """Runs scripts on one client. Calls made in the same event-loop turn leave as one pipeline
    (one write, one pass over the replies): per-call client overhead then stays well below the
    script's own cost in Redis, which is what bounds a charging node's throughput.

    Each call still gets its own reply or error; a NOSCRIPT reply is retried alone with EVAL.
    Plain-TCP standalone clients use ``balance.resp`` (a lean pipelined connection); TLS or
    unix-socket clients use redis-py pipelines; plain-TCP cluster clients get one lean
    connection per primary (``balance.cluster_lanes``), with redis-py's cluster path behind
    them for what they cannot do (redirections, topology changes, connecting).
    """

    def __init__(
        self,
        client: Any,
        *,
        batch_max: int = 64,
        library: str = "",
        reload_library: Callable[[], Awaitable[None]] | None = None,
        replica_wait: ReplicaWait | None = None,
    ) -> None:
        """``replica_wait``: the lean connections end each batch with WAIT and hold its
        answers until then (``balance.replica_wait``)."""
        if batch_max <= 0:
            raise ValueError("batch_max must be positive")
        self.client = client
        self.batch_max = batch_max
        self._pending: list[PendingCall] = []
        self._flush_scheduled = False
        self._senders: set[asyncio.Task[None]] = set()
        # redis-py refuses EVALSHA in cluster pipelines: on a cluster every call goes alone
        # (the cluster spreads the load over its primaries instead).
        self._batching = not isinstance(client, RedisCluster)
        # Plain-TCP standalone clients get the lean pipelined connection for scripts, plain-TCP
        # cluster clients one per primary.
        self._lane = RespLane.for_client(client, replica_wait) if self._batching else None
        self._cluster = ClusterLanes.for_client(client, replica_wait)
        # FCALL on the lean connection while it works; False after the user was refused.
        self._library = library
        self._functions = bool(library) and (self._lane is not None or self._cluster is not None)
        # Loads the library on an admin connection (a tenant user may not FUNCTION LOAD).
        self._reload_library = reload_library
        # The packed start of each FCALL shape (function, keys, arguments) sent by start_then.
        self._fcall_heads: dict[tuple[str, int, int], bytes] = {}

    async def call(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[bytes | str | int]
    ) -> Any:
        if self._lane is not None:
            if self._functions and script.function:
                try:
                    return await self._function_call(self._lane, script, keys, args)
                except ResponseError as exc:
                    if not _functions_refused(exc):
                        raise
                    self._functions = False
            try:
                return await self._lane.call(
                    ["EVALSHA", script.sha, len(keys), *keys, *args], acknowledged=True
                )
            except NoScriptError:
                return await self._lane.call(
                    ["EVAL", script.body, len(keys), *keys, *args], acknowledged=True
                )
        if self._cluster is not None:
            return await self._cluster_call(self._cluster, script, keys, args)
        if not self._batching:
            return await run_script(self.client, script, keys, args)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def start(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[bytes | str | int]
    ) -> asyncio.Future[Any] | None:
        """The call started at once, as a future of its raw reply, on the hot path's terms: an
        open lean connection and the Functions library in use. None otherwise: ``call`` then
        does what it takes (connecting, loading the library, EVALSHA, the redis-py pipeline).
        A reply of "Function not found" or a lost connection is the caller's to retry through
        ``call``, which reloads the library or reconnects."""
        cluster = self._cluster
        if cluster is not None:
            # On a cluster EVALSHA too (NOSCRIPT is retried through ``call``, which EVALs).
            connection = cluster.ready_for(str(keys[0])) if keys else None
            if connection is None:
                return None
            return connection.call(self._command(script, keys, args), acknowledged=True)
        lane = self._lane
        if lane is None or not self._functions or not script.function:
            return None
        connection = lane.ready
        if connection is None:
            return None
        command = ["FCALL", script.function, len(keys), *keys, *args]
        return connection.call(command, acknowledged=True)

    def start_then(
        self,
        script: LuaScript,
        keys: Sequence[str],
        args: Sequence[bytes | str | int],
        then: Then,
        other_keys: bytes | None = None,
    ) -> bool:
        """``start`` with a continuation instead of a future (``RespConnection.call_then``):
        True once the call is sent; False on the same conditions as ``start``'s None.
        ``other_keys``: ``keys[1:]`` already encoded (``resp.encoded_keys``), kept by the
        caller: the FCALL is then packed here, cheaper than by hiredis (same bytes)."""
        cluster = self._cluster
        if cluster is not None:
            connection = cluster.ready_for(str(keys[0])) if keys else None
            if connection is None:
                return False
            connection.call_then(self._command(script, keys, args), then, acknowledged=True)
            return True
        lane = self._lane
        if lane is None or not self._functions or not script.function:
            return False
        connection = lane.ready
        if connection is None:
            return False
        if other_keys is None or not keys:
            connection.call_then(
                ("FCALL", script.function, len(keys), *keys, *args), then, acknowledged=True
            )
            return True
        shape = (script.function, len(keys), len(args))
        head = self._fcall_heads.get(shape)
        if head is None:
            head = self._fcall_heads[shape] = fcall_head(*shape)
        connection.send_then(pack_fcall(head, keys[0], other_keys, args), then, True)
        return True

    def _command(
        self,
        script: LuaScript,
        keys: Sequence[str],
        args: Sequence[bytes | str | int],
        *,
        body: bool = False,
    ) -> list[bytes | str | int]:
        if body:
            return ["EVAL", script.body, len(keys), *keys, *args]
        if self._functions and script.function:
            return ["FCALL", script.function, len(keys), *keys, *args]
        return ["EVALSHA", script.sha, len(keys), *keys, *args]

    def retry_on_full_path(self, exc: BaseException) -> bool:
        """Whether a call ``start`` sent, failing with ``exc``, did not run and is to be sent
        again through ``call`` (which reconnects, reloads the library or follows the cluster);
        notes what the failure says about the topology or the user's rights."""
        if isinstance(exc, RedisConnectionError):
            if self._cluster is not None:
                self._cluster.mark_stale()  # the primary may have failed over
            return True
        if not isinstance(exc, ResponseError):
            return False
        if isinstance(exc, NoScriptError) or function_missing(exc):
            return True
        if _functions_refused(exc):
            self._functions = False
            return True
        if self._cluster is not None and redirected(exc):
            if table_stale(exc):
                self._cluster.mark_stale()
            return True
        return False

    async def _cluster_call(
        self,
        cluster: ClusterLanes,
        script: LuaScript,
        keys: Sequence[str],
        args: Sequence[bytes | str | int],
    ) -> Any:
        """On the slot primary's lean connection, asking the cluster for its slot table first
        when it changed (MOVED, a lost primary); ASK, or a cluster still moving after a few
        tries: through redis-py's cluster path, which follows it (without the replica wait)."""
        key = str(keys[0])
        body = moving = False
        for attempt in range(CLUSTER_ATTEMPTS):
            if moving:
                # The cluster is still agreeing on the new primary (a failover) or asked to try
                # again: give its bus a moment before asking again.
                await asyncio.sleep(CLUSTER_RETRY_S * 2 ** (attempt - 1))
            if cluster.stale:
                await cluster.refresh()
            command = self._command(script, keys, args, body=body)
            try:
                connection = await cluster.connect_for(key)
                return await connection.call(command, acknowledged=True)
            except (RedisConnectionError, ResponseError) as exc:
                if not self.retry_on_full_path(exc):
                    raise
                moving = False
                if isinstance(exc, NoScriptError):
                    body = True
                elif isinstance(exc, ResponseError) and function_missing(exc):
                    await self._load_cluster_library()
                elif str(exc).startswith("ASK"):
                    break
                else:
                    moving = True  # MOVED, READONLY, TRYAGAIN, CLUSTERDOWN, a lost primary
        return await run_script(self.client, script, keys, args)

    async def _function_call(
        self,
        lane: RespLane,
        script: LuaScript,
        keys: Sequence[str],
        args: Sequence[bytes | str | int],
    ) -> Any:
        command = ["FCALL", script.function, len(keys), *keys, *args]
        try:
            return await lane.call(command, acknowledged=True)
        except ResponseError as exc:
            if not function_missing(exc):
                raise
        # Redis lost the library (FUNCTION FLUSH, a new server): load it and call again.
        if self._reload_library is not None:
            await self._reload_library()
            return await lane.call(command, acknowledged=True)
        try:
            await lane.call(["FUNCTION", "LOAD", self._library])
        except ResponseError as exc:
            if "already exists" not in str(exc):
                raise
        return await lane.call(command, acknowledged=True)

    async def _load_cluster_library(self) -> None:
        """The library on every primary again, for the next lean calls: on the admin connection
        when there is one, else by this client; a user that may not load it stays on EVALSHA."""
        try:
            if self._reload_library is not None:
                await self._reload_library()
            else:
                await load_library(self.client, self._library)
        except NoPermissionError:
            self._functions = False

    def close(self) -> None:
        if self._lane is not None:
            self._lane.close()
        if self._cluster is not None:
            self._cluster.close()

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        for start in range(0, len(batch), self.batch_max):
            task = asyncio.ensure_future(self._send(batch[start : start + self.batch_max]))
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)

    async def _send(self, batch: list[PendingCall]) -> None:
        try:
            await self._send_batch(batch)
        except BaseException as exc:
            # Whatever went wrong, no caller is left waiting for ever.
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    async def _send_batch(self, batch: list[PendingCall]) -> None:
        if len(batch) == 1:
            script, keys, args, future = batch[0]
            await self._settle(future, run_script(self.client, script, keys, args))
            return
        pipe = self.client.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        replies = await pipe.execute(raise_on_error=False)
        for (script, keys, args, future), reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError):
                await self._settle(future, run_script(self.client, script, keys, args))
            elif future.done():
                continue  # the caller gave up (cancelled)
            elif isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    @staticmethod
    async def _settle(future: asyncio.Future[Any], call: Any) -> None:
        try:
            reply = await call
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(reply)
