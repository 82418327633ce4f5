"""The exporter's pure decisions: rows from records, acks, trim points, batching, backoff, lag."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from balance.records import DrawnBucket, LedgerRecord, LegCharge, RecordContext
from usage.export_core import (
    Backoff,
    Entry,
    PollPace,
    TenantLag,
    acks_by_stream,
    copy_rows,
    degraded,
    successor,
    trim_point,
    vshard_of,
)
from usage.sql import RECORD_COLUMNS

CTX = RecordContext(
    source="gy", msisdn="4917099000001", imsi="262019990000001", started_at_s=100.0,
    visited_plmn="26201", apn="internet", charging_id="42", rate_card_version="v2",
    currency="EUR", role_of_node=-1,
)  # fmt: skip


def record(
    kind: str = "usage", context: RecordContext | None = CTX, **fields: object
) -> LedgerRecord:
    base: dict[str, object] = dict(
        kind=kind, tenant="acme", subscriber="4917099000001", session_id="s1", op_id="s1:1",
        service="data", rating_group=10, units=3000, retail=30, wholesale=15,
        buckets=(DrawnBucket("b1", 1000),), leakage_units=0, leakage_money=0,
        legs=(LegCharge("acme:v2:7", 3000, 30, 15, 2000),), at_s=160.0, balance_after=970,
        reason="", money_delta=-30, context=context,
    )  # fmt: skip
    base.update(fields)
    return LedgerRecord(**base)  # type: ignore[arg-type]


def rows(entries: list[Entry], units: dict[str, str]) -> tuple[list[dict[str, Any]], list[Entry]]:
    """copy_rows' tuples by column name, in order."""
    by_month, bad = copy_rows("acme", entries, units)
    out = [
        dict(zip(RECORD_COLUMNS, values, strict=True)) for v in by_month.values() for values in v
    ]
    return out, bad


def test_copy_rows_flatten_record_and_context() -> None:
    entry = Entry(5, "1700000000000-3", record())
    (row,), bad = rows([entry], {"data": "byte"})
    assert bad == []
    assert (row["tenant"], row["vshard"], row["entry_id"], row["kind"]) == (
        "acme", 5, "1700000000000-3", "usage",
    )  # fmt: skip
    assert (row["source"], row["msisdn"], row["imsi"], row["apn"], row["charging_id"]) == (
        "gy", "4917099000001", "262019990000001", "internet", "42",
    )  # fmt: skip
    assert (row["units"], row["unit"], row["bucket_units"], row["retail"], row["wholesale"]) == (
        3000, "bytes", 1000, 30, 15,
    )  # fmt: skip
    assert row["started_at"] == datetime.fromtimestamp(100.0, UTC)
    assert row["ended_at"] == datetime.fromtimestamp(160.0, UTC)
    assert row["currency"] == "EUR"
    assert row["rate_row"] == "acme:v2:7" and row["rate_card_version"] == "v2"
    assert json.loads(row["buckets"]) == [{"bucket": "b1", "units": 1000}]
    assert json.loads(row["legs"]) == [
        {"leg": "acme:v2:7", "units": 3000, "retail": 30, "wholesale": 15}
    ]
    assert row["money_delta"] == -30 and row["balance_after"] == 970


def test_copy_rows_group_by_utc_month_of_the_end() -> None:
    nov_30_late, dec_01 = 1_764_547_199.5, 1_764_547_200.0  # 2025-11-30T23:59:59.5Z, 12-01
    entries = [Entry(1, "1-0", record(at_s=nov_30_late)), Entry(1, "1-1", record(at_s=dec_01))]
    by_month, bad = copy_rows("acme", entries, {})
    assert bad == []
    assert {month: len(v) for month, v in by_month.items()} == {
        date(2025, 11, 1): 1, date(2025, 12, 1): 1,
    }  # fmt: skip


def test_copy_rows_without_context_and_of_other_kinds() -> None:
    topup = record("topup", None, service="", units=0, legs=(), buckets=(), reason="topup")
    bucket = record("bucket", None, service="s20.data", reason="bytes", legs=())
    voice = record(service="voice")
    found, bad = rows([Entry(1, "1-0", topup), Entry(1, "1-1", bucket), Entry(1, "1-2", voice)],
                      {"voice": "second"})  # fmt: skip
    assert bad == []
    assert (found[0]["unit"], found[0]["reason"], found[0]["source"], found[0]["msisdn"]) == (
        "money", "topup", "", "4917099000001",
    )  # fmt: skip
    assert found[0]["started_at"] is None and found[0]["legs"] == "[]"
    assert (found[1]["unit"], found[1]["reason"], found[1]["role_of_node"]) == ("bytes", "", -1)
    assert found[2]["unit"] == "seconds"


def test_undecodable_foreign_or_out_of_range_records_are_not_rows() -> None:
    foreign = record(tenant="globex")
    huge_role = record(context=RecordContext(role_of_node=2**15))
    found, bad = rows(
        [Entry(1, "1-0", None), Entry(1, "1-1", foreign), Entry(1, "1-2", huge_role)], {}
    )
    assert found == [] and [e.entry_id for e in bad] == ["1-0", "1-1", "1-2"]


def test_acks_are_grouped_per_shard() -> None:
    entries = [Entry(2, "9-7", None), Entry(1, "5-0", None), Entry(2, "10-1", None)]
    assert acks_by_stream(entries) == {2: ["9-7", "10-1"], 1: ["5-0"]}


def test_trim_point_never_passes_a_pending_entry() -> None:
    assert successor("1700-5") == "1700-6"
    assert trim_point("1700-5", None) == "1700-6"  # nothing pending: all delivered is stored
    assert trim_point("1700-5", "1600-0") == "1600-0"  # another consumer's older pending entry
    assert vshard_of("{t:acme:1023}:cdr") == 1023


def test_polls_at_once_on_a_backlog_after_linger_when_keeping_up_and_back_off_when_idle() -> None:
    pace = PollPace(linger_s=0.5, idle_max_s=2.0, batch_size=100)
    assert pace.after_read(100) == 0.0  # a full batch: more may be waiting
    assert pace.after_read(7) == 0.5
    assert [pace.after_read(0) for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
    assert pace.after_read(1) == 0.5 and pace.after_read(0) == 0.5  # activity resets the backoff


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(first_s=0.5, max_s=3.0)
    assert [backoff.failed() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.succeeded()
    assert backoff.failed() == 0.5


def test_lag_is_entries_and_the_oldest_age() -> None:
    lag = TenantLag.of([3, 0, 2], ["1000000-0", "1002000-1"], now_s=1005.0)
    assert lag.entries == 5 and lag.oldest_s == 5.0
    assert degraded({"acme": lag, "globex": TenantLag()}, lag_degraded_s=4.0) == ["acme"]
    assert degraded({"acme": lag}, lag_degraded_s=10.0) == []
