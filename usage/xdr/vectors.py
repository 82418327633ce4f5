"""A chunk's columns → normalised record fields as arrays, the rules of ``RecordBuilder``
applied with vector operations (pyarrow.compute, numpy).

The vector rules only ever *accept*: a row is ``ok`` when every check that ``RecordBuilder``
makes passes the plain way (canonical digits, a value in the map, a number the rules
normalise, ...). Any other row is given to ``RecordBuilder`` itself, so its record or its
reject (reason and detail) is exactly the one-line-at-a-time answer. Values of few distinct
spellings (service, numbers, the hour of a start time) are normalised once per distinct value,
by the scalar code, through bounded memos.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from usage.xdr.columns import Chunk
from usage.xdr.mapping import TIME_EPOCH, TIME_EPOCH_MS, Mapping, ServiceRule
from usage.xdr.records import (
    QUANTITY_MAX,
    RECORD_ID_CHARS_MAX,
    TEXT_FIELD_CHARS_MAX,
    RecordBuilder,
    XdrRecord,
)
from usage.xdr.times import TIME_FIELDS, FastFormat, compile_format

MEMO_MAX = 65_536
_INTEGER = r"^[+-]?[0-9]{1,16}$"
_IMSI = r"^[0-9]{6,15}$"
_PLMN = r"^[0-9]{5,6}$"
_T = TypeVar("_T")
_K = TypeVar("_K", str, int)
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


@dataclass
class Coded:
    """A column of few distinct values: ``values[codes[i]]`` is row i's."""

    codes: npt.NDArray[np.int64]
    values: list[str]

    def at(self, row: int) -> str:
        return self.values[int(self.codes[row])]


@dataclass
class Columns:
    """The ``ok`` rows of a chunk (``rows``: their indexes into the chunk's lines), each
    field normalised as ``XdrRecord`` has it; ``group`` -1 is no rating group."""

    rows: Ints
    record_id: list[str]
    service: Ints  # index into ColumnBuilder.rules
    started_at_s: Ints
    quantity: Ints
    imsi: Coded
    msisdn: Coded
    called: Coded
    calling: Coded
    visited_plmn: Coded
    apn: Coded
    charging_id: Coded
    group: Ints

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, keep: Bools) -> Columns:
        """The rows where ``keep`` is set."""
        return Columns(
            rows=self.rows[keep],
            record_id=[v for v, k in zip(self.record_id, keep.tolist(), strict=True) if k],
            service=self.service[keep],
            started_at_s=self.started_at_s[keep],
            quantity=self.quantity[keep],
            imsi=_take(self.imsi, keep),
            msisdn=_take(self.msisdn, keep),
            called=_take(self.called, keep),
            calling=_take(self.calling, keep),
            visited_plmn=_take(self.visited_plmn, keep),
            apn=_take(self.apn, keep),
            charging_id=_take(self.charging_id, keep),
            group=self.group[keep],
        )

    def record(self, i: int, first_line: int, rules: list[ServiceRule]) -> XdrRecord:
        group = int(self.group[i])
        return XdrRecord(
            line=first_line + int(self.rows[i]),
            record_id=self.record_id[i],
            service=rules[int(self.service[i])],
            started_at_s=int(self.started_at_s[i]),
            quantity=int(self.quantity[i]),
            imsi=self.imsi.at(i),
            msisdn=self.msisdn.at(i),
            called=self.called.at(i),
            calling=self.calling.at(i),
            visited_plmn=self.visited_plmn.at(i),
            apn=self.apn.at(i),
            charging_id=self.charging_id.at(i),
            rating_group=None if group < 0 else group,
        )


