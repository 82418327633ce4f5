"""A private ``redis-server`` process: the embedded default of ``ocs serve`` and the tests' Redis.

The ledger's guarantees depend on Redis settings (no eviction, AOF), so the process we start sets
them explicitly instead of trusting whatever ``redis.conf`` the machine has.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis

APPENDFSYNC_CHOICES = ("always", "everysec", "no")
ACL_FILE = "users.acl"


class EmbeddedRedisError(RuntimeError):
    """redis-server is missing, would not start, or did not answer in time."""


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free now (a race remains; start() retries on bind failure)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """Start, stop, kill and restart one ``redis-server`` bound to loopback.

    ``port=0`` picks a free port. Data (AOF, RDB, log) lives under ``data_dir`` so a restart after
    ``kill()`` replays the AOF: that is what the crash tests rely on.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        appendonly: bool = True,
        appendfsync: str = "everysec",
        extra_args: Sequence[str] = (),
        server_bin: str = "redis-server",
        aclfile: bool = False,
    ) -> None:
        if appendfsync not in APPENDFSYNC_CHOICES:
            raise EmbeddedRedisError(
                f"appendfsync must be one of {', '.join(APPENDFSYNC_CHOICES)}, not {appendfsync!r}"
            )
        # Absolute: redis-server chdirs into --dir before it opens --logfile.
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = tuple(extra_args)
        self.server_bin = server_bin
        # ACL users in <data_dir>/users.acl (ACL SAVE writes it): a restart keeps them.
        self.aclfile = self.data_dir / ACL_FILE if aclfile else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _command(self) -> list[str]:
        sbin_path = f"/usr/sbin/{self.server_bin}"
        binary = shutil.which(self.server_bin) or (sbin_path if os.path.exists(sbin_path) else None)
        if binary is None:
            raise EmbeddedRedisError(
                f"{self.server_bin} not found: install it "
                "(Debian: apt-get install -y redis-server) "
                "or pass --redis-url to use an external Redis"
            )
        return [
            binary,
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--appendfilename", "ledger.aof",
            "--maxmemory-policy", "noeviction",
            "--logfile", str(self.data_dir / "redis.log"),
            *(["--aclfile", str(self.aclfile)] if self.aclfile is not None else []),
            *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout_s: float = 15.0) -> None:
        """Start the server and wait until it answers PING and has loaded its data."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.aclfile is not None and not self.aclfile.exists():
            self.aclfile.touch(mode=0o600)  # Redis refuses to start on a missing ACL file
        chosen_port = self.port
        for _attempt in range(5):
            if chosen_port == 0:
                self.port = free_tcp_port(self.host)
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C on the terminal is ours to handle, not Redis's
            )
            if self._wait_ready(timeout_s):
                return
            self._terminate(signal.SIGKILL)
            if chosen_port != 0:
                break
        raise EmbeddedRedisError(
            f"redis-server did not start on {self.host}:{self.port}; see {self.data_dir}/redis.log"
        )

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(host=self.host, port=self.port, socket_timeout=1.0)
        try:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    return False
                try:
                    if client.ping() and int(client.info("persistence").get("loading", 0)) == 0:
                        return True
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.exceptions.ConnectionError:
                    pass
                time.sleep(0.02)
            return False
        finally:
            client.close()

    def _terminate(self, sig: int) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._proc = None

    def stop(self) -> None:
        """Graceful stop: SIGTERM makes Redis flush the AOF before it exits."""
        self._terminate(signal.SIGTERM)

    def kill(self) -> None:
        """Crash simulation: SIGKILL, no flush. Acknowledged writes survive only per appendfsync."""
        self._terminate(signal.SIGKILL)

    def restart(self, timeout_s: float = 15.0) -> None:
        """Start again on the same port and directory (the AOF is replayed)."""
        self.stop()
        self.start(timeout_s)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
