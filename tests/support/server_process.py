"""Run a real ``ocs serve`` process for end-to-end tests, on free loopback ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ocs.embedded_redis import free_tcp_port


class ServerProcess:
    def __init__(
        self,
        workdir: Path,
        *,
        redis_url: str | None,
        catalog: str | None = None,
        extra_args: Sequence[str] = (),
        origin_host: str = "ocs.test.local",
        origin_realm: str = "test.local",
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.diameter_port = free_tcp_port()
        self.http_port = free_tcp_port()
        self.sip_port = free_tcp_port()
        self.origin_host = origin_host
        self.origin_realm = origin_realm
        self.log_path = workdir / "ocs.log"
        self.env = dict(env or {})
        args = [
            sys.executable, "-m", "ocs", "serve",
            "--diameter-listen", f"127.0.0.1:{self.diameter_port}",
            "--http-listen", f"127.0.0.1:{self.http_port}",
            "--sip-listen", f"127.0.0.1:{self.sip_port}",
            "--origin-host", origin_host,
            "--origin-realm", origin_realm,
            "--redis-data-dir", str(workdir / "redis"),
            "--log-level", "debug",
        ]  # fmt: skip
        if redis_url:
            args += ["--redis-url", redis_url]
        if catalog:
            args += ["--catalog", catalog]
        self.args = [*args, *extra_args]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        self.proc = subprocess.Popen(
            self.args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ocs serve exited {self.proc.returncode}: {self.log_text()}")
            try:
                if self.health()["status"] in ("ok", "degraded"):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"ocs serve did not become ready: {self.log_text()}")

    def health(self) -> dict[str, object]:
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                result: dict[str, object] = json.loads(response.read())
                return result
        except urllib.error.HTTPError as exc:
            result = json.loads(exc.read())
            return result

    def http_get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
            body: bytes = r.read()
            return body

    def connect_diameter(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.diameter_port), timeout=60)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout_s: float = 20.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code
