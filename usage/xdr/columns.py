"""A CSV file's lines → columns (pyarrow string arrays), a chunk of lines at a time, so the
fields of a whole chunk are normalised and rated with vector operations.

Only lines that are plainly regular go the columnar way: ASCII, no quote character, no
control character but tab, at least the fields the mapping reads, not a comment. Every other
line of a chunk is handed to ``LineReader`` (the one-line-at-a-time reader), so its answer
(a skipped line, a reject and its reason) is exactly the one that reader gives. A chunk that
is not valid text, or has a line longer than ``LINE_CHARS_MAX``, is read by ``LineReader`` as
a whole; once a quote character appears (a quoted field may span lines), the rest of the
file is. Memory is one chunk (``CHUNK_BYTES``) whatever the file's size.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from usage.xdr.mapping import Mapping
from usage.xdr.parse import (
    LINE_CHARS_MAX,
    FieldPosition,
    LineReader,
    RawLine,
    header_positions,
    positions_width,
)

CHUNK_BYTES = 2 << 20
_PLAIN_BYTES = bytes(range(32, 127)) + b"\t\r\n"
Bools = npt.NDArray[np.bool_]


@dataclass
class Chunk:
    """Lines ``first_line`` .. of the file, as read (``body``; line i is
    ``body[starts[i]:starts[i + 1]]``). ``rows``: the indexes of the regular lines, whose
    mapped fields are ``columns`` (stripped text; a constant column is a plain ``str``);
    ``others``: what ``LineReader`` made of the other lines (skipped lines are absent)."""

    first_line: int
    body: bytes
    starts: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    columns: dict[str, pa.Array | str]
    others: list[RawLine] = field(default_factory=list)

    def text(self, row: int) -> str:
        line = self.body[int(self.starts[row]) : int(self.starts[row + 1])]
        return line.decode("ascii").rstrip("\r\n")  # regular lines are ASCII


def columnar(mapping: Mapping) -> bool:
    """Whether files of ``mapping`` can be read by columns: CSV, in an encoding that writes
    ASCII as ASCII, with one-character ASCII delimiter, quote and comment mark (fixed-width
    files are read a line at a time)."""
    if mapping.format != "csv" or len(mapping.delimiter) != 1:
        return False
    marks = mapping.delimiter + mapping.quote + mapping.comment[:1]
    try:
        sample = ("az AZ 09;,|\t" + marks).encode(mapping.encoding)
    except (LookupError, UnicodeEncodeError):
        return False
    return marks.isascii() and sample == ("az AZ 09;,|\t" + marks).encode("ascii")


class ChunkReader:
    """Iterate a CSV file as ``Chunk``s, and ``RawLine``s where lines are read one at a time;
    ``position`` is the bytes consumed so far (progress)."""

    def __init__(self, mapping: Mapping, stream: BinaryIO, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.mapping = mapping
        self._stream = stream
        self._chunk_bytes = chunk_bytes
        self._delimiter = mapping.delimiter.encode("ascii")
        self._fields = 0  # fields of a regular line: the header's, else the first line's
        self.position = 0

    def __iter__(self) -> Iterator[Chunk | RawLine]:
        mapping = self.mapping
        line, positions = self._head()
        if positions is None:  # a header the columnar way cannot read: all a line at a time
            yield from self._lines_from(0, 1, None)
            return
        offset = self._stream.tell()  # of rest's first byte
        quote = mapping.quote.encode("ascii") if mapping.quote else b""
        rest = b""
        while True:
            data = self._stream.read(self._chunk_bytes)
            block = rest + data
            if not block:
                return
            cut = block.rfind(b"\n") + 1 if data else len(block)
            if cut == 0:
                if len(block) > LINE_CHARS_MAX:  # one huge line: the line reader cuts it
                    yield from self._lines_from(offset, line, positions)
                    return
                rest = block
                continue
            body, rest = block[:cut], block[cut:]
            if not body.endswith(b"\n"):
                body += b"\n"  # the last line, unterminated: the line reader reads it so too
            if quote and quote in body:
                yield from self._lines_from(offset, line, positions)
                return
            if not _plain(body):
                yield from LineReader(
                    mapping, io.BytesIO(body), first_line=line, positions=positions
                )
            else:
                yield self._chunk(line, body, positions)
            line += body.count(b"\n")
            offset += cut
            self.position = offset

    def _head(self) -> tuple[int, list[FieldPosition] | None]:
        """Past the skipped lines and the header: the next line's number and the mapped
        fields' positions (None: the header is quoted, overlong or not text)."""
        mapping = self.mapping
        line = 1
        for _ in range(mapping.skip_lines):
            raw = self._stream.readline(LINE_CHARS_MAX + 1)
            if not raw.endswith(b"\n") or (mapping.quote and mapping.quote.encode() in raw):
                return 1, None
            line += 1
        if not mapping.header:
            return line, [(c.field, c.index, c.value) for c in mapping.columns]
        raw = self._stream.readline(LINE_CHARS_MAX + 1)
        try:
            text = raw.decode(mapping.encoding)
        except UnicodeDecodeError:
            return 1, None
        if not text.endswith("\n") or (mapping.quote and mapping.quote in text):
            return 1, None
        row = next(csv.reader([text.rstrip("\r\n")], delimiter=mapping.delimiter), [])
        positions, _ = header_positions(mapping.columns, row, line)
        self._fields = max(len(row), positions_width(positions))
        return line + 1, positions

    def _lines_from(
        self, offset: int, line: int, positions: list[FieldPosition] | None
    ) -> Iterator[RawLine]:
        """The rest of the file, a line at a time, from byte ``offset`` (line ``line``)."""
        self._stream.seek(offset)
        reader = LineReader(self.mapping, self._stream, first_line=line, positions=positions)
        for raw in reader:
            self.position = reader.position
            yield raw
        self.position = reader.position

    def _chunk(self, first_line: int, body: bytes, positions: list[FieldPosition]) -> Chunk:
        mapping = self.mapping
        ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10)
        starts = np.concatenate([[0], ends + 1]).astype(np.int64)
        count = len(ends)
        if self._fields == 0:
            first = body[: int(ends[0])].rstrip(b"\r") if count else b""
            self._fields = max(first.count(self._delimiter) + 1, positions_width(positions))
        invalid: list[int] = []

        def skip(row: pcsv.InvalidRow) -> str:
            invalid.append(row.number)
            return "skip"

        wanted = sorted({index for _, index, value in positions if value is None})
        names = [f"f{i}" for i in range(self._fields)]
        table = pcsv.read_csv(
            pa.BufferReader(body),
            read_options=pcsv.ReadOptions(
                column_names=names, use_threads=False, block_size=len(body) + 1
            ),
            parse_options=pcsv.ParseOptions(
                delimiter=mapping.delimiter, quote_char=False, double_quote=False,
                newlines_in_values=False, ignore_empty_lines=False, invalid_row_handler=skip,
            ),
            convert_options=pcsv.ConvertOptions(
                include_columns=[names[i] for i in wanted],
                column_types={names[i]: pa.string() for i in wanted},
                strings_can_be_null=False, quoted_strings_can_be_null=False, check_utf8=False,
            ),
        )  # fmt: skip
        parsed = np.ones(count, dtype=np.bool_)
        parsed[np.array(invalid, dtype=np.int64) - 1] = False
        rows = np.flatnonzero(parsed)
        regular = np.ones(len(rows), dtype=np.bool_)
        if body.translate(None, _PLAIN_BYTES):  # a byte other than printable ASCII, tab, CR LF
            regular &= ~_odd_lines(body, starts)[rows]
        # A blank line (every field empty) and a line whose first field starts with a blank or
        # the comment mark: the line reader says whether it is skipped.
        length = np.zeros(len(rows), dtype=np.int64)
        for index in wanted:
            length += pc.binary_length(table.column(names[index])).to_numpy()
        regular &= length > 0
        lead = np.frombuffer(body, dtype=np.uint8)[np.minimum(starts[rows], len(body) - 1)]
        regular &= (lead != 32) & (lead != 9)
        if mapping.comment:
            regular &= lead != ord(mapping.comment[0])
        keep = pa.array(regular)
        columns: dict[str, pa.Array | str] = {}
        for name, index, value in positions:
            if value is not None:
                columns[name] = value
            else:
                column = table.column(names[index]).combine_chunks().filter(keep)
                columns[name] = pc.ascii_trim_whitespace(column)
        chunk = Chunk(first_line, body, starts, rows[regular].astype(np.int64), columns)
        for row in sorted(invalid_rows(count, rows, regular)):
            data = body[int(starts[row]) : int(starts[row + 1])]
            chunk.others.extend(
                LineReader(mapping, io.BytesIO(data), first_line=first_line + row,
                           positions=positions)
            )  # fmt: skip
        return chunk


def invalid_rows(count: int, rows: npt.NDArray[np.int64], regular: Bools) -> list[int]:
    """The lines (indexes) that did not parse to the expected fields or are not regular."""
    taken = np.zeros(count, dtype=np.bool_)
    taken[rows[regular]] = True
    return np.flatnonzero(~taken).tolist()


def _odd_lines(body: bytes, starts: npt.NDArray[np.int64]) -> Bools:
    """Per line: has a non-ASCII byte or a control character other than tab and CR LF."""
    data = np.frombuffer(body, dtype=np.uint8)
    odd = (data >= 0x7F) | ((data < 32) & (data != 9) & (data != 10) & (data != 13))
    total = np.concatenate([[0], np.cumsum(odd, dtype=np.int64)])
    return np.asarray(total[starts[1:]] - total[starts[:-1]] > 0, dtype=np.bool_)


def _plain(text: bytes) -> bool:
    """No bare carriage return (a line break to the csv module) and no overlong line."""
    if b"\r" in text and text.count(b"\r") != text.count(b"\r\n"):
        return False
    if len(text) <= LINE_CHARS_MAX:
        return True
    ends = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == 10)
    return int(np.diff(np.concatenate([[-1], ends])).max(initial=0)) <= LINE_CHARS_MAX
