"""Settlement statements through the API: a statement issued by ``ocs settle statement`` is
listed and served (JSON, HTML, CSV, PDF) to its own tenant's key only; a sibling's key is
refused by the guard, and the sibling's own role finds nothing of it even when asked directly;
the portfolio key sees each host MNO's identity and each operator's standing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocs.api.statements import negotiate
from tests.api.conftest import Api, body
from tests.api.settlement_month import GLOBEX_FIGURES, MNO, MONTH, settle_month


async def test_an_issued_statement_is_served_to_its_own_tenant_only(
    api: Api, store_url: str, tmp_path: Path
) -> None:
    await settle_month(store_url, tmp_path, "acme")
    acme = api.auth(await api.key("acme"))
    listed = await api.client.get("/api/v1/tenants/acme/statements", headers=acme)
    assert listed.status_code == 200, listed.text
    (summary,) = body(listed)["statements"]
    assert summary["month"] == MONTH and summary["host_mnos"] == [MNO]
    assert summary["wholesale_micro"] == 44_000 and summary["currency"] == "EUR"
    assert summary["amount_due_micro"] == (
        summary["wholesale_micro"] + summary["margin_micro"] + summary["platform_fee_micro"]
        + summary["commitment_shortfall_micro"] + summary["rejected_disputes_micro"]
    )  # fmt: skip
    url = f"/api/v1/tenants/acme/statements/{MONTH}"
    assert summary["files"]["pdf"] == f"{url}?format=pdf"

    as_json = await api.client.get(url, headers=acme)
    assert as_json.status_code == 200
    document = body(as_json)
    assert document["summary"] == summary
    assert document["statement"]["tenant"] == "acme"
    assert [s["mno"] for s in document["statement"]["sections"]] == [MNO]

    html = await api.client.get(url, params={"format": "html"}, headers=acme)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    issued_html = (tmp_path / "issued" / f"acme-{MONTH}.html").read_text()
    assert html.text == issued_html  # the file the command wrote, served again
    csv_answer = await api.client.get(url, headers={**acme, "Accept": "text/csv"})
    assert csv_answer.headers["content-type"].startswith("text/csv")
    assert csv_answer.text.startswith("tenant,month,section,item")
    assert f"acme,{MONTH},charges,amount_due" in csv_answer.text
    pdf = await api.client.get(url, params={"format": "pdf"}, headers=acme)
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert 'filename="acme-2026-01.pdf"' in pdf.headers["content-disposition"]
    for text in (listed.text, as_json.text, html.text, csv_answer.text):
        assert "globex" not in text.lower()
        for figure in GLOBEX_FIGURES:
            assert figure not in text, figure

    # Bad input is named; a month without a statement is named too.
    bad = await api.client.get("/api/v1/tenants/acme/statements/2026-13", headers=acme)
    assert bad.status_code == 422 and body(bad)["field"] == "month"
    bad = await api.client.get(url, params={"format": "docx"}, headers=acme)
    assert bad.status_code == 422 and body(bad)["field"] == "format"
    missing = await api.client.get("/api/v1/tenants/acme/statements/2026-02", headers=acme)
    assert missing.status_code == 404 and "2026-02" in body(missing)["detail"]

    # A sibling's key: refused by the guard (403) for acme's URLs; its own URL for the same
    # month is a 404 (globex has no statement), and its role cannot read acme's row directly.
    globex = api.auth(await api.key("globex", role="admin"))
    for path in ("/api/v1/tenants/acme/statements", f"{url}?format=pdf"):
        refused = await api.client.get(path, headers=globex)
        # The guard's refusal and nothing of the statement (wholesale 0.044 EUR = 44000 µ).
        assert refused.status_code == 403 and set(body(refused)) == {"status_code", "detail"}
        assert "44000" not in refused.text and "0.044" not in refused.text
    own = await api.client.get(f"/api/v1/tenants/globex/statements/{MONTH}", headers=globex)
    assert own.status_code == 404
    assert body(await api.client.get("/api/v1/tenants/globex/statements", headers=globex)) == {
        "tenant": "globex",
        "statements": [],
    }
    async with await api.state.tenant_store("globex") as conn:
        rows = await (
            await conn.execute("SELECT tenant FROM settlement_statements WHERE tenant = 'acme'")
        ).fetchall()
    assert rows == []
    # A portfolio key reads no operator's statement.
    portfolio = api.auth(await api.key(role="read"))
    assert (await api.client.get(url, headers=portfolio)).status_code == 403


async def test_the_portfolio_sees_the_settlement_status(
    api: Api, store_url: str, tmp_path: Path
) -> None:
    await settle_month(store_url, tmp_path, "acme")
    portfolio = api.auth(await api.key(role="read"))
    answer = await api.client.get(
        "/api/v1/portfolio/settlement", params={"month": MONTH}, headers=portfolio
    )
    assert answer.status_code == 200, answer.text
    status = body(answer)
    (period,) = status["periods"]
    assert period["host_mno"] == MNO and period["state"] == "disputed"
    assert period["reconciled"] and period["balanced"] and period["residual_micro"] == 0
    assert period["invoice_total_micro"] == 85_357 + 20_000 + 13_579 + 150_000
    assert period["allocated_micro"] == 44_000 + 61_357 + 13_579
    assert period["unallocated_micro"] == 150_000
    operators = {o["tenant"]: o for o in status["operators"]}
    assert set(operators) == {"acme", "globex"}
    assert operators["acme"]["statement_issued"] and operators["acme"]["amount_due_micro"] > 0
    assert operators["acme"]["allocated_micro"] == 44_000
    assert not operators["globex"]["statement_issued"]
    assert operators["globex"]["amount_due_micro"] is None
    # The same figures the operator sees on its own statement.
    acme = api.auth(await api.key("acme"))
    (summary,) = body(await api.client.get("/api/v1/tenants/acme/statements", headers=acme))[
        "statements"
    ]
    assert summary["amount_due_micro"] == operators["acme"]["amount_due_micro"]
    bad = await api.client.get(
        "/api/v1/portfolio/settlement", params={"month": "26-1"}, headers=portfolio
    )
    assert bad.status_code == 422 and body(bad)["field"] == "month"
    refused = await api.client.get("/api/v1/portfolio/settlement", headers=acme)
    assert refused.status_code == 403


async def test_a_statement_issued_before_views_were_kept(
    api: Api, store_url: str, tmp_path: Path
) -> None:
    """A row from before migration 0204 (no view): its figures are listed, its files are a 409
    saying how to issue it again."""
    import psycopg

    await settle_month(store_url, tmp_path, "acme")
    async with await psycopg.AsyncConnection.connect(store_url, autocommit=True) as conn:
        await conn.execute("UPDATE settlement_statements SET view = NULL WHERE tenant = 'acme'")
    acme = api.auth(await api.key("acme"))
    (summary,) = body(await api.client.get("/api/v1/tenants/acme/statements", headers=acme))[
        "statements"
    ]
    assert summary["files"] == {} and summary["amount_due_micro"] > 0
    url = f"/api/v1/tenants/acme/statements/{MONTH}"
    as_json = body(await api.client.get(url, headers=acme))
    assert as_json["statement"] is None and as_json["summary"] == summary
    refused = await api.client.get(url, params={"format": "csv"}, headers=acme)
    assert refused.status_code == 409
    assert f"ocs settle statement acme {MONTH}" in body(refused)["detail"]


@pytest.mark.parametrize(
    ("format_", "accept", "wanted"),
    [
        (None, "", "json"),
        (None, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8", "html"),
        (None, "application/pdf", "pdf"),
        (None, "text/csv; charset=utf-8", "csv"),
        (None, "image/png, */*", "json"),
        ("csv", "application/pdf", "csv"),  # the parameter wins
    ],
)
def test_format_negotiation(format_: str | None, accept: str, wanted: str) -> None:
    assert negotiate(format_, accept) == wanted
