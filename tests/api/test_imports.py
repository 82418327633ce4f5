"""Bulk subscriber import: a CSV upload answered 202 with a job, worked in the background
(driven here by calling the runner), with progress, counts, a rejects report, durability across
a process that dies mid-job, limits, and the tenant's own role underneath."""

from __future__ import annotations

import csv
import io

import msgspec
import pytest

from ocs.api.imports import ImportRunner
from ocs.config import Config
from ocs.subscriber_directory import DirectoryEntry, put_entry
from tests.api.conftest import ACME_SUB, GLOBEX_SUB, Api

CSV = "text/csv"
BASE = "/api/v1/tenants/acme"


def with_api_limits(config: Config, **changes: object) -> Config:
    return msgspec.structs.replace(config, api=msgspec.structs.replace(config.api, **changes))


def upload_headers(api: Api, key: str) -> dict[str, str]:
    return {**api.auth(key), "Content-Type": CSV}


async def test_import_creates_subscribers_and_reports_rejects(api: Api) -> None:
    key = await api.key("acme", role="operate")
    text = (
        "subscriber,imsi,balance,credit_limit\n"
        "+4915560000001,262015560000001,5.00,0\n"  # 2: created
        "4915560000002,,1.50,\n"  # 3: created, no IMSI
        "\n"  # 4: blank, skipped (the line numbers after it still count it)
        "not-a-number,,1,0\n"  # 5: rejected: not E.164
        "4915560000003,262015560000001,0,0\n"  # 6: rejected: IMSI taken by line 2
        "4915560000004,,abc,0\n"  # 7: rejected: bad balance
        f"{GLOBEX_SUB},,0,0\n"  # 8: rejected: a sibling's number, not named
        "4915560000002,,0,0\n"  # 9: rejected: exists (line 3)
        "4915560000005,,0\n"  # 10: rejected: three fields of four
        "4915560000006,,0,-1\n"  # 11: rejected: negative credit limit
    )
    r = await api.client.post(f"{BASE}/imports", content=text, headers=upload_headers(api, key))
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] == "queued" and job["rows_total"] == 9 and job["rows_done"] == 0
    assert r.headers["location"] == f"{BASE}/imports/{job['job_id']}"

    assert await ImportRunner(api.state).run_once()
    assert not await ImportRunner(api.state).run_once()  # nothing else due

    done = (await api.client.get(r.headers["location"], headers=api.auth(key))).json()
    assert (done["state"], done["rows_done"], done["created"], done["rejected"]) == (
        "done", 9, 2, 7,
    )  # fmt: skip
    reasons = {item["line"]: item["reason"] for item in done["rejects"]}
    assert sorted(reasons) == [5, 6, 7, 8, 9, 10, 11]
    assert "E.164" in reasons[5] and "IMSI" in reasons[6] and "balance" in reasons[7]
    assert "globex" not in reasons[8] and "not available" in reasons[8]
    assert "already exists" in reasons[9] and "fields" in reasons[10]
    assert "credit_limit" in reasons[11]

    report = await api.client.get(done["rejects_url"], headers=api.auth(key))
    assert report.status_code == 200 and report.headers["content-type"].startswith(CSV)
    assert "attachment" in report.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(report.text)))
    assert rows[0] == ["line", "reason"] and [int(r[0]) for r in rows[1:]] == sorted(reasons)

    async with await api.state.tenant_store("acme") as conn:  # the file is not kept once done
        stored = await (await conn.execute("SELECT length(input) FROM api_jobs")).fetchone()
        assert stored == (0,)
    created = await api.client.get(f"{BASE}/subscribers/4915560000001", headers=api.auth(key))
    assert created.status_code == 200
    assert created.json()["balance_micro"] == 5_000_000
    assert created.json()["imsi"] == "262015560000001"

    # Audit: the upload, each created subscriber, the end; all naming the uploading key.
    entries = (await api.client.get(f"{BASE}/audit", headers=api.auth(key))).json()["entries"]
    actions = [e["action"] for e in entries]
    assert actions == ["subscriber.import.done", "subscriber.create", "subscriber.create",
                       "subscriber.import"]  # fmt: skip
    assert {e["actor"] for e in entries} == {key.split("_")[1]}
    assert entries[0]["after"] == {"rows": 9, "created": 2, "rejected": 7}


