"""Green Button IntervalReadings read from the bytes, without building their XML tree.

A utility's ESPI file is almost all ``IntervalReading`` elements, each the same few tags
around four integers. :class:`BlockScanner` sits between the file and the lxml parser of
:mod:`kwhub.plugins.meters.greenbutton`: it finds each ``IntervalBlock``, recognises its
readings with one strict pattern, reads their numbers in bulk with numpy, and hands lxml
the block without them (the readings replaced by as many newlines as they spanned, so
every line number lxml reports stays the file's). The block's start tag gets a marker
attribute; when lxml later meets that block inside an entry, the parser claims the
arrays by the marker (:meth:`BlockScanner.claim`). Everything else (feed, entries,
links, UsagePoint, MeterReading, ReadingType, LocalTimeParameters, the block's own
``interval``) is parsed by lxml as before.

The pattern admits only well-formed XML, so a block it takes cannot hide a syntax error:
per reading ``cost?``, ``ReadingQuality*`` (one ``quality`` each), ``timePeriod``
(``duration`` then ``start``), ``value``, then ``tou``/``cpp``/``consumptionTier``, with
only XML whitespace between tags, no attributes, no comments, CDATA or entities, and
integers of at most 15 digits (the value may be negative). The element names may carry
a namespace prefix (``espi:``, ``ns0:``, none), the same as the block's. A block with
anything else (a comment, a decimal value, another order) is left to lxml untouched, as
is every block of a file in an encoding that is not ASCII-compatible. A marked block that
lxml does not claim where the reader expects one (inside a comment, in an unexpected
place), a reading whose duration is not positive, or more readings waiting to be claimed
than ``max_memory_mb`` allows raise :class:`ScanFallback`: the reader starts again
without the scanner (and lxml's path gives its result or its error).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

WINDOW = 4 << 20  # a block longer than this (bytes) is left to lxml, which drains it as it goes; the
# scanner buffers up to about twice this while it looks for the block's end (a day of 1-minute
# readings is about 0.2 MB)
BLOCK_COST = 4  # what a block held waits for claiming costs beyond its readings, in readings
MAX_LINE = 65_535  # libxml2 keeps element lines up to this value (beyond: see _reported_line)
ASCII_COMPATIBLE = {"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "iso-8859-15",
                    "windows-1252", "cp1252"}
_W = rb"[ \t\r\n]*"
_OPEN = re.compile(rb"<(?:([A-Za-z_][A-Za-z0-9_.-]*):)?IntervalBlock"
                   rb"((?:[ \t\r\n]+[A-Za-z_:][A-Za-z0-9_.:-]*" + _W + rb"=" + _W + rb"(?:\"[^\"<]*\"|'[^'<]*'))*)"
                   + _W + rb">")
_DECL = re.compile(rb"<\?xml[^>]*?encoding[ \t\r\n]*=[ \t\r\n]*[\"']([A-Za-z0-9._-]+)[\"']")
_FIRST_TEXT = re.compile(rb">-?[0-9]")


def scannable(head: bytes) -> bool:
    """True when the document's encoding keeps ASCII bytes as they are (UTF-8, Latin-1, ...)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00", b"\x4c\x6f\xa7\x94")) or head[1:2] == b"\x00":
        return False
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    m = _DECL.match(head)
    return m is None or m.group(1).decode("ascii").lower() in ASCII_COMPATIBLE


def _next_block(buf: bytes, pos: int) -> re.Match[bytes] | None:
    """The next complete IntervalBlock start tag in ``buf[pos:]`` (the name is found first: fast)."""
    i = buf.find(b"IntervalBlock", pos)
    while i >= 0:
        j = buf.rfind(b"<", max(pos, i - 200), i)
        m = _OPEN.match(buf, j) if j >= 0 else None
        if m is not None and (m.end(1) + 1 if m.group(1) is not None else j + 1) == i:
            return m
        i = buf.find(b"IntervalBlock", i + 13)
    return None


@dataclass
class _Grammar:
    """The byte patterns of one namespace prefix."""

    reading: re.Pattern[bytes]  # one IntervalReading; groups: first quality, duration, start, value
    pre: re.Pattern[bytes]  # what may stand between the block's start tag and its first reading
    first: bytes  # a reading's start tag
    close: bytes  # the block's end tag


