"""The Litestar application of ``ocs api``: routers, OpenAPI at ``/openapi.json``, an offline
docs page at ``/docs`` (rendered here from the schema: Litestar's Swagger/Redoc/Scalar pages load
their scripts from a CDN, which a deployment without Internet access cannot reach)."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from litestar import Litestar, MediaType, Request, get
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from ocs.api import dashboards, import_routes, operator, plans, portfolio, product_routes
from ocs.api.dashboards import LoginRequired, login_redirect
from ocs.api.errors import HANDLERS
from ocs.api.state import ApiState

API_TITLE = "mvna-ocs API"
API_VERSION = "1"
SECURITY = "apiKey"


CSV_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "text/csv": {
            "schema": {"type": "string"},
            "example": "subscriber,imsi,balance\n+4917012345678,262019912345678,5.00\n",
        }
    },
}
PATH_TYPE = re.compile(r"\{(\w+):\w+\}")


def openapi_document(app: Litestar) -> dict[str, Any]:
    """The OpenAPI document, each operation marked with what its key needs:
    ``x-scope`` (tenant or portfolio) and ``x-required-role`` (read, operate, admin). The
    isolation tests are generated from these marks, so no route escapes them."""
    schema: dict[str, Any] = app.openapi_schema.to_schema()
    for route in app.routes:
        path = PATH_TYPE.sub(r"{\1}", route.path)
        item = schema.get("paths", {}).get(path)
        if item is None:
            continue
        for handler in getattr(route, "route_handlers", ()):
            for method in getattr(handler, "http_methods", ()):
                op = item.get(method.lower())
                if op is not None and "role" in handler.opt:
                    op["x-required-role"] = handler.opt["role"]
                    op["x-scope"] = "portfolio" if handler.opt.get("portfolio") else "tenant"
                if op is not None and handler.opt.get("csv_body"):
                    # Read raw (request.body()), so Litestar cannot derive it: declared here.
                    op["requestBody"] = CSV_BODY
    return schema


@get("/openapi.json", include_in_schema=False, media_type=MediaType.JSON)
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return openapi_document(request.app)


@get("/docs", include_in_schema=False, media_type=MediaType.HTML)
async def docs_page(request: Request[Any, Any, Any]) -> str:
    return render_docs(openapi_document(request.app))


@get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def render_docs(schema: dict[str, Any]) -> str:
    """A plain HTML reference of every operation: method, path, role, parameters, body and
    answers, with the component schemas as JSON. No script, no external asset."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>",
        esc(schema["info"]["title"]),
        " — reference</title><style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;"
        "max-width:70em}code,pre{background:#f4f4f4;padding:2px 4px}h3{margin-bottom:.2em}"
        ".m{display:inline-block;min-width:4em;font-weight:bold}"
        "pre{overflow:auto;max-height:20em}</style></head><body>",
        f"<h1>{esc(schema['info']['title'])} {esc(schema['info']['version'])}</h1>",
        "<p>Authenticate with <code>Authorization: Bearer &lt;key&gt;</code> "
        "(<code>ocs apikey create</code>). Machine-readable: <a href='/openapi.json'>"
        "/openapi.json</a>.</p>",
    ]
    for path, item in sorted(schema.get("paths", {}).items()):
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            parts.append(
                f"<h3><span class='m'>{method.upper()}</span><code>{esc(path)}</code></h3>"
                f"<p>{esc(op.get('summary', ''))} — key: {esc(op.get('x-scope', ''))} scope, "
                f"role {esc(op.get('x-required-role', ''))} or above</p>"
            )
            params = op.get("parameters", [])
            if params:
                parts.append("<ul>")
                for p in params:
                    req = " (required)" if p.get("required") else ""
                    parts.append(f"<li><code>{esc(p['name'])}</code> in {esc(p['in'])}{req}</li>")
                parts.append("</ul>")
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                parts.append(
                    f"<p>body: <code>{esc(str(body['schema'].get('$ref', '')))}</code></p>"
                )
            answers = ", ".join(esc(code) for code in op.get("responses", {}))
            parts.append(f"<p>answers: {answers}</p>")
    components = json.dumps(schema.get("components", {}).get("schemas", {}), indent=1)
    parts.append(f"<h2>Schemas</h2><pre>{esc(components)}</pre></body></html>")
    return "".join(parts)


def build_app(state: ApiState, *, extra_handlers: list[Any] | None = None) -> Litestar:
    openapi = OpenAPIConfig(
        title=API_TITLE,
        version=API_VERSION,
        path="/schema",
        render_plugins=[JsonRenderPlugin(path="/openapi.json")],
        components=Components(
            security_schemes={
                SECURITY: SecurityScheme(type="http", scheme="bearer", description="ocs apikey")
            }
        ),
        security=[{SECURITY: []}],
    )
    return Litestar(
        route_handlers=[
            openapi_json,
            docs_page,
            healthz,
            operator.router,
            plans.router,
            import_routes.router,
            product_routes.router,
            portfolio.router,
            dashboards.router,
            *(extra_handlers or []),
        ],
        openapi_config=openapi,
        exception_handlers={**HANDLERS, LoginRequired: login_redirect},
        state=State({"api": state}),
        request_max_body_size=state.config.api.body_bytes_max,
        debug=state.config.log.level == "debug",
    )
