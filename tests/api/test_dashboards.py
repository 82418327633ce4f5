"""The dashboards in a real browser (Debian's chromium through Playwright, no browser download):
log in with a portfolio key and with an operator key, pages render with data, a sibling's pages
are refused also when the URL is edited by hand. Screenshots are kept in the test's tmp dir."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import ACME_SUB, CATALOG, GLOBEX_SUB
from tests.api.settlement_month import MNO, MONTH, settle_month
from tests.support.api_process import ApiProcess
from tests.usage.rows import make_row
from usage.store import UsageStore

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed (make test-sysdeps)"
)


async def _usage(store_url: str) -> None:
    now = time.time()
    rows = []
    for n in range(60):
        day = now - (n % 10) * 86_400 - 3600
        rows.append(make_row("acme", n, ended_at_s=day, subscriber=ACME_SUB, msisdn=ACME_SUB,
                             service="data" if n % 3 else "voice"))  # fmt: skip
        rows.append(make_row("globex", 1000 + n, ended_at_s=day, subscriber=GLOBEX_SUB,
                             msisdn=GLOBEX_SUB, wholesale=5_000 if n == 0 else 400))  # fmt: skip
    async with await UsageStore.open(store_url) as store:
        assert await store.store_batch(rows) == len(rows)


@pytest.fixture
def dashboard(redis_url: str, store_url: str, tmp_path: Path) -> Iterator[ApiProcess]:
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "ocs", "catalog", "load", str(CATALOG), "--redis-url", redis_url,
         "--data-dir", str(tmp_path / "none")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    asyncio.run(_usage(store_url))
    asyncio.run(settle_month(store_url, tmp_path / "settle", "acme"))  # acme's statement
    proc = ApiProcess(tmp_path / "api", redis_url=redis_url, store_url=store_url)
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log_text()


def _browser(playwright):  # type: ignore[no-untyped-def]
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


def _login(page, base: str, key: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/dashboard/login")
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    page.wait_for_load_state()


@pytest.mark.slow
def test_portfolio_and_operator_dashboards(dashboard: ApiProcess, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    base = dashboard.base_url
    portfolio_key = dashboard.key("--scope", "portfolio", "--role", "read")
    operator_key = dashboard.key("--tenant", "acme", "--role", "operate")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    external: list[str] = []
    with sync_playwright() as pw:
        browser = _browser(pw)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            page = context.new_page()
            page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))
            _login(page, base, portfolio_key)
            assert page.url.endswith("/dashboard/portfolio")
            text = page.inner_text("main")
            assert "acme" in text and "globex" in text and "Margin per operator" in text
            assert "negative_margin" in text  # globex's record priced below wholesale
            assert page.locator("svg.chart").count() >= 2
            settlement = page.locator("h2:text-is('Settlement') + table").inner_text()
            assert MNO in settlement and MONTH in settlement and "disputed" in settlement
            per_operator = page.locator("h2:text-is('Settlement per operator') + table")
            assert "acme" in per_operator.inner_text() and "globex" in per_operator.inner_text()
            page.screenshot(path=str(shots / "portfolio.png"), full_page=True)
            # A portfolio session does not reach an operator's pages.
            refused = page.goto(f"{base}/dashboard/tenants/acme")
            assert refused is not None and refused.status == 403
            context.close()

            context = browser.new_context(viewport={"width": 1200, "height": 900})
            page = context.new_page()
            page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))
            _login(page, base, operator_key)
            assert page.url.endswith("/dashboard/tenants/acme")
            text = page.inner_text("main")
            assert ACME_SUB in text and GLOBEX_SUB not in text
            assert page.locator("svg.chart").count() >= 2
            page.screenshot(path=str(shots / "operator.png"), full_page=True)
            statements = page.locator("h2:text-is('Statements') + table")
            assert MONTH in statements.inner_text() and MNO in statements.inner_text()
            pdf_link = statements.locator("a:text-is('PDF')").get_attribute("href")
            pdf = context.request.get(f"{base}{pdf_link}")
            assert pdf.status == 200 and pdf.body().startswith(b"%PDF-")
            statements.locator("a:text-is('HTML')").click()
            page.wait_for_load_state()
            assert f"/api/v1/tenants/acme/statements/{MONTH}" in page.url
            assert "acme" in page.content() and "globex" not in page.content().lower()
            page.screenshot(path=str(shots / "statement.png"), full_page=True)
            page.goto(f"{base}/dashboard/tenants/acme")
            page.click(f"text={ACME_SUB}")
            page.fill("input[name=amount]", "2.50")
            page.click("text=top up")
            page.wait_for_load_state()
            assert "topup: done" in page.inner_text("main")
            assert "12.50 EUR" in page.inner_text("main")  # 10.00 opening + 2.50
            page.screenshot(path=str(shots / "subscriber.png"), full_page=True)
            # URL tampering: the sibling's overview, subscriber page and the portfolio.
            for path in (
                "/dashboard/tenants/globex",
                f"/dashboard/tenants/globex/subscribers/{GLOBEX_SUB}",
                "/dashboard/portfolio",
                f"/api/v1/tenants/globex/subscribers/{GLOBEX_SUB}",
                f"/api/v1/tenants/globex/statements/{MONTH}?format=html",
                "/api/v1/portfolio/settlement",
            ):
                answer = page.goto(f"{base}{path}")
                assert answer is not None and answer.status == 403, path
                assert "10.00 EUR" not in page.content()
            # A sibling's number under the own tenant's URL is unknown, not shown.
            answer = page.goto(f"{base}/dashboard/tenants/acme/subscribers/{GLOBEX_SUB}")
            assert answer is not None and answer.status == 404
            context.close()
        finally:
            browser.close()
    assert external == [], f"the dashboards fetched outside the API: {external}"
    print(f"screenshots in {shots}")