def _grammar(prefix: bytes) -> _Grammar:
    p = re.escape(prefix + b":") if prefix else b""

    def tag(name: bytes, body: bytes) -> bytes:
        return b"<" + p + name + b">" + body + b"</" + p + name + b">"

    def quality(group: bytes) -> bytes:
        return tag(b"ReadingQuality", _W + tag(b"quality", group) + _W) + _W

    extra = b"(?:" + b"|".join(tag(n, rb"\d{1,9}") for n in (b"tou", b"cpp", b"consumptionTier")) + b")" + _W
    body = (_W + b"(?:" + tag(b"cost", rb"-?\d{1,15}") + _W + b")?"
            + b"(?:" + quality(rb"(\d{1,9})") + b"(?:" + quality(rb"\d{1,9}") + b")*)?"
            + tag(b"timePeriod", _W + tag(b"duration", rb"(\d{1,15})") + _W + tag(b"start", rb"(\d{1,15})") + _W)
            + _W + tag(b"value", rb"(-?[1-9]\d{0,14}|\d{1,15})") + _W + b"(?:" + extra + b")*")
    pre = (b"(?:[ \t\r\n]+|<" + p + b"interval>|</" + p + b"interval>|" + tag(b"duration", rb"\d{1,15}") + b"|"
           + tag(b"start", rb"-?\d{1,15}") + rb"|<!--(?:[^-]|-[^-])*-->)*")
    return _Grammar(re.compile(tag(b"IntervalReading", body)), re.compile(pre),
                    b"<" + prefix + (b":" if prefix else b"") + b"IntervalReading>",
                    b"</" + prefix + (b":" if prefix else b"") + b"IntervalBlock>")


def _reported_line(buf: bytes, at: int, line: int) -> int:
    """The line lxml gives the IntervalReading whose start tag is at ``buf[at]`` on ``line``.

    libxml2 keeps an element's line in 16 bits; from line 65535 on, lxml reports the line
    of the element's first text (here the first number inside the reading).
    """
    if line < MAX_LINE:
        return line
    m = _FIRST_TEXT.search(buf, at)
    return line + buf.count(b"\n", at, m.start()) if m else line


@dataclass
class Scanned:
    """The readings of one block, as arrays in document order (``line``: as lxml's path computes it)."""

    start: np.ndarray
    dur: np.ndarray
    value: np.ndarray
    quality: np.ndarray  # first ReadingQuality code of each reading, -1 where none
    line: np.ndarray


@dataclass
class _Batch:
    """The number texts of the blocks found in one buffer, converted together."""

    keys: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # readings per block
    first_lines: list[int] = field(default_factory=list)
    last_lines: list[int] = field(default_factory=list)
    quality: list[bytes | None] = field(default_factory=list)  # per reading: its first quality code, or None
    dur: list[bytes] = field(default_factory=list)
    start: list[bytes] = field(default_factory=list)
    value: list[bytes] = field(default_factory=list)


class ScanFallback(Exception):
    """The scanner's view and lxml's disagree: read the file again without the scanner."""


