"""Line parsing: CSV quoting and line numbers, fixed width, encodings, normalised records."""

from __future__ import annotations

import io

import pytest

from usage.xdr.mapping import load_mapping_text
from usage.xdr.parse import FileLayoutError, LineReader
from usage.xdr.records import RecordBuilder
from usage.xdr.rejects import Reason, Rejected

CSV = """\
mno: m1
format: csv
csv: {delimiter: ",", quote: '"'}
comment: "#"
timezone: Europe/Berlin
time_format: "%Y%m%d%H%M%S"
columns:
  record_id: id
  msisdn: a
  service: {column: t, map: {D: data, V: voice}}
  started_at: start
  quantity: qty
  called: b
services: {data: {scale: 1024, rating_group: 20}, voice: {}}
numbers: {country_code: "49"}
"""

FIXED = """\
mno: fw
format: fixed
encoding: latin-1
timezone: UTC
time_format: epoch
columns:
  record_id: {start: 1, width: 6}
  imsi: {start: 7, width: 15}
  service: {start: 22, width: 1, map: {S: sms}}
  started_at: {start: 23, width: 10}
  quantity: {start: 33, width: 3}
  apn: {start: 36, width: 8}
services: {sms: {}}
numbers: {country_code: "49"}
"""


def lines(mapping_text: str, data: bytes) -> list:  # type: ignore[type-arg]
    mapping = load_mapping_text(mapping_text, "m.yaml")
    return list(LineReader(mapping, io.BytesIO(data)))


def test_csv_quoting_comments_and_line_numbers() -> None:
    data = (
        b"id,a,t,start,qty,b,note\n"
        b"# a comment\n"
        b'1,+4917099000001,D,20261117100000,2,"+49 (151) 12345678","two\nlines"\n'
        b"\n"
        b"2,017099000002,V,20261117100000,60,0151 1234,\n"
    )
    raw = lines(CSV, data)
    assert [r.line for r in raw] == [3, 6]
    builder = RecordBuilder(load_mapping_text(CSV, "m.yaml"))
    first, second = (builder.build(r) for r in raw)
    assert (first.quantity, first.rating_group, first.called) == (2048, 20, "4915112345678")
    assert (second.msisdn, second.called, second.started_at_s) == (
        "4917099000002",
        "491511234",
        1_794_906_000,
    )


def test_csv_bad_quoting_rejects_one_line_and_goes_on() -> None:
    data = b'id,a,t,start,qty,b\n1,"x"y,D,20261117100000,1,\n2,+4917099000001,D,20261117100000,1,\n'
    raw = lines(CSV, data)
    assert raw[0].error is not None and raw[0].error.reason is Reason.UNPARSEABLE
    assert raw[-1].fields["record_id"] == "2" and raw[-1].line == 3


def test_csv_header_missing_a_column() -> None:
    with pytest.raises(FileLayoutError, match="header has no column 'qty'"):
        lines(CSV, b"id,a,t,start,b\n")


def test_undecodable_bytes_reject_the_line_only() -> None:
    data = b"id,a,t,start,qty,b\n1,+49170\xff,D,20261117100000,1,\n2,+4917099,D,20261117100000,1,\n"
    raw = lines(CSV, data)
    assert raw[0].error is not None and "not valid utf-8" in raw[0].error.detail
    assert raw[1].error is None


def test_fixed_width_latin1() -> None:
    data = "r00001262019900000001S1794906000  1intérnet\nr00002262019900000002S17949\n"
    raw = lines(FIXED, data.encode("latin-1"))
    builder = RecordBuilder(load_mapping_text(FIXED, "fw.yaml"))
    record = builder.build(raw[0])
    assert (record.record_id, record.imsi, record.quantity, record.apn) == (
        "r00001",
        "262019900000001",
        1,
        "intérnet",
    )
    assert record.started_at_s == 1_794_906_000
    with pytest.raises(Rejected) as info:
        builder.build(raw[1])
    assert info.value.reason is Reason.UNPARSEABLE


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("1,+4917099000001,X,20261117100000,1,", Reason.UNKNOWN_SERVICE),
        ("1,+4917099000001,D,20261117100000,-1,", Reason.NEGATIVE_QUANTITY),
        ("1,+4917099000001,D,2026-11-17,1,", Reason.UNPARSEABLE),
        ("1,+4917099000001,D,20261117100000,1.5,", Reason.UNPARSEABLE),
        (",+4917099000001,D,20261117100000,1,", Reason.UNPARSEABLE),
        ("1,,D,20261117100000,1,", Reason.UNPARSEABLE),
    ],
)
def test_field_rejects(row: str, reason: Reason) -> None:
    (raw,) = lines(CSV, f"id,a,t,start,qty,b\n{row}\n".encode())
    with pytest.raises(Rejected) as info:
        RecordBuilder(load_mapping_text(CSV, "m.yaml")).build(raw)
    assert info.value.reason is reason
