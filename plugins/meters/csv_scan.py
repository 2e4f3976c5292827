"""A bounded first pass over a CSV file: sizes, field counts and physical line numbers.

pandas' C parser reads a file fast but has no limits (one endless line or cell takes all
the memory it can get), silently drops the extra fields of a row when only some columns
are read, fills short rows with empty cells, and numbers rows, not physical lines. This
pass reads the raw bytes once in fixed-size chunks (numpy on each chunk, no per-line
Python) and refuses, before pandas sees the file:

* a line (record) longer than ``max_line_kb`` and a field longer than ``max_field_kb``,
  as soon as the chunk that crosses the limit is read, so memory stays bounded;
* a record with more or fewer fields than the header (blank lines are allowed);
* a quoted field that is never closed.

Quoting follows RFC 4180 (``"`` doubled inside a quoted field), as pandas' parser does:
delimiters and line breaks inside quotes belong to the field. Records that span several
physical lines are tracked, so every error can name the physical line.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kwhub.core.input_limits import InputLimits, excerpt, size_text
from kwhub.core.intervals import IntervalDataError

CHUNK = 4 << 20
_ASCII_COMPATIBLE = {"utf-8", "utf-8-sig", "ascii", "latin-1", "iso8859-1", "cp1252", "iso8859-15", "cp1250",
                     "mac-roman"}


@dataclass
class CsvScan:
    """What the first pass learnt: data records and where they start.

    ``shifts`` holds ``(record index, extra lines)`` pairs from the first record that
    starts later than "one record per line" would put it (a quoted field spanning lines).
    """

    records: int = 0  # data records after the header (blank ones included)
    first_line: int = 2  # physical line of the first data record
    has_quotes: bool = False
    shifts: list[tuple[int, int]] = field(default_factory=list)

    def lines(self, index: np.ndarray) -> np.ndarray:
        """Physical line numbers of the data records ``index`` (0-based)."""
        idx = np.asarray(index, dtype=np.int64)
        out = idx + self.first_line
        if self.shifts:
            at = np.array([s[0] for s in self.shifts], dtype=np.int64)
            extra = np.array([s[1] for s in self.shifts], dtype=np.int64)
            k = np.searchsorted(at, idx, side="right") - 1
            out = out + np.where(k >= 0, extra[np.maximum(k, 0)], 0)
        return out


def ascii_compatible(encoding: str) -> bool:
    """True when the delimiter, quote and line break are single bytes in ``encoding``."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return False
    return name in _ASCII_COMPATIBLE or name.startswith(("iso8859", "cp12", "latin"))


def _excerpt_at(path: Path, offset: int) -> str:
    with path.open("rb") as fh:
        fh.seek(offset)
        head = fh.read(200)
    line = head.split(b"\n", 1)[0]
    return excerpt(line, whole=len(line) < len(head))


def scan_csv(path: Path, *, delimiter: str, header_fields: int, skip_rows: int, limits: InputLimits,
             line_break: bytes = b"\n", quotechar: str = '"') -> CsvScan:
    """One bounded pass over ``path``; raise :class:`IntervalDataError` naming the line and the limit.

    ``skip_rows`` lines come before the header line; data records follow it. Only for
    ASCII-compatible encodings (the caller checks); ``line_break`` is ``b"\\n"`` (also
    for ``\\r\\n`` files) or ``b"\\r"`` for files that end lines with a lone CR.
    """
    st = _ScanState(path, delimiter, header_fields, skip_rows, limits, line_break, quotechar)
    with path.open("rb") as fh:
        while True:
            buf = fh.read(CHUNK)
            if not buf:
                break
            st.chunk(buf)
    return st.finish()


