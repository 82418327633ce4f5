"""The bare Litestar hello-world ``bench_api`` measures beside ``ocs api`` (same framework, same
server, same client): what the framework alone costs on this machine."""

from __future__ import annotations

from litestar import Litestar, get


@get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


app = Litestar([hello], openapi_config=None)
