"""Capture loopback traffic with tshark and ask it whether anything was malformed."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path


class Capture:
    """``with Capture(path, port): ...`` records TCP traffic on ``port`` over loopback."""

    def __init__(self, path: Path, port: int, *, protocol: str = "diameter", udp: bool = False):
        self.path = path
        self.port = port
        self.protocol = protocol
        self.udp = udp
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Capture:
        tshark = shutil.which("tshark")
        if tshark is None:
            raise RuntimeError("tshark not installed (Debian: apt-get install -y tshark)")
        transport = "udp" if self.udp else "tcp"
        self._proc = subprocess.Popen(
            [tshark, "-i", "lo", "-f", f"{transport} port {self.port}", "-w", str(self.path), "-q"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # tshark logs "Capture started" once packets are really being recorded; "Capturing on"
        # comes earlier, before the capture filter is live.
        assert self._proc.stderr is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            if b"Capture started" in line or not line:
                break
        time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # let the last segments reach the capture buffer
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)

    def decode(self, display_filter: str) -> list[str]:
        """Frame numbers matching ``display_filter``, decoding the port as our protocol."""
        transport = "udp" if self.udp else "tcp"
        result = subprocess.run(
            [
                "tshark", "-r", str(self.path),
                "-d", f"{transport}.port=={self.port},{self.protocol}",
                "-Y", display_filter, "-T", "fields", "-e", "frame.number",
            ],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return [line for line in result.stdout.splitlines() if line.strip()]

    def problems(self) -> list[str]:
        """Frames tshark flags as malformed or with error-level expert info."""
        return self.decode("_ws.malformed || _ws.expert.severity == error")