class _ScanState:
    """The running state of :func:`scan_csv` between chunks (all offsets global)."""

    def __init__(self, path: Path, delimiter: str, header_fields: int, skip_rows: int, limits: InputLimits,
                 line_break: bytes, quotechar: str) -> None:
        self.path = path
        self.delim = delimiter.encode("ascii")[0]
        self.lb = line_break
        self.nl = line_break[0]
        self.quote = quotechar.encode("ascii")[0]
        self.header_fields = header_fields
        self.skip_rows = skip_rows
        self.header_rec = skip_rows  # record index of the header line
        self.max_line, self.max_field = limits.max_line_bytes, limits.max_field_bytes
        self.scan = CsvScan(first_line=skip_rows + 2)
        self.offset = 0  # global offset of the chunk being read
        self.rec = 0  # index of the record being read (0 = first line of the file)
        self.rec_start = 0  # where it starts
        self.rec_line = 1  # physical line where it starts
        self.rec_delims = 0  # its delimiters outside quotes so far
        self.last_sep = -1  # the last separator (delimiter or record end) outside quotes
        self.header_end = -1  # where the header record ends (-1: not yet)
        self.in_quote = 0
        self.quote_line = 0  # physical line of the quote that opened the field still open
        self.phys = 0  # physical line breaks before the chunk
        self.shift = 0  # extra physical lines of the current record (quoted line breaks before it)
        self.prev_byte = 0  # last byte of the previous chunk
        self._phys_after = 0  # physical line breaks up to the end of the chunk being read

    # ---- errors

    def _fail(self, what: str, line: int, at: int) -> IntervalDataError:
        return IntervalDataError(f"{what}; it starts with {_excerpt_at(self.path, at)}", source=str(self.path),
                                 where=f"line {line}", field="")

    def _field_error(self, at: int) -> IntervalDataError:
        return self._fail(f"a field is longer than the limit of {size_text(self.max_field)} "
                          "(ingest.max_field_kb in kwhub.toml)", _line_at(self.path, at, self.lb), at)

    def _line_error(self, line: int, at: int) -> IntervalDataError:
        return self._fail(f"line is longer than the limit of {size_text(self.max_line)} "
                          "(ingest.max_line_kb in kwhub.toml)", line, at)

    def _count_error(self, got: int, line: int) -> IntervalDataError:
        more = "more" if got > self.header_fields else "fewer"
        return IntervalDataError(
            f"row has {got} field{'s' if got != 1 else ''}, {more} than the {self.header_fields} columns of the "
            f"header (line {self.skip_rows + 1}); every row needs one cell per column (an empty cell is a gap)",
            source=str(self.path), where=f"line {line}", field="")

    # ---- one chunk

    def chunk(self, buf: bytes) -> None:
        a = np.frombuffer(buf, dtype=np.uint8)
        off = self.offset
        if self.in_quote or bytes([self.quote]) in buf:
            ends, delims, tail_delims, after = self._quoted(a, buf)
        else:
            ends, delims, tail_delims, after = self._plain(a, buf)
        n_rec = len(ends)
        rec_ids = self.rec + np.arange(n_rec)
        if n_rec:
            start_lines = np.empty(n_rec, dtype=np.int64)
            start_lines[0] = self.rec_line
            start_lines[1:] = self.phys + after[:-1] + 1
            next_line = self.phys + int(after[-1]) + 1
            starts = np.empty(n_rec, dtype=np.int64)
            starts[0] = self.rec_start
            starts[1:] = ends[:-1] + off + 1
            lengths = ends + off - starts
            over = (lengths > self.max_line) & (rec_ids != self.header_rec)
            if over.any():
                j = int(np.argmax(over))
                raise self._line_error(int(start_lines[j]), int(starts[j]))
            extra = start_lines - (rec_ids + 1)
            first_data = self.header_rec + 1 - self.rec
            if 0 <= first_data < n_rec and extra[first_data]:  # line breaks in quotes before the first row
                self.scan.shifts.append((0, int(extra[first_data])))
            for j in np.flatnonzero(np.diff(extra, prepend=self.shift)).tolist():
                self.shift = int(extra[j])
                if rec_ids[j] > self.header_rec + (j == first_data):
                    self.scan.shifts.append((int(rec_ids[j]) - self.header_rec - 1, self.shift))
            data = rec_ids > self.header_rec
            if data.any():
                delims[0] += self.rec_delims
                before = np.where(ends > 0, a[np.maximum(ends - 1, 0)], self.prev_byte)
                blank = (lengths == 0) | ((lengths == 1) & (before == 13))
                wrong = data & ~blank & (delims != self.header_fields - 1)
                if wrong.any():
                    j = int(np.argmax(wrong))
                    raise self._count_error(int(delims[j]) + 1, int(start_lines[j]))
            self.rec += n_rec
            self.rec_start = int(ends[-1]) + off + 1
            self.rec_line = next_line
            self.rec_delims = tail_delims
        else:
            self.rec_delims += tail_delims
        end = off + len(buf)
        if self.rec != self.header_rec:  # what is still open must already fit
            if self.header_end >= 0 and end - self.last_sep - 1 > self.max_field:
                raise self._field_error(self.last_sep + 1)
            if end - self.rec_start > self.max_line:
                raise self._line_error(self.rec_line, self.rec_start)
        self.phys = self._phys_after
        self.prev_byte = buf[-1]
        self.offset = end

    def _header_seen(self, ends: np.ndarray) -> None:
        """Note where the header record ends once this chunk holds its line break."""
        if self.header_end < 0 and len(ends) and self.rec + len(ends) - 1 >= self.header_rec:
            self.header_end = int(ends[self.header_rec - self.rec]) + self.offset

    def _fields(self, g: np.ndarray, prev: int) -> None:
        """Field lengths between the separators ``g`` (global, sorted), the previous one at ``prev``."""
        if not len(g):
            return
        gaps = np.diff(g, prepend=prev) - 1
        if self.header_end >= 0:
            gaps[g <= self.header_end] = 0
        else:
            gaps[:] = 0
        k = int(np.argmax(gaps))
        if gaps[k] > self.max_field:
            raise self._field_error(int(g[k - 1]) + 1 if k else prev + 1)

    def _plain(self, a: np.ndarray, buf: bytes) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
        """A chunk without quotes: every line break ends a record; delimiters counted per record.

        Only a record (or the open tail) longer than ``max_field_kb`` can hold a long field,
        so separators are located one by one only there.
        """
        off = self.offset
        ends = np.flatnonzero(a == self.nl)
        at = np.flatnonzero(a == self.delim)  # delimiter positions: counted per record by bisection
        n = len(ends)
        self._header_seen(ends)
        if n:
            tail = int(ends[-1]) + 1 < len(a)
            bounds = np.empty(n + 1 + tail, dtype=np.intp)
            bounds[0] = 0
            bounds[1:n + 1] = ends + 1
            if tail:
                bounds[n + 1] = len(a)
            counts = np.diff(np.searchsorted(at, bounds))
            delims, tail_delims = counts[:n], int(counts[n]) if tail else 0
        else:
            delims, tail_delims = np.zeros(0, dtype=np.int64), len(at)
        # fields: the one crossing into this chunk, then any region long enough to hold a long one
        d_b, n_b = bytes([self.delim]), bytes([self.nl])
        firsts = [x for x in (buf.find(d_b), buf.find(n_b)) if x >= 0]
        if firsts:
            self._fields(np.array([min(firsts) + off], dtype=np.int64), self.last_sep)
            bounds = np.concatenate(([0], ends + 1, [len(a)]))
            for k in np.flatnonzero(np.diff(bounds) > self.max_field).tolist():  # rare: long lines only
                lo, hi = int(bounds[k]), int(bounds[k + 1])
                region = a[lo:hi]
                g = np.flatnonzero((region == self.delim) | (region == self.nl)) + lo + off
                self._fields(g, lo + off - 1 if lo else min(firsts) + off)
            self.last_sep = max(buf.rfind(d_b), buf.rfind(n_b)) + off
        self._phys_after = self.phys + n
        return ends, delims, tail_delims, np.arange(1, n + 1)

    def _quoted(self, a: np.ndarray, buf: bytes) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
        """A chunk with quotes: separators inside a quoted field do not count (RFC 4180)."""
        self.scan.has_quotes = True
        off = self.offset
        mask = a == self.delim
        mask |= a == self.nl
        seps = np.flatnonzero(mask)
        del mask
        qt = np.flatnonzero(a == self.quote)
        inside = ((np.searchsorted(qt, seps) + self.in_quote) & 1).astype(bool)
        seps = seps[~inside]
        if (len(qt) + self.in_quote) & 1 and len(qt):  # a field opened in this chunk stays open
            opener = (np.arange(len(qt)) + self.in_quote) & 1 == 0
            q = int(qt[np.flatnonzero(opener)[-1]])
            self.quote_line = self.phys + buf.count(self.lb, 0, q) + 1
        self.in_quote = (self.in_quote + len(qt)) & 1
        end_idx = np.flatnonzero(a[seps] == self.nl)
        ends = seps[end_idx]
        self._header_seen(ends)
        if len(seps):
            self._fields(seps + off, self.last_sep)
            self.last_sep = int(seps[-1]) + off
        delims = np.diff(end_idx, prepend=-1) - 1
        tail_delims = int(len(seps) - 1 - end_idx[-1]) if len(ends) else len(seps)
        breaks = np.flatnonzero(a == self.nl)
        self._phys_after = self.phys + len(breaks)
        return ends, delims, tail_delims, np.searchsorted(breaks, ends, side="right")

    def finish(self) -> CsvScan:
        if self.in_quote:
            raise IntervalDataError('a quoted field is never closed (a " without its closing ")',
                                    source=str(self.path), where=f"line {self.quote_line or self.rec_line}",
                                    field="")
        length = self.offset - self.rec_start
        if length > 0:  # a last record without a line break
            if self.rec > self.header_rec:
                blank = length == 1 and self.prev_byte == 13
                if not blank and self.rec_delims != self.header_fields - 1:
                    raise self._count_error(self.rec_delims + 1, self.rec_line)
            self.rec += 1
        self.scan.records = max(0, self.rec - self.header_rec - 1)
        return self.scan


def _line_at(path: Path, offset: int, line_break: bytes = b"\n") -> int:
    """Physical line of a byte offset (error path only: counts line breaks before it)."""
    n = 0
    done = 0
    with path.open("rb") as fh:
        while done < offset:
            buf = fh.read(min(CHUNK, offset - done))
            if not buf:
                break
            n += buf.count(line_break)
            done += len(buf)
    return n + 1


def locate_decode_error(path: Path, encoding: str) -> tuple[int, str] | None:
    """(physical line, reason) of the first byte sequence ``encoding`` cannot decode, or None."""
    dec = codecs.getincrementaldecoder(encoding)(errors="strict")
    line = 1
    with path.open("rb") as fh:
        while True:
            buf = fh.read(1 << 20)
            final = not buf
            try:
                text = dec.decode(buf, final=final)
            except UnicodeDecodeError as exc:
                line += bytes(exc.object[: exc.start]).count(b"\n")
                return line, f"{exc.reason} (byte {bytes(exc.object[exc.start:exc.start + 1])!r})"
            line += text.count("\n")
            if final:
                return None