async def test_job_killed_mid_way_resumes_without_creating_twice(api: Api) -> None:
    api.state.config = with_api_limits(api.state.config, import_batch_rows=2, import_lease_s=30)
    key = await api.key("acme", role="operate")
    text = "subscriber,balance\n" + "".join(f"49155700000{n:02d},1.00\n" for n in range(5))
    r = await api.client.post(f"{BASE}/imports", content=text, headers=upload_headers(api, key))
    url = r.headers["location"]
    runner = ImportRunner(api.state)
    assert await runner.run_once(batches_max=1)  # "dies" after one batch, lease held
    half = (await api.client.get(url, headers=api.auth(key))).json()
    assert (half["state"], half["rows_done"], half["created"]) == ("running", 2, 2)
    assert not await runner.run_once()  # the lease has not run out: nobody takes it
    # Rows 3 and 4 were run by the dead process after its last commit: a replay, not a reject.
    ledger = await api.state.ledger("acme")
    for line, n in ((4, 2), (5, 3)):
        number = f"49155700000{n:02d}"
        await put_entry(api.state.admin, number, DirectoryEntry("acme", None))
        await ledger.provision_account(
            number, balance=1_000_000, now_s=api.state.clock(),
            op_id=f"api:import:{half['job_id']}:{line}",
        )  # fmt: skip
    clock_at = api.state.clock()
    api.state.clock = lambda: clock_at + 31  # the lease has run out
    assert await runner.run_once()
    done = (await api.client.get(url, headers=api.auth(key))).json()
    assert (done["state"], done["rows_done"], done["created"], done["rejected"]) == (
        "done", 5, 5, 0,
    )  # fmt: skip
    for n in range(5):
        account = await ledger.query(f"49155700000{n:02d}")
        assert account.balance == 1_000_000  # each created once


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty file"),
        ("msisdn,balance\n491550,1\n", "unknown column"),
        ("imsi\n262010000000001\n", "'subscriber' column"),
        ("subscriber\n", "no rows"),
        ("subscriber\n" + "4915580000001\n" * 6, "at most 5 per import"),
        ("subscriber\n\xff\n", "not UTF-8"),
        ('subscriber\n"4915580000001\n4915580000002"\n', "one subscriber per line"),
    ],
)
async def test_file_refused_as_a_whole_is_422_naming_file(api: Api, text: str, says: str) -> None:
    api.state.config = with_api_limits(api.state.config, import_rows_max=5)
    key = await api.key("acme", role="operate")
    body = text.encode("latin-1")
    r = await api.client.post(f"{BASE}/imports", content=body, headers=upload_headers(api, key))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "file" and says in r.json()["detail"]


async def test_limits_size_and_open_jobs(api: Api) -> None:
    api.state.config = with_api_limits(api.state.config, import_bytes_max=64, imports_open_max=2)
    h = upload_headers(api, await api.key("acme", role="operate"))
    big = "subscriber\n" + "4915590000001\n" * 10
    r = await api.client.post(f"{BASE}/imports", content=big, headers=h)
    assert r.status_code == 422 and "import_bytes_max" in r.json()["detail"]
    for _ in range(2):
        ok = await api.client.post(f"{BASE}/imports", content="subscriber\n4915590000001\n",
                                   headers=h)  # fmt: skip
        assert ok.status_code == 202
    r = await api.client.post(f"{BASE}/imports", content="subscriber\n4915590000001\n", headers=h)
    assert r.status_code == 409 and "imports_open_max" in r.json()["detail"]


async def test_jobs_are_the_tenants_own(api: Api) -> None:
    acme = await api.key("acme", role="operate")
    made = await api.client.post(f"{BASE}/imports", content=f"subscriber\n{ACME_SUB}\n",
                                 headers=upload_headers(api, acme))  # fmt: skip
    job_id = made.json()["job_id"]
    globex = api.auth(await api.key("globex", role="admin"))
    # The API refuses the sibling's key (403) ...
    r = await api.client.get(f"{BASE}/imports/{job_id}", headers=globex)
    assert r.status_code == 403
    # ... its own tenant's URL does not find acme's job (404) ...
    r = await api.client.get(f"/api/v1/tenants/globex/imports/{job_id}", headers=globex)
    assert r.status_code == 404 and "acme" not in r.text
    # ... and the store role underneath sees no sibling job, whatever the query.
    async with await api.state.tenant_store("globex") as conn:
        assert await (await conn.execute("SELECT count(*) FROM api_jobs")).fetchone() == (0,)
    async with await api.state.tenant_store("acme") as conn:
        assert await (await conn.execute("SELECT count(*) FROM api_jobs")).fetchone() == (1,)
    listed = await api.client.get(f"{BASE}/imports", headers=api.auth(acme))
    assert [j["job_id"] for j in listed.json()["jobs"]] == [job_id]
    assert msgspec.json.decode(listed.content)["jobs"][0]["rows_total"] == 1
