"""The mapping of one host MNO's CDR files: layout, columns, value maps, number rules.

One YAML file per MNO, kept beside the catalog (``examples/catalog/mno/<name>.yaml``) and
validated like it: every problem is collected and reported as ``file:line: field: message``
(``tariffs.yamlread`` keeps each node's line), and ``MappingError`` is the only exception.
The format is documented field by field in ``docs/xdr-import.md``.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from yaml.nodes import Node, ScalarNode

from tariffs.errors import CatalogError, Problem
from tariffs.yamlread import Reader, compose
from usage.xdr.numbers import DEFAULT_STRIP, NumberKind, NumberRules, Rewrite

MAPPING_FILE_BYTES_MAX = 1024 * 1024
COLUMNS_MAX = 512
FIXED_WIDTH_MAX = 4096
SERVICE_VALUES_MAX = 1024
SCALE_MAX = 1 << 30

Format = Literal["csv", "fixed"]
ServiceKind = Literal["data", "voice", "sms"]
SERVICE_KINDS: tuple[ServiceKind, ...] = ("data", "voice", "sms")

# The fields a record may take from the file; a mapping names the columns it has.
FIELDS = (
    "record_id",
    "imsi",
    "msisdn",
    "service",
    "started_at",
    "quantity",
    "called",
    "calling",
    "visited_plmn",
    "apn",
    "charging_id",
    "rating_group",
)
REQUIRED_FIELDS = ("record_id", "service", "started_at", "quantity")
TIME_EPOCH = "epoch"
TIME_EPOCH_MS = "epoch_ms"

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_TENANT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_COUNTRY_CODE = re.compile(r"[1-9][0-9]{0,2}")
_PREFIX = re.compile(r"\+?[0-9]{0,8}")
_DIGITS = re.compile(r"[0-9]{0,15}")

MAPPING_KEYS = frozenset(
    {
        "mno",
        "format",
        "csv",
        "encoding",
        "skip_lines",
        "comment",
        "tenant",
        "timezone",
        "time_format",
        "columns",
        "services",
        "numbers",
    }
)
CSV_KEYS = frozenset({"delimiter", "quote", "header"})
COLUMN_KEYS = frozenset({"column", "start", "width", "value", "map"})
SERVICE_KEYS = frozenset({"service", "scale", "rating_group"})
NUMBER_KEYS = frozenset(
    {
        "country_code",
        "international_prefixes",
        "national_prefix",
        "bare",
        "strip",
        "rewrite",
        "min_digits",
    }
)


class MappingError(CatalogError):
    """A mapping that cannot be used; ``problems`` lists every one, in file order."""


class Column(msgspec.Struct, frozen=True):
    """Where one field is: a CSV header name or 1-based index, a fixed-width slice, or a
    constant ``value`` (e.g. a file that only ever holds voice records)."""

    field: str
    header: str | None = None
    index: int = -1  # 0-based CSV position
    start: int = 0  # 0-based offset (fixed width)
    width: int = 0
    value: str | None = None
    value_map: tuple[tuple[str, str], ...] = ()


class ServiceRule(msgspec.Struct, frozen=True):
    """How records of one service kind are charged: the tenant's service name, the
    multiplier from the file's unit to the service's (e.g. 1024 for kilobytes), and the
    rating group bundles are scoped by (data)."""

    kind: ServiceKind
    service: str
    scale: int = 1
    rating_group: int | None = None


class Mapping(msgspec.Struct, frozen=True):
    mno: str
    source: str
    format: Format
    columns: tuple[Column, ...]
    services: tuple[ServiceRule, ...]
    numbers: NumberRules
    timezone: str
    time_format: str
    delimiter: str = ","
    quote: str = '"'
    header: bool = True
    encoding: str = "utf-8"
    skip_lines: int = 0
    comment: str = ""
    tenant: str | None = None

    def column(self, field: str) -> Column | None:
        return next((c for c in self.columns if c.field == field), None)

    def service(self, kind: str) -> ServiceRule | None:
        return next((s for s in self.services if s.kind == kind), None)


def load_mapping(path: str | Path) -> Mapping:
    """A mapping file → a checked ``Mapping`` (``MappingError`` listing every problem)."""
    file = Path(path)
    try:
        if file.stat().st_size > MAPPING_FILE_BYTES_MAX:
            raise MappingError([Problem(str(file), 0, "(file)", "larger than 1 MiB")])
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError([Problem(str(file), 0, "(file)", f"cannot read: {exc}")]) from None
    return load_mapping_text(text, str(file))


def mapping_path(catalog: str | Path, mno: str) -> Path:
    """Where the mapping of ``mno`` lives: ``<catalog dir>/mno/<mno>.yaml``."""
    root = Path(catalog)
    if root.is_file():
        root = root.parent
    return root / "mno" / f"{mno}.yaml"


def load_mapping_text(text: str, file: str) -> Mapping:
    problems: list[Problem] = []
    node = compose(text, file, problems)
    mapping = None
    if node is None:
        if not problems:
            problems.append(Problem(file, 1, "(file)", "empty: a mapping is a YAML mapping"))
    else:
        mapping = _MappingReader(file, problems).read(node)
    if problems or mapping is None:
        problems.sort(key=lambda p: p.line)
        raise MappingError(problems)
    return mapping


class _MappingReader(Reader):
    def read(self, root: Node) -> Mapping | None:
        top = self.mapping(
            root, "", MAPPING_KEYS, ("mno", "format", "timezone", "time_format", "columns")
        )
        if top is None:
            return None
        mno = self.string(top["mno"], "mno", _NAME, "a lowercase name") if "mno" in top else None
        fmt = self._format(top.get("format"))
        delimiter, quote, header = ",", '"', True
        if "csv" in top:
            if fmt != "csv":
                self.problem(top["csv"], "csv", "only for format: csv")
            delimiter, quote, header = self._csv(top["csv"])
        elif fmt == "fixed":
            header = False
        encoding = "utf-8"
        if "encoding" in top:
            encoding = self._encoding(top["encoding"]) or encoding
        skip = 0
        if "skip_lines" in top:
            skip = self.integer(top["skip_lines"], "skip_lines", 0, 1000) or 0
        comment = ""
        if "comment" in top:
            comment = self.string(top["comment"], "comment") or ""
        tenant = None
        if "tenant" in top:
            tenant = self.string(top["tenant"], "tenant", _TENANT, "a tenant id")
        timezone = self._timezone(top.get("timezone"))
        time_format = self._time_format(top.get("time_format"))
        columns = self._columns(top.get("columns"), fmt, header)
        services = self._services(top.get("services"), root)
        numbers = self._numbers(top.get("numbers"), root)
        service_column = next((c for c in columns if c.field == "service"), None)
        if service_column is not None and services is not None:
            known = {s.kind for s in services}
            for value, kind in service_column.value_map:
                if kind not in known:
                    self.problem(
                        top["columns"],
                        "columns.service.map",
                        f"{value!r} maps to {kind}, which services: does not configure",
                    )
        if (
            mno is None
            or fmt is None
            or timezone is None
            or time_format is None
            or services is None
            or numbers is None
            or self.problems
        ):
            return None
        return Mapping(
            mno=mno,
            source=self.file,
            format=fmt,
            columns=tuple(columns),
            services=tuple(services),
            numbers=numbers,
            timezone=timezone,
            time_format=time_format,
            delimiter=delimiter,
            quote=quote,
            header=header,
            encoding=encoding,
            skip_lines=skip,
            comment=comment,
            tenant=tenant,
        )

    def _format(self, node: Node | None) -> Format | None:
        if node is None:
            return None
        text = self.string(node, "format")
        if text not in ("csv", "fixed"):
            if text is not None:
                self.problem(node, "format", f"{text!r} is not csv or fixed")
            return None
        return cast(Format, text)

    def _csv(self, node: Node) -> tuple[str, str, bool]:
        fields = self.mapping(node, "csv", CSV_KEYS) or {}
        delimiter, quote, header = ",", '"', True
        for key in ("delimiter", "quote"):
            if key in fields:
                text = self.scalar_text(fields[key], f"csv.{key}")
                if text is not None and (len(text) != 1 or text in "\r\n"):
                    self.problem(fields[key], f"csv.{key}", "must be one character")
                elif text is not None:
                    delimiter, quote = (text, quote) if key == "delimiter" else (delimiter, text)
        if delimiter == quote:
            self.problem(node, "csv", "delimiter and quote must differ")
        if "header" in fields:
            value = self.boolean(fields["header"], "csv.header")
            header = header if value is None else value
        return delimiter, quote, header

    def _encoding(self, node: Node) -> str | None:
        text = self.string(node, "encoding")
        if text is None:
            return None
        try:
            "".encode(text)
        except LookupError:
            self.problem(node, "encoding", f"{text!r} is not a known text encoding")
            return None
        return text

    def _timezone(self, node: Node | None) -> str | None:
        if node is None:
            return None
        text = self.string(node, "timezone")
        if text is None:
            return None
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(node, "timezone", f"{text!r} is not an IANA time zone")
            return None
        return text

    def _time_format(self, node: Node | None) -> str | None:
        if node is None:
            return None
        text = self.string(node, "time_format")
        if text is None or text in (TIME_EPOCH, TIME_EPOCH_MS):
            return text
        if "%" not in text:
            self.problem(node, "time_format", "a strptime format (e.g. %Y%m%d%H%M%S) or epoch")
            return None
        try:
            sample = datetime(2026, 11, 17, 10, 5, 7).strftime(text)
            datetime.strptime(sample, text)
        except ValueError as exc:
            self.problem(node, "time_format", f"{text!r} cannot be parsed back: {exc}")
            return None
        return text

    def _columns(self, node: Node | None, fmt: Format | None, header: bool) -> list[Column]:
        if node is None:
            return []
        fields = self.mapping(node, "columns", frozenset(FIELDS), REQUIRED_FIELDS) or {}
        if "imsi" not in fields and "msisdn" not in fields and fields:
            self.problem(node, "columns", "needs imsi or msisdn (who the record is for)")
        out: list[Column] = []
        for name, child in fields.items():
            column = self._column(child, f"columns.{name}", name, fmt, header)
            if column is not None:
                out.append(column)
        return out

    def _column(
        self, node: Node, where: str, field: str, fmt: Format | None, header: bool
    ) -> Column | None:
        if isinstance(node, ScalarNode):  # short form: the CSV column itself
            spec: dict[str, Node] = {"column": node}
        else:
            found = self.mapping(node, where, COLUMN_KEYS)
            if found is None:
                return None
            spec = found
        value_map: tuple[tuple[str, str], ...] = ()
        if "map" in spec:
            if field != "service":
                self.problem(spec["map"], f"{where}.map", "only the service column has a map")
            else:
                value_map = self._value_map(spec["map"], f"{where}.map")
        elif field == "service" and "value" not in spec:
            self.problem(node, f"{where}.map", "the service column needs a value map")
        if "value" in spec:
            if len(spec) > 1 + ("map" in spec):
                self.problem(node, where, "value: is a constant; no column or start with it")
                return None
            value = self.scalar_text(spec["value"], f"{where}.value")
            if value is None:
                return None
            return Column(field, value=value, value_map=value_map)
        if fmt == "fixed":
            if "start" not in spec or "width" not in spec:
                self.problem(node, where, "fixed width needs start: (1-based) and width:")
                return None
            start = self.integer(spec["start"], f"{where}.start", 1, FIXED_WIDTH_MAX)
            width = self.integer(spec["width"], f"{where}.width", 1, FIXED_WIDTH_MAX)
            if "column" in spec:
                self.problem(spec["column"], f"{where}.column", "fixed width uses start/width")
            if start is None or width is None:
                return None
            return Column(field, start=start - 1, width=width, value_map=value_map)
        if "start" in spec or "width" in spec:
            self.problem(node, where, "start/width are for format: fixed")
            return None
        if "column" not in spec:
            self.problem(node, f"{where}.column", "required key is missing")
            return None
        text = self.scalar_text(spec["column"], f"{where}.column")
        if text is None:
            return None
        if text.isdigit():
            index = self.integer(spec["column"], f"{where}.column", 1, COLUMNS_MAX)
            return None if index is None else Column(field, index=index - 1, value_map=value_map)
        if not header:
            self.problem(
                spec["column"], f"{where}.column", "without a header, give a 1-based index"
            )
            return None
        return Column(field, header=text, value_map=value_map)

    def _value_map(self, node: Node, where: str) -> tuple[tuple[str, str], ...]:
        pairs = self.mapping(node, where) or {}
        if len(pairs) > SERVICE_VALUES_MAX:
            self.problem(node, where, f"at most {SERVICE_VALUES_MAX} values")
        out: list[tuple[str, str]] = []
        for value, target in pairs.items():
            kind = self.scalar_text(target, f"{where}.{value}")
            if kind is None:
                continue
            if kind not in SERVICE_KINDS:
                self.problem(target, f"{where}.{value}", f"{kind!r} is not data, voice or sms")
                continue
            out.append((value, kind))
        return tuple(out)

    def _services(self, node: Node | None, root: Node) -> list[ServiceRule] | None:
        """``services: {data: {service: data, scale: 1024, rating_group: 10}, ...}``; absent:
        each kind charged as the tenant's service of the same name, scale 1."""
        if node is None:
            return [ServiceRule(kind, kind) for kind in SERVICE_KINDS]
        fields = self.mapping(node, "services", frozenset(SERVICE_KINDS))
        if fields is None:
            return None
        out: list[ServiceRule] = []
        for kind, child in fields.items():
            where = f"services.{kind}"
            spec = self.mapping(child, where, SERVICE_KEYS) or {}
            service = kind
            if "service" in spec:
                service = self.string(spec["service"], f"{where}.service", _NAME, "a name") or kind
            scale = 1
            if "scale" in spec:
                scale = self.integer(spec["scale"], f"{where}.scale", 1, SCALE_MAX) or 1
            group = None
            if "rating_group" in spec:
                group = self.integer(spec["rating_group"], f"{where}.rating_group", 0, 2**32 - 1)
            out.append(ServiceRule(cast(ServiceKind, kind), service, scale, group))
        return out

    def _numbers(self, node: Node | None, root: Node) -> NumberRules | None:
        if node is None:
            self.problem(root, "numbers", "required key is missing (country_code at least)")
            return None
        fields = self.mapping(node, "numbers", NUMBER_KEYS, ("country_code",))
        if fields is None or "country_code" not in fields:
            return None
        cc = self.string(
            fields["country_code"], "numbers.country_code", _COUNTRY_CODE, "1-3 digits"
        )
        prefixes: tuple[str, ...] = ("+", "00")
        if "international_prefixes" in fields:
            found = self.list_of(
                fields["international_prefixes"],
                "numbers.international_prefixes",
                lambda n, f: self.string(n, f, _PREFIX, "+ and/or digits"),
            )
            prefixes = tuple(found or ())
        national = "0"
        if "national_prefix" in fields:
            text = self.scalar_text(fields["national_prefix"], "numbers.national_prefix")
            if text is not None and not _DIGITS.fullmatch(text):
                self.problem(fields["national_prefix"], "numbers.national_prefix", "digits")
            national = text or ""
        bare: NumberKind = "international"
        if "bare" in fields:
            text = self.string(fields["bare"], "numbers.bare")
            if text not in ("international", "national"):
                if text is not None:
                    self.problem(fields["bare"], "numbers.bare", "international or national")
            else:
                bare = cast(NumberKind, text)
        strip = DEFAULT_STRIP
        if "strip" in fields:
            strip = self.scalar_text(fields["strip"], "numbers.strip") or ""
            if any(c.isdigit() or c == "+" for c in strip):
                self.problem(fields["strip"], "numbers.strip", "must not remove digits or +")
        rewrites: list[Rewrite] = []
        if "rewrite" in fields:
            for index, item in enumerate(self.sequence(fields["rewrite"], "numbers.rewrite") or []):
                where = f"numbers.rewrite[{index}]"
                spec = self.mapping(item, where, frozenset({"prefix", "replace"}), ("prefix",))
                if spec is None or "prefix" not in spec:
                    continue
                prefix = self.string(spec["prefix"], f"{where}.prefix", _PREFIX, "+ and/or digits")
                replace = ""
                if "replace" in spec:
                    replace = self.scalar_text(spec["replace"], f"{where}.replace") or ""
                    if not _PREFIX.fullmatch(replace):
                        self.problem(spec["replace"], f"{where}.replace", "+ and/or digits")
                if prefix is not None:
                    rewrites.append(Rewrite(prefix, replace))
        minimum = 3
        if "min_digits" in fields:
            minimum = self.integer(fields["min_digits"], "numbers.min_digits", 1, 15) or 3
        if cc is None:
            return None
        return NumberRules(
            country_code=cc,
            international_prefixes=prefixes,
            national_prefix=national,
            bare=bare,
            strip=strip,
            rewrite=tuple(rewrites),
            min_digits=minimum,
        )
