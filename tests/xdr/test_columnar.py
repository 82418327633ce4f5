"""Reading by columns gives the answers of reading a line at a time: the same lines, the same
records and prices (the batch rater against the scalar online rater), the same rejects."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.bench_xdr import HEADER, TENANTS, bench_catalog, generate
from tariffs.loader import load_catalog
from tests.xdr.test_parse import FIXED
from usage.xdr.chunks import ChunkRater, LineRater, Reject
from usage.xdr.columns import ChunkReader, columnar
from usage.xdr.idset import IdSet
from usage.xdr.mapping import Mapping, load_mapping, load_mapping_text, mapping_path
from usage.xdr.parse import LineReader, RawLine
from usage.xdr.rate import RatedRecord, XdrRater
from usage.xdr.records import RecordBuilder

SUBSCRIBERS = 50


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Mapping, XdrRater]:
    directory = bench_catalog(tmp_path_factory.mktemp("catalog"), SUBSCRIBERS)
    mapping = load_mapping(mapping_path(directory, "telco_de"))
    return mapping, XdrRater(load_catalog(directory))


def _raw(raw: RawLine) -> tuple[Any, ...]:
    return raw.line, raw.text, raw.fields, repr(raw.error)


def by_lines(mapping: Mapping, data: bytes) -> list[tuple[Any, ...]]:
    return [_raw(raw) for raw in LineReader(mapping, io.BytesIO(data))]


def by_chunks(mapping: Mapping, data: bytes, chunk_bytes: int) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for item in ChunkReader(mapping, io.BytesIO(data), chunk_bytes):
        if isinstance(item, RawLine):
            out.append(_raw(item))
            continue
        values = {
            name: [v] * len(item.rows) if isinstance(v, str) else v.to_pylist()
            for name, v in item.columns.items()
        }
        for j, row in enumerate(item.rows.tolist()):
            fields = {name: column[j] for name, column in values.items()}
            out.append((item.first_line + row, item.text(row), fields, repr(None)))
        out.extend(_raw(raw) for raw in item.others)
    return sorted(out, key=lambda r: r[0])


ODD = (
    HEADER.encode()
    + b"r1;262019900000001;;GPRS;2026-11-16 10:00:00;5;;;internet\r\n"
    + b"\n   \n# a comment;;;\n"
    + b" r2;;+4917099000001;SMS-MO;2026-11-16 10:00:00;1;;;\n"  # indented
    + b"r3;;+4917099000001;SMS-MO;2026-11-16 10:00:00;1;;;;extra\n"  # a field more
    + b"bad;x\n"  # too few fields
    + "r4\u00e4;;+4917099000001;SMS-MO;2026-11-16 10:00:00;1;;;\n".encode()  # not ASCII
    + b"r\xff5;;+4917099000001;SMS-MO;2026-11-16 10:00:00;1;;;\n"  # not UTF-8
    + b"r6;;+4917099000001;SMS\x01;2026-11-16 10:00:00;1;;;\n"  # a control character
    + b"r7;;+4917099000001;MOC;2026-11-16 10:00:00;60;+4930123456;;\n"
    + b'r8;;+4917099000001;MOC;2026-11-16 10:00:00;60;"+49 30\n123";;\n'  # quoted, two lines
    + b"r9;;+4917099000001;SMS-MO;2026-11-16 10:00:00;1;;;"  # no line end
)


@pytest.mark.parametrize("chunk_bytes", [40, 150, 1 << 20])
def test_chunks_read_the_lines_the_line_reader_reads(
    setup: tuple[Mapping, XdrRater], chunk_bytes: int
) -> None:
    mapping, _ = setup
    assert by_chunks(mapping, ODD, chunk_bytes) == by_lines(mapping, ODD)


def test_a_file_without_header_and_with_skipped_lines(setup: tuple[Mapping, XdrRater]) -> None:
    mapping, _ = setup
    text = (
        mapping_path_text(mapping)
        .replace("header: true", "header: false")
        .replace("comment:", "skip_lines: 2\ncomment:")
    )
    for name, index in (("cdr_id", 1), ("imsi", 2), ("a_number", 3), ("record_type", 4),
                        ("start_time", 5), ("amount", 6), ("b_number", 7), ("vplmn", 8),
                        ("apn", 9)):  # fmt: skip
        text = re.sub(rf": {name}\b", f": {index}", text)
    plain = load_mapping_text(text, "plain.yaml")
    data = b"title\n\n" + ODD.split(b"\n", 1)[1]
    for chunk_bytes in (60, 1 << 20):
        assert by_chunks(plain, data, chunk_bytes) == by_lines(plain, data)


def mapping_path_text(mapping: Mapping) -> str:
    return Path(mapping.source).read_text(encoding="utf-8")


def test_fixed_width_and_other_encodings_are_read_a_line_at_a_time(
    setup: tuple[Mapping, XdrRater],
) -> None:
    mapping, _ = setup
    assert columnar(mapping)
    utf16 = mapping_path_text(mapping).replace("encoding: utf-8", "encoding: utf-16")
    assert not columnar(load_mapping_text(utf16, "m.yaml"))
    assert not columnar(load_mapping_text(FIXED, "fixed.yaml"))


Outcome = tuple[Any, ...]


def outcomes_by_lines(mapping: Mapping, rater: XdrRater, data: bytes) -> dict[int, Outcome]:
    lines = LineRater(RecordBuilder(mapping), rater)
    ids = IdSet()
    out: dict[int, Outcome] = {}
    for raw in LineReader(mapping, io.BytesIO(data)):
        out[raw.line] = _outcome(lines.line(raw, ids))
    return out


def outcomes_by_chunks(
    mapping: Mapping, rater: XdrRater, data: bytes, chunk_bytes: int, fast: list[int] | None = None
) -> dict[int, Outcome]:
    """Each line's outcome; ``fast`` gets how many records were rated by columns."""
    builder = RecordBuilder(mapping)
    lines, chunks = LineRater(builder, rater), ChunkRater(builder, rater)
    ids = IdSet()
    out: dict[int, Outcome] = {}
    for item in ChunkReader(mapping, io.BytesIO(data), chunk_bytes):
        if isinstance(item, RawLine):
            out[item.line] = _outcome(lines.line(item, ids))
            continue
        outcome = chunks.rate(item, ids)
        if fast is not None:
            fast.append(int(outcome.rated.fast.sum()))
        for _, rated in chunks.batch.records(outcome.cols, outcome.rated, item.first_line):
            out[rated.record.line] = _outcome(rated)
        for rated, _ in outcome.scalar:
            out[rated.record.line] = _outcome(rated)
        for reject in outcome.rejects:
            out[reject.line] = _outcome(reject)
    return out


