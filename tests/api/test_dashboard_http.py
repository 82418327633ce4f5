"""Dashboard pages over plain HTTP: login sets the session cookie, the guard's refusals."""

from __future__ import annotations

from tests.api.conftest import ACME_SUB, Api


async def test_login_and_scope_of_the_session(api: Api) -> None:
    form = await api.client.get("/dashboard/login")
    assert form.status_code == 200 and "name='key'" in form.text
    bad = await api.client.post("/dashboard/login", data={"key": "nope"})
    assert bad.status_code == 401
    key = await api.key("acme", role="operate")
    ok = await api.client.post("/dashboard/login", data={"key": key})
    assert ok.status_code in (302, 303) and ok.headers["location"] == "/dashboard/tenants/acme"
    cookies = {"ocs_session": key}
    page = await api.client.get("/dashboard/tenants/acme", cookies=cookies)
    assert page.status_code == 200, page.text
    sub = await api.client.get(f"/dashboard/tenants/acme/subscribers/{ACME_SUB}", cookies=cookies)
    assert sub.status_code == 200 and "10.00 EUR" in sub.text, sub.text
    sibling = await api.client.get("/dashboard/tenants/globex", cookies=cookies)
    assert sibling.status_code == 403 and "not scoped" in sibling.text
    api.client.cookies.clear()
    anonymous = await api.client.get("/dashboard/tenants/acme")
    assert anonymous.status_code in (302, 303)
    assert anonymous.headers["location"] == "/dashboard/login"
    portfolio = await api.client.get("/dashboard/portfolio", cookies=cookies)
    assert portfolio.status_code == 403
    p_key = await api.key(role="read")
    page = await api.client.get("/dashboard/portfolio", cookies={"ocs_session": p_key})
    assert page.status_code == 200 and "Margin per operator" in page.text, page.text
