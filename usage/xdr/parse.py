"""Lines of an MNO file → the mapped fields' text, one line at a time (memory stays flat
whatever the file's size).

The reader takes any binary stream; decoding is per line with ``surrogateescape`` so one bad
byte rejects one line (``unparseable``) instead of stopping the file. A header row that lacks
a mapped column is a problem of the whole file (``FileLayoutError``), reported at line 1.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import BinaryIO

import msgspec

from usage.xdr.mapping import Column, Mapping
from usage.xdr.rejects import Reason, Rejected

LINE_CHARS_MAX = 64 * 1024
FieldPosition = tuple[str, int, "str | None"]
"""(field, 0-based column, constant value or None) of one mapped column."""


class FileLayoutError(ValueError):
    """The file does not have the layout the mapping describes (e.g. a missing header)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


class RawLine(msgspec.Struct, frozen=True):
    """One data line: its number in the file (1-based), its text, and each mapped field's
    text (``None``: the line has no such field), or ``error`` when it could not be split."""

    line: int
    text: str
    fields: dict[str, str]
    error: Rejected | None = None


def _bad_text(text: str) -> bool:
    """Undecodable bytes (surrogateescape made them lone surrogates, which UTF-8 refuses)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class LineReader:
    """Iterate a file's data lines; ``position`` is the bytes consumed so far (progress)."""

    def __init__(
        self,
        mapping: Mapping,
        stream: BinaryIO,
        *,
        first_line: int = 1,
        positions: list[FieldPosition] | None = None,
    ) -> None:
        """``first_line``/``positions``: the stream starts inside a file, at that line, whose
        header gave those positions (the columnar reader hands a stretch of lines over)."""
        self.mapping = mapping
        self.first_line = first_line
        self.positions = positions
        self._binary = stream
        self._text = io.TextIOWrapper(
            stream, encoding=mapping.encoding, errors="surrogateescape", newline=""
        )

    @property
    def position(self) -> int:
        try:
            return self._binary.tell()
        except (OSError, ValueError):
            return 0

    def __iter__(self) -> Iterator[RawLine]:
        if self.mapping.format == "fixed":
            return self._fixed()
        return self._csv()

    def _skipped(self, line: int, text: str) -> bool:
        if line <= self.mapping.skip_lines:
            return True
        stripped = text.strip()
        return not stripped or bool(
            self.mapping.comment and stripped.startswith(self.mapping.comment)
        )

    def _fixed(self) -> Iterator[RawLine]:
        columns = self.mapping.columns
        for number, raw in enumerate(self._text, start=self.first_line):
            text = raw.rstrip("\r\n")
            if self._skipped(number, text):
                continue
            if len(text) > LINE_CHARS_MAX or _bad_text(text):
                yield _unreadable(number, text, self.mapping.encoding)
                continue
            fields: dict[str, str] = {}
            short = None
            for column in columns:
                if column.value is not None:
                    fields[column.field] = column.value
                    continue
                if len(text) < column.start + 1:
                    short = column
                    continue
                fields[column.field] = text[column.start : column.start + column.width].strip()
            if short is not None and short.field in ("record_id", "started_at", "quantity"):
                reject = Rejected(
                    Reason.UNPARSEABLE,
                    f"line is {len(text)} characters, {short.field} starts at {short.start + 1}",
                )
                yield RawLine(number, text, fields, reject)
                continue
            yield RawLine(number, text, fields)

    def _csv(self) -> Iterator[RawLine]:
        mapping = self.mapping
        lines = _LineCounter(self._text)
        lines.count = self.first_line - 1
        reader = csv.reader(
            lines, delimiter=mapping.delimiter, quotechar=mapping.quote, strict=True
        )
        positions = self.positions
        if positions is None and not mapping.header:
            positions = [(c.field, c.index, c.value) for c in mapping.columns]
        width = 0 if positions is None else positions_width(positions)
        while True:
            start = lines.count + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                text = lines.last.rstrip("\r\n")
                yield RawLine(start, text, {}, Rejected(Reason.UNPARSEABLE, f"CSV: {exc}"))
                reader = csv.reader(
                    lines, delimiter=mapping.delimiter, quotechar=mapping.quote, strict=True
                )
                continue
            text = lines.last.rstrip("\r\n") if lines.count == start else _join(row, mapping)
            if start <= mapping.skip_lines:
                continue
            if positions is None:
                positions, width = header_positions(mapping.columns, row, start)
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if mapping.comment and row[0].lstrip().startswith(mapping.comment):
                continue
            if _bad_text(text):
                yield _unreadable(start, text, mapping.encoding)
                continue
            if len(row) < width:
                reject = Rejected(
                    Reason.UNPARSEABLE, f"{len(row)} fields, the mapping reads {width}"
                )
                yield RawLine(start, text, {}, reject)
                continue
            fields = {
                field: (value if value is not None else row[index].strip())
                for field, index, value in positions
            }
            yield RawLine(start, text, fields)


class _LineCounter:
    """An iterator of lines for ``csv.reader`` that remembers the last line and counts them,
    so a record is reported at the line it starts on (quoted fields may span lines)."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self.count = 0
        self.last = ""

    def __iter__(self) -> _LineCounter:
        return self

    def __next__(self) -> str:
        line = next(self._text)
        self.count += 1
        if len(line) > LINE_CHARS_MAX:
            line = line[:LINE_CHARS_MAX]
        self.last = line
        return line


def positions_width(positions: list[FieldPosition]) -> int:
    """How many fields a line needs for every mapped column."""
    return max((index + 1 for _, index, value in positions if value is None), default=0)


def header_positions(
    columns: tuple[Column, ...], header: list[str], line: int
) -> tuple[list[FieldPosition], int]:
    """Each mapped field's position in lines under ``header`` (``FileLayoutError`` if absent)."""
    names = {name.strip(): index for index, name in enumerate(header)}
    out: list[FieldPosition] = []
    for column in columns:
        if column.value is not None:
            out.append((column.field, -1, column.value))
        elif column.header is not None:
            index = names.get(column.header)
            if index is None:
                raise FileLayoutError(
                    line, f"header has no column {column.header!r} (for {column.field})"
                )
            out.append((column.field, index, None))
        else:
            out.append((column.field, column.index, None))
    return out, positions_width(out)


def _join(row: list[str], mapping: Mapping) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=mapping.delimiter, quotechar=mapping.quote).writerow(row)
    return buffer.getvalue().rstrip("\r\n")


def _unreadable(line: int, text: str, encoding: str) -> RawLine:
    clean = text.encode("utf-8", "replace").decode("utf-8")
    return RawLine(line, clean, {}, Rejected(Reason.UNPARSEABLE, f"not valid {encoding} text"))