def _outcome(result: RatedRecord | Reject) -> Outcome:
    if isinstance(result, Reject):
        return ("reject", result.tenant, result.error.reason, result.error.detail, result.text)
    return ("rated", result)


def test_a_generated_file_rates_the_same_by_columns(
    setup: tuple[Mapping, XdrRater], tmp_path: Path
) -> None:
    mapping, rater = setup
    path = tmp_path / "cdr.csv"
    generate(path, 3000, SUBSCRIBERS, seed=5)
    data = path.read_bytes()
    want = outcomes_by_lines(mapping, rater, data)
    assert sum(o[0] == "reject" for o in want.values()) > 10  # the 1 % bad lines
    for chunk_bytes in (4096, 1 << 20):
        fast: list[int] = []
        assert outcomes_by_chunks(mapping, rater, data, chunk_bytes, fast) == want
        assert sum(fast) > 2800  # nearly all by columns; the rest (bad, split calls) by line


NUMBERS = ("+4915112345678", "015112345678", "004930123456", "+447700900123", "4930123",
           "+49-30-123", "abc", "", "0049", "+999999999999999999")  # fmt: skip
KINDS = ("GPRS", "MOC", "SMS-MO", "MTC", "XYZ", "")
TIMES = st.one_of(
    st.builds(
        "2026-{:02d}-{:02d} {:02d}:{:02d}:{:02d}".format,
        st.integers(1, 12), st.integers(1, 31), st.integers(0, 24), st.integers(0, 60),
        st.integers(0, 59),
    ),
    st.sampled_from(["2026-03-29 02:30:00", "2026-10-25 02:30:00", "2026-11-16 7:00:00", "x"]),
)  # fmt: skip


@st.composite
def cdr_lines(draw: st.DrawFn) -> str:
    tenant = draw(st.integers(0, 2))
    _, _, imsi, msisdn = TENANTS[tenant]
    sub = draw(st.integers(0, SUBSCRIBERS + 2))  # a few beyond the ranges: unknown
    by_imsi = draw(st.booleans())
    fields = [
        draw(st.sampled_from(["r1", "r2", "r3", "r4", "r5", "r6", "", "x" * 130])),
        str(int(imsi) + sub) if by_imsi else "",
        "" if by_imsi else draw(st.sampled_from([str(int(msisdn) + sub), f"+{int(msisdn) + sub}",
                                                 "0" + str(int(msisdn) + sub)[2:]])),
        draw(st.sampled_from(KINDS)),
        draw(TIMES),
        str(draw(st.integers(-5, 40_000_000) | st.sampled_from([0, 1, 3599, 86_400, 10**17]))),
        draw(st.sampled_from(NUMBERS)),
        draw(st.sampled_from(["", "26201", "20801", "310260", "1234"])),
        draw(st.sampled_from(["", "internet", "ims"])),
    ]  # fmt: skip
    return ";".join(fields)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(cdr_lines(), min_size=1, max_size=60), st.sampled_from([256, 1 << 20]))
def test_any_records_rate_the_same_by_columns_as_one_at_a_time(
    setup: tuple[Mapping, XdrRater], records: list[str], chunk_bytes: int
) -> None:
    mapping, rater = setup
    data = (HEADER + "".join(f"{line}\n" for line in records)).encode()
    # One rater per way: their memos must not carry answers from one way to the other.
    fresh = XdrRater(rater.catalog)
    assert outcomes_by_chunks(mapping, fresh, data, chunk_bytes) == outcomes_by_lines(
        mapping, XdrRater(rater.catalog), data
    )