class BlockScanner:
    """Cuts the IntervalReadings out of the bytes fed to lxml and reads them into arrays."""

    def __init__(self, max_held: int) -> None:
        self.mark = "kwhubscan" + secrets.token_hex(8)  # no file can guess it
        self.max_held = max_held  # readings (and BLOCK_COST per block) that may wait to be claimed
        self.held = 0
        self.scanned_blocks = 0
        self._blocks: dict[str, Scanned] = {}
        self._grammars: dict[bytes, _Grammar] = {}
        self._mark_attr = b" " + self.mark.encode("ascii") + b'="'
        self._base = 0  # buffer position whose line number is _line
        self._line = 1

    @property
    def unclaimed(self) -> int:
        """Blocks scanned that the parser has not claimed."""
        return len(self._blocks)

    def claim(self, key: str) -> Scanned:
        """The arrays of the block marked ``key`` (each block is claimed once)."""
        try:
            got = self._blocks.pop(key)
        except KeyError:
            raise ScanFallback(f"block {key} claimed twice or never scanned") from None
        self.held -= len(got.start) + BLOCK_COST
        return got

    def pieces(self, read: Callable[[int], bytes], chunk: int) -> Iterator[bytes]:
        """The file's bytes as lxml should see them: one piece per ``chunk`` bytes read."""
        buf = b""
        pos = 0  # everything before pos has been passed on
        eof = False
        out: list[bytes] = []
        batch = _Batch()
        while True:
            step = None if not eof and len(buf) - pos < chunk else self._step(buf, pos, eof, batch)
            if step is None:  # more bytes first (a block longer than WINDOW is never waited for)
                if out:
                    self._convert(batch)
                    batch = _Batch()
                    yield b"".join(out)  # lxml claims the blocks scanned so far
                    out = []
                    if self.held > self.max_held:
                        raise ScanFallback("too many scanned readings wait to be claimed")
                more = read(max(chunk, len(buf) - pos))
                if more:
                    self._line += buf.count(b"\n", self._base, pos)
                    buf, pos, self._base = buf[pos:] + more, 0, 0
                else:
                    eof = True
                continue
            pos, parts, done = step
            out += parts
            if done:
                self._convert(batch)
                yield b"".join(out)
                return

    def _line_at(self, buf: bytes, at: int) -> int:
        """Line number of ``buf[at]`` (positions asked in increasing order)."""
        self._line += buf.count(b"\n", self._base, at)
        self._base = at
        return self._line

    def _step(self, buf: bytes, pos: int, eof: bool, batch: _Batch) -> tuple[int, list[bytes], bool] | None:
        """Pass on what lies before the next block's readings (and cut them out); None: read more."""
        more = not eof and len(buf) - pos <= WINDOW  # whether waiting for more bytes is allowed
        m = _next_block(buf, pos)
        if m is None:
            if eof:
                return len(buf), [buf[pos:]], True
            cut = max(pos, buf.rfind(b"<", pos))  # a start tag may be cut at the end of the buffer
            if cut > pos:
                return cut, [buf[pos:cut]], False
            return None if more else (len(buf), [buf[pos:]], False)
        prefix = m.group(1) or b""
        g = self._grammars.get(prefix)
        if g is None:
            g = self._grammars[prefix] = _grammar(prefix)
        close = buf.find(g.close, m.end())
        if close < 0 and more:
            return None
        a = g.pre.match(buf, m.end(), max(close, m.end())).end()
        parts = g.reading.split(buf[a:close]) if close >= 0 and buf.startswith(g.first, a) else [b"-"]
        # the pieces between the readings are parts[0::5]: nothing but whitespace, else lxml reads the block
        if len(parts) < 6 or b"".join(parts[0::5]).translate(None, b" \t\r\n"):
            return m.end(), [buf[pos:m.end()]], False
        first = self._line_at(buf, a)
        last_at = buf.rfind(g.first, a, close)
        batch.first_lines.append(_reported_line(buf, a, first))
        batch.last_lines.append(_reported_line(buf, last_at, self._line_at(buf, last_at)))
        batch.sizes.append(len(parts) // 5)
        batch.quality += parts[1::5]
        batch.dur += parts[2::5]
        batch.start += parts[3::5]
        batch.value += parts[4::5]
        key = str(self.scanned_blocks)
        self.scanned_blocks += 1
        batch.keys.append(key)
        name_end = m.end(1) + 14 if m.group(1) is not None else m.start() + 14  # after "<prefix:IntervalBlock"
        end = close + len(g.close)
        return end, [buf[pos:name_end], self._mark_attr, key.encode("ascii"), b'"', buf[name_end:a],
                     b"\n" * (self._line_at(buf, close) - first), g.close], False

    def _convert(self, batch: _Batch) -> None:
        """Turn the number texts of a batch of blocks into each block's arrays."""
        if not batch.keys:
            return
        n = len(batch.dur)
        dur, start, value = (np.fromstring(b" ".join(texts), dtype=np.int64, sep=" ")
                             for texts in (batch.dur, batch.start, batch.value))
        if not len(dur) == len(start) == len(value) == n:
            raise ScanFallback("the numbers of the readings could not be read")
        if (dur <= 0).any():
            raise ScanFallback("a reading without a positive duration")  # lxml's path names it
        quality = np.full(n, -1, dtype=np.int64)
        if batch.quality.count(None) != n:
            texts = np.array(batch.quality, dtype=object)
            has = np.not_equal(texts, None)
            quality[has] = np.fromstring(b" ".join(texts[has].tolist()), dtype=np.int64, sep=" ")
        sizes = np.array(batch.sizes, dtype=np.int64)
        bounds = np.concatenate(([0], np.cumsum(sizes)))
        block = np.repeat(np.arange(len(sizes)), sizes)
        k = np.arange(n) - bounds[block]
        first = np.array(batch.first_lines, dtype=np.int64)
        span = np.array(batch.last_lines, dtype=np.int64) - first
        lines = first[block] + (k * span[block]) // np.maximum(sizes - 1, 1)[block]
        value_f = value.astype(np.float64)
        for key, b0, b1 in zip(batch.keys, bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            self._blocks[key] = Scanned(start[b0:b1], dur[b0:b1], value_f[b0:b1], quality[b0:b1], lines[b0:b1])
        self.held += n + BLOCK_COST * len(batch.keys)