class ColumnBuilder:
    """The vector form of ``RecordBuilder`` for one mapping (memos live as long as it)."""

    def __init__(self, mapping: Mapping, scalar: RecordBuilder) -> None:
        self.mapping = mapping
        self.scalar = scalar
        self.rules: list[ServiceRule] = list(mapping.services)
        self._rule_index = {id(rule): i for i, rule in enumerate(self.rules)}
        self._numbers: dict[str, str | None] = {}
        self._services: dict[str, int] = {}
        self._hours: dict[int, int | None] = {}
        self._times: dict[str, int | None] = {}
        self._fast_time = compile_format(mapping.time_format)

    def build(self, chunk: Chunk) -> tuple[Columns, Bools]:
        """The ok rows' fields, and the mask (over ``chunk.rows``) of the rows that are not
        ok: those go to ``RecordBuilder`` one at a time."""
        n = len(chunk.rows)
        column = _Getter(chunk, n)
        ok = np.ones(n, dtype=np.bool_)
        record_id = column("record_id")
        length = pc.utf8_length(record_id).to_numpy(zero_copy_only=False)
        ok &= (length >= 1) & (length <= RECORD_ID_CHARS_MAX) & _np(pc.utf8_is_printable(record_id))
        service = self._service(column("service"))
        ok &= service >= 0
        service = np.maximum(service, 0)
        started, good = self._started(column("started_at"))
        ok &= good
        quantity, good = _integers(column("quantity"))
        scale = np.array([rule.scale for rule in self.rules], dtype=np.int64)[service]
        ok &= good & (quantity >= 0) & (quantity <= QUANTITY_MAX // scale)
        quantity = quantity * np.where(ok, scale, 0)
        imsi = _coded(column("imsi"))
        imsi_text = column("imsi")
        ok &= _np(pc.or_(pc.equal(imsi_text, ""), pc.match_substring_regex(imsi_text, _IMSI)))
        msisdn, good = self._number(column("msisdn"))
        ok &= good
        empty = np.array([value == "" for value in imsi.values], dtype=np.bool_)[imsi.codes]
        no_msisdn = np.array([v == "" for v in msisdn.values], dtype=np.bool_)[msisdn.codes]
        ok &= ~(empty & no_msisdn)
        visited_text = column("visited_plmn")
        ok &= _np(pc.or_(pc.equal(visited_text, ""), pc.match_substring_regex(visited_text, _PLMN)))
        group, good = self._group(column("rating_group"), service)
        ok &= good
        called, good = self._number(column("called"))
        ok &= good
        calling, good = self._number(column("calling"))
        ok &= good
        texts = []
        for name in ("apn", "charging_id"):
            text = column(name)
            size = pc.utf8_length(text).to_numpy(zero_copy_only=False)
            ok &= (size <= TEXT_FIELD_CHARS_MAX) & _np(pc.utf8_is_printable(text))
            texts.append(text)
        keep = pa.array(ok)
        out = Columns(
            rows=chunk.rows[ok],
            record_id=record_id.filter(keep).to_pylist(),
            service=service[ok],
            started_at_s=started[ok],
            quantity=quantity[ok],
            imsi=_take(imsi, ok),
            msisdn=_take(msisdn, ok),
            called=_take(called, ok),
            calling=_take(calling, ok),
            visited_plmn=_take(_coded(visited_text), ok),
            apn=_take(_coded(texts[0]), ok),
            charging_id=_take(_coded(texts[1]), ok),
            group=group[ok],
        )
        return out, ~ok

    def _service(self, values: pa.Array) -> Ints:
        constant = self.scalar.constant_service
        if constant is not None:
            return np.full(len(values), self._rule_index[id(constant)], dtype=np.int64)

        def index(value: str) -> int:
            rule = self.scalar.kinds.get(value)
            return -1 if rule is None else self._rule_index[id(rule)]

        coded = _coded(values)
        lookup = [_memo(self._services, value, index) for value in coded.values]
        return np.array(lookup, dtype=np.int64)[coded.codes]

    def _number(self, values: pa.Array) -> tuple[Coded, Bools]:
        """E.164 digits per distinct spelling ("" stays ""); not ok where the rules say it is
        no number."""
        coded = _coded(values)
        rules = self.scalar.numbers
        normal = [
            "" if value == "" else _memo(self._numbers, value, rules.normalise)
            for value in coded.values
        ]
        bad = np.array([value is None for value in normal], dtype=np.bool_)
        return Coded(coded.codes, [value or "" for value in normal]), ~bad[coded.codes]

    def _started(self, values: pa.Array) -> tuple[Ints, Bools]:
        fmt = self.mapping.time_format
        if fmt in (TIME_EPOCH, TIME_EPOCH_MS):
            seconds, good = _integers(values)
            return (seconds // 1000 if fmt == TIME_EPOCH_MS else seconds), good
        if self._fast_time is None:
            coded = _coded(values)
            parsed = [_memo(self._times, value, self._parse_time) for value in coded.values]
            good = np.array([p is not None for p in parsed], dtype=np.bool_)[coded.codes]
            return np.array([p or 0 for p in parsed], dtype=np.int64)[coded.codes], good
        pattern = _re2_pattern(self._fast_time)
        parts = pc.extract_regex(values, pattern)
        good = _np(pc.is_valid(parts))
        number = {
            code: pc.cast(pc.if_else(good, parts.field(code), "0"), pa.int64()).to_numpy()
            for code in TIME_FIELDS
        }
        good &= (number["M"] <= 59) & (number["S"] <= 59)
        hour = ((number["Y"] * 100 + number["m"]) * 100 + number["d"]) * 100 + number["H"]
        hours, inverse = np.unique(hour, return_inverse=True)
        starts = [
            _memo(self._hours, int(key), _hour_start(self.scalar.times.zone)) for key in hours
        ]
        good &= np.array([s is not None for s in starts], dtype=np.bool_)[inverse]
        start = np.array([s or 0 for s in starts], dtype=np.int64)[inverse]
        return start + number["M"] * 60 + number["S"], good

    def _parse_time(self, text: str) -> int | None:
        try:
            return self.scalar.times.parse(text)
        except ValueError:
            return None

    def _group(self, values: pa.Array, service: Ints) -> tuple[Ints, Bools]:
        default = np.array(
            [-1 if r.rating_group is None else r.rating_group for r in self.rules], dtype=np.int64
        )[service]
        given = _np(pc.not_equal(values, ""))
        if not given.any():
            return default, np.ones(len(values), dtype=np.bool_)
        group, good = _integers(values)
        return np.where(given, group, default), (good & (group >= 0)) | ~given


class _Getter:
    """A chunk's column by field name: constants and unmapped fields as arrays too."""

    def __init__(self, chunk: Chunk, rows: int) -> None:
        self.chunk = chunk
        self.rows = rows

    def __call__(self, name: str) -> pa.Array:
        value = self.chunk.columns.get(name, "")
        if isinstance(value, str):
            return pa.array([value] * self.rows, pa.string())
        return value


def _np(array: pa.Array) -> Bools:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=np.bool_)


def _integers(values: pa.Array) -> tuple[Ints, Bools]:
    """Whole numbers as ``RecordBuilder`` reads them (optional sign, 1-16 digits)."""
    good = _np(pc.match_substring_regex(values, _INTEGER))
    text = pc.if_else(pa.array(good), pc.utf8_ltrim(values, characters="+"), "0")
    return np.asarray(pc.cast(text, pa.int64()).to_numpy(), dtype=np.int64), good


def _coded(values: pa.Array) -> Coded:
    encoded = pc.dictionary_encode(values)
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return Coded(codes, encoded.dictionary.to_pylist())


def _take(coded: Coded, ok: Bools) -> Coded:
    return Coded(coded.codes[ok], coded.values)


def _memo(memo: dict[_K, _T], key: _K, make: Callable[[_K], _T]) -> _T:
    if key in memo:
        return memo[key]
    value = make(key)
    if len(memo) >= MEMO_MAX:
        memo.clear()
    memo[key] = value
    return value


def _hour_start(zone: object) -> Callable[[int], int | None]:
    """YYYYMMDDHH → the epoch second that local hour starts at (as ``TimeParser``), or None
    when it is no date."""

    def start(key: int) -> int | None:
        year, rest = divmod(key, 1_000_000)
        month, rest = divmod(rest, 10_000)
        day, hour = divmod(rest, 100)
        try:
            return int(datetime(year, month, day, hour, tzinfo=zone).timestamp())  # type: ignore[arg-type]
        except ValueError:
            return None

    return start


def _re2_pattern(fast: FastFormat) -> str:
    """``TimeParser``'s fast format as an anchored RE2 pattern with named groups."""
    return "^" + fast[2] + "$"
