"""``ocs api`` and ``ocs apikey`` as processes: keys made, listed and revoked from the command
line, and schemathesis against the served OpenAPI document (bounded examples): no 500s, every
answer's status and body as the document says."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ocs.key_format import key_hash
from ocs.proxy_keys import PROXY_KEYS_KEY
from tests.api.conftest import ACME_SUB, CATALOG
from tests.support.api_process import ApiProcess

EXAMPLES_PER_OPERATION = 15


@pytest.fixture
def api_process(redis_url: str, store_url: str, tmp_path: Path) -> Iterator[ApiProcess]:
    subprocess.run(
        [sys.executable, "-m", "ocs", "catalog", "load", str(CATALOG), "--redis-url", redis_url,
         "--data-dir", str(tmp_path / "none")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    proc = ApiProcess(tmp_path / "api", redis_url=redis_url, store_url=store_url)
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log_text()


def test_apikey_cli_and_revocation(api_process: ApiProcess) -> None:
    key = api_process.key("--tenant", "acme", "--role", "read", "--label", "ci")
    key_id = key.split("_")[1]
    url = f"{api_process.base_url}/api/v1/tenants/acme/subscribers/{ACME_SUB}"
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.get(url, headers=auth).status_code == 200
    listed = api_process.ocs("apikey", "list")
    assert key_id in listed.stdout and "acme" in listed.stdout and key not in listed.stdout
    assert api_process.ocs("apikey", "revoke", key_id).returncode == 0
    assert "already revoked" in api_process.ocs("apikey", "revoke", key_id).stdout
    bad = api_process.ocs("apikey", "revoke", "000000000000")
    assert bad.returncode == 2 and "no key" in bad.stderr
    deadline = time.monotonic() + 30  # the key cache (api.key_cache_s) forgets it
    while httpx.get(url, headers=auth).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key kept working"
        time.sleep(0.2)
    refused = api_process.ocs("apikey", "create", "--tenant", "Bad Name", "--role", "read")
    assert refused.returncode == 2 and "tenant" in refused.stderr


def test_proxy_key_cli_copies_it_for_serve(api_process: ApiProcess, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        proxy = api_process.key("--tenant", "acme", "--role", "proxy")
        assert client.hlen(PROXY_KEYS_KEY) == 1
        assert client.hexists(PROXY_KEYS_KEY, key_hash(proxy).hex())
        url = f"{api_process.base_url}/api/v1/tenants/acme/subscribers/{ACME_SUB}"
        assert httpx.get(url, headers={"Authorization": f"Bearer {proxy}"}).status_code == 403
        assert api_process.ocs("apikey", "revoke", proxy.split("_")[1]).returncode == 0
        assert client.hlen(PROXY_KEYS_KEY) == 0
        nobody = api_process.ocs("apikey", "create", "--scope", "portfolio", "--role", "proxy")
        assert nobody.returncode == 2 and "proxy key belongs to tenants" in nobody.stderr
    finally:
        client.close()


def test_import_runs_in_the_background_of_the_process(api_process: ApiProcess) -> None:
    auth = {"Authorization": "Bearer " + api_process.key("--tenant", "acme", "--role", "operate")}
    base = f"{api_process.base_url}/api/v1/tenants/acme"
    upload = "subscriber,balance\n4915561000001,2.00\n4915561000002,x\n"
    made = httpx.post(f"{base}/imports", content=upload,
                      headers={**auth, "Content-Type": "text/csv"})  # fmt: skip
    assert made.status_code == 202, made.text
    url = api_process.base_url + made.headers["location"]
    deadline = time.monotonic() + 60  # woken at once; a safety net for a loaded machine
    while (job := httpx.get(url, headers=auth).json())["state"] != "done":
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert (job["created"], job["rejected"]) == (1, 1)
    assert httpx.get(f"{base}/subscribers/4915561000001", headers=auth).status_code == 200


@pytest.mark.slow
def test_schemathesis_against_the_served_document(api_process: ApiProcess) -> None:
    tenant_key = api_process.key("--tenant", "acme", "--role", "admin")
    portfolio_key = api_process.key("--scope", "portfolio", "--role", "read")
    schema = schemathesis.openapi.from_url(f"{api_process.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:
        portfolio = operation.path.startswith("/api/v1/portfolio")
        _fuzz(operation, api_process.base_url, portfolio_key if portfolio else tenant_key)
    assert "Traceback" not in api_process.log_text()


def _fuzz(operation: Any, base_url: str, key: str) -> None:
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        # Most examples on the key's own tenant, so the routes' bodies are reached.
        if case.path_parameters and "tenant" in case.path_parameters and case.body != {}:
            case.path_parameters["tenant"] = "acme"
        case.call_and_validate(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, checks=checks
        )

    run()
