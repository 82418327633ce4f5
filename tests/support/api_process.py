"""Run a real ``ocs api`` process (and its keys through ``ocs apikey``) for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ocs.embedded_redis import free_tcp_port


class ApiProcess:
    def __init__(self, workdir: Path, *, redis_url: str, store_url: str) -> None:
        self.workdir = workdir
        self.port = free_tcp_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "api.log"
        self.env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            OCS_REDIS_URL=redis_url,
            OCS_REDIS_DATA_DIR=str(workdir / "redis"),
            OCS_STORE_URL=store_url,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def ocs(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ocs", *argv],
            capture_output=True, text=True, env=self.env, cwd=self.workdir, timeout=60,
        )  # fmt: skip

    def key(self, *args: str) -> str:
        out = self.ocs("apikey", "create", *args, "--json")
        assert out.returncode == 0, out.stderr
        key: str = json.loads(out.stdout)["key"]
        return key

    def start(self, timeout_s: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ocs", "api", "--listen", f"127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=self.env,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ocs api exited {self.proc.returncode}: {self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"ocs api did not become ready: {self.log_text()}")

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
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
