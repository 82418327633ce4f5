"""Assembly of one server process: Redis, catalog, charging, Diameter, SIP and HTTP listeners.

Start order goes from the data outwards (Redis, catalog, then listeners) so the first CCR already
finds everything it needs; stop order is the reverse, and the Diameter side drains in-flight
requests and sends DPR before Redis goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog

from diameter_apps.codec import Message
from diameter_apps.codes import VENDOR_3GPP, ApplicationId, CommandCode
from diameter_apps.errors import UnableToComply
from diameter_apps.events import RequestReceived
from diameter_apps.router import Router
from ocs.config import Config
from ocs.diameter_server import DiameterServer, build_router
from ocs.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from ocs.http_server import HttpRouter, HttpServer
from ocs.logging_setup import make_logger
from ocs.metrics import Metrics


class StartupError(RuntimeError):
    """The server cannot start; the message says what to fix."""


def _charging_not_configured(event: RequestReceived) -> Message:
    raise UnableToComply("charging is not configured on this server")


class OcsApp:
    def __init__(
        self, config: Config, *, logger: structlog.typing.FilteringBoundLogger | None = None
    ):
        self.config = config
        self.log = logger or make_logger(config.log.level, json=config.log.json)
        self.metrics = Metrics()
        self.embedded_redis: EmbeddedRedis | None = None
        self.redis: aioredis.Redis | None = None
        self.diameter: DiameterServer | None = None
        self.http: HttpServer | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        await self._start_redis()
        router = build_router(self._register_applications)
        self.diameter = DiameterServer(self.config.diameter, router, self.metrics, self.log)
        host, port = await self.diameter.start()
        self.log.info("diameter_listening", host=host, port=port)
        self.http = HttpServer(
            HttpRouter(),
            self.metrics,
            health=self._health,
            request_bytes_max=self.config.http.request_bytes_max,
        )
        host, port = await self.http.start(
            self.config.http.listen_host, self.config.http.listen_port
        )
        self.log.info("http_listening", host=host, port=port)

    def _register_applications(self, router: Router) -> None:
        """Credit control (application 4, advertised as 3GPP 10415 in the grouped form)."""
        router.register(
            ApplicationId.CREDIT_CONTROL,
            CommandCode.CREDIT_CONTROL,
            _charging_not_configured,
            vendor_id=VENDOR_3GPP,
        )

    async def _start_redis(self) -> None:
        url = self.config.redis.url
        if url is None:
            data_dir = Path(self.config.redis.data_dir)
            self.embedded_redis = EmbeddedRedis(
                data_dir,
                port=self.config.redis.embedded_port,
                appendfsync=self.config.redis.appendfsync,
            )
            try:
                await asyncio.to_thread(self.embedded_redis.start)
            except EmbeddedRedisError as exc:
                raise StartupError(str(exc)) from exc
            url = self.embedded_redis.url
            (data_dir / "redis.url").write_text(url + "\n")
            self.log.info("embedded_redis_started", url=url, data_dir=str(data_dir))
        self.redis = aioredis.Redis.from_url(url, socket_timeout=self.config.redis.timeout_s)
        try:
            await self.redis.ping()
        except Exception as exc:  # any failure here means "cannot reach Redis"
            raise StartupError(f"cannot reach Redis at {url}: {exc}") from exc

    async def _health(self) -> dict[str, Any]:
        report: dict[str, Any] = {"status": "ok"}
        try:
            assert self.redis is not None
            await self.redis.ping()
            report["redis"] = "ok"
        except Exception as exc:
            report.update(status="degraded", redis=f"unreachable: {type(exc).__name__}")
        if self.diameter is not None:
            report["diameter_peers"] = self.diameter.open_peer_count
        return report

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self) -> None:
        if self.diameter is not None:
            await self.diameter.shutdown(self.config.diameter.shutdown_grace_s)
        if self.http is not None:
            await self.http.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.embedded_redis is not None:
            await asyncio.to_thread(self.embedded_redis.stop)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(Path(self.config.redis.data_dir) / "redis.url")
        self.log.info("stopped")

    async def run_until_stopped(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.start()
            self.log.info("ready")
            await self._stop.wait()
            self.log.info("stopping")
        finally:
            await self.stop()
        return 0
