"""A parsed line → a normalised ``XdrRecord``: integers, E.164 numbers, epoch seconds.

Every field problem is a ``Rejected`` with its reason; nothing here knows tenants or prices.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import msgspec

from usage.xdr.mapping import TIME_EPOCH, TIME_EPOCH_MS, Mapping, ServiceRule
from usage.xdr.parse import RawLine
from usage.xdr.rejects import Reason, Rejected
from usage.xdr.times import TimeParser

RECORD_ID_CHARS_MAX = 128
TEXT_FIELD_CHARS_MAX = 256
QUANTITY_MAX = 2**48  # far above any real CDR (256 TiB, 8.9 million years) and exact in Lua
_INTEGER = re.compile(r"[+-]?[0-9]{1,16}")
_IMSI = re.compile(r"[0-9]{6,15}")
_PLMN = re.compile(r"[0-9]{5,6}")


class XdrRecord(msgspec.Struct, frozen=True):
    line: int
    record_id: str
    service: ServiceRule
    started_at_s: int
    quantity: int  # in the service's unit (bytes, seconds, events), scale applied
    imsi: str = ""
    msisdn: str = ""  # E.164 digits
    called: str = ""  # E.164 digits
    calling: str = ""
    visited_plmn: str = ""
    apn: str = ""
    charging_id: str = ""
    rating_group: int | None = None


class RecordBuilder:
    """Normalises the lines of one mapping (its value map, time zone, number rules)."""

    def __init__(self, mapping: Mapping) -> None:
        self.mapping = mapping
        self.numbers = mapping.numbers
        self.zone = ZoneInfo(mapping.timezone)
        self.times = TimeParser(mapping.time_format, self.zone)
        service_column = mapping.column("service")
        value_map = dict(service_column.value_map) if service_column is not None else {}
        self.kinds: dict[str, ServiceRule] = {}
        for value, kind in value_map.items():
            rule = mapping.service(kind)
            if rule is not None:
                self.kinds[value] = rule
        self.constant_service = (
            mapping.service(service_column.value)
            if service_column is not None and service_column.value is not None
            else None
        )

    def build(self, raw: RawLine) -> XdrRecord:
        if raw.error is not None:
            raise raw.error
        fields = raw.fields
        record_id = fields.get("record_id", "")
        if not record_id or len(record_id) > RECORD_ID_CHARS_MAX or not record_id.isprintable():
            raise Rejected(Reason.UNPARSEABLE, f"record id {record_id[:40]!r} is empty or unusable")
        service = self._service(fields.get("service", ""))
        started = self._time(fields.get("started_at", ""))
        quantity = self._integer(fields.get("quantity", ""), "quantity")
        if quantity < 0:
            raise Rejected(Reason.NEGATIVE_QUANTITY, f"quantity {quantity} is negative")
        quantity *= service.scale
        if quantity > QUANTITY_MAX:
            raise Rejected(Reason.UNPARSEABLE, f"quantity {quantity} is beyond {QUANTITY_MAX}")
        imsi = fields.get("imsi", "")
        if imsi and not _IMSI.fullmatch(imsi):
            raise Rejected(Reason.UNPARSEABLE, f"IMSI {imsi!r} is not 6-15 digits")
        msisdn = self._number(fields.get("msisdn", ""), "MSISDN")
        if not imsi and not msisdn:
            raise Rejected(Reason.UNPARSEABLE, "neither IMSI nor MSISDN is given")
        visited = fields.get("visited_plmn", "")
        if visited and not _PLMN.fullmatch(visited):
            raise Rejected(Reason.UNPARSEABLE, f"visited network {visited!r} is not an MCC-MNC")
        group_text = fields.get("rating_group", "")
        group = self._integer(group_text, "rating group") if group_text else service.rating_group
        if group is not None and group < 0:
            raise Rejected(Reason.UNPARSEABLE, f"rating group {group} is negative")
        return XdrRecord(
            line=raw.line,
            record_id=record_id,
            service=service,
            started_at_s=started,
            quantity=quantity,
            imsi=imsi,
            msisdn=msisdn,
            called=self._number(fields.get("called", ""), "called number"),
            calling=self._number(fields.get("calling", ""), "calling number"),
            visited_plmn=visited,
            apn=_text(fields.get("apn", ""), "APN"),
            charging_id=_text(fields.get("charging_id", ""), "charging id"),
            rating_group=group,
        )

    def _service(self, value: str) -> ServiceRule:
        if self.constant_service is not None:
            return self.constant_service
        rule = self.kinds.get(value)
        if rule is None:
            raise Rejected(Reason.UNKNOWN_SERVICE, f"service {value[:40]!r} is not in the map")
        return rule

    def _time(self, text: str) -> int:
        fmt = self.mapping.time_format
        try:
            if fmt in (TIME_EPOCH, TIME_EPOCH_MS):
                if not _INTEGER.fullmatch(text):
                    raise ValueError(f"{text!r} is not whole seconds")
                value = int(text)
                return value // 1000 if fmt == TIME_EPOCH_MS else value
            return self.times.parse(text)
        except ValueError as exc:
            raise Rejected(Reason.UNPARSEABLE, f"start time: {exc}") from None

    @staticmethod
    def _integer(text: str, what: str) -> int:
        if not _INTEGER.fullmatch(text):
            raise Rejected(Reason.UNPARSEABLE, f"{what} {text[:40]!r} is not a whole number")
        return int(text)

    def _number(self, text: str, what: str) -> str:
        if not text:
            return ""
        digits = self.numbers.normalise(text)
        if digits is None:
            raise Rejected(Reason.UNPARSEABLE, f"{what} {text[:40]!r} is not a phone number")
        return digits


def _text(value: str, what: str) -> str:
    if len(value) > TEXT_FIELD_CHARS_MAX or not value.isprintable():
        raise Rejected(
            Reason.UNPARSEABLE, f"{what} is longer than {TEXT_FIELD_CHARS_MAX} or unprintable"
        )
    return value
