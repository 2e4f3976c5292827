"""Green Button (NAESB ESPI) XML files, streamed with bounded memory.

The file is read in chunks. The byte scanner of :mod:`.greenbutton_scan` reads the
``IntervalReading`` elements of each ``IntervalBlock`` it recognises straight from the
bytes into arrays; lxml's pull parser reads everything else (feed, entries, links,
UsagePoint, MeterReading, ReadingType, LocalTimeParameters, blocks the scanner leaves to
it), reduces the readings it sees to four numbers per reading as each entry closes, and
finished entries are removed from the tree, so memory does not grow with the file. When
the two disagree, or the file is wrong in any way, it is read again by lxml alone, which
gives the result or the error (naming the line and element) it always gave. Parsing is
safe: entities are not resolved, no network, no DTD, and a document with a DOCTYPE is
refused before parsing starts.

What comes out:

* interval readings (durations of 1..60 minutes, e.g. 300/900/3600 s) become
  :class:`~kwhub.core.intervals.ChannelSeries` in kWh, deduplicated across overlapping blocks;
* readings of any other duration (daily 82800/86400/90000 s on DST days, billing periods)
  are kept as what they are in ``batch.meta["period_readings"]``;
* ``ReadingType`` (uom, powerOfTenMultiplier, intervalLength, flowDirection, ...),
  ``LocalTimeParameters`` and ``UsagePoint`` metadata go to ``batch.meta``.

Channel ids: ``channel`` (or ``--channel``) for everything, else ``channel_map`` looked up
by MeterReading href, by the derived id, or by UsagePoint id; the derived id is
``<channel_prefix>.<usage point id>`` (plus ``.<meter reading id>`` when a usage point has
several, plus ``received_suffix`` for flowDirection 19).
"""

from __future__ import annotations

import codecs
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

import numpy as np
from lxml import etree

from kwhub.core.adapters import AdapterConfig, CheckResult, MeterAdapter
from kwhub.core.hookspecs import hookimpl
from kwhub.core.input_limits import (
    ABSURD_KWH,
    DEFAULT_LIMITS,
    InputLimits,
    check_file,
    excerpt,
    instant_text,
    size_text,
)
from kwhub.core.intervals import (
    ALLOWED_INTERVAL_MINUTES,
    MAX_CHANNEL_ID,
    ChannelSeries,
    IntervalBatch,
    IntervalDataError,
    PeriodSeries,
)
from kwhub.core.quality import Quality
from kwhub.plugins.meters.greenbutton_scan import BlockScanner, ScanFallback, scannable

TYPE_ID = "meters.greenbutton"
ESPI = "http://naesb.org/espi"
ATOM = "http://www.w3.org/2005/Atom"

_E = f"{{{ESPI}}}"
_A = f"{{{ATOM}}}"
T_ENTRY = _A + "entry"
T_FEED = _A + "feed"
T_LINK = _A + "link"
T_READING = _E + "IntervalReading"
T_BLOCK = _E + "IntervalBlock"
T_RT = _E + "ReadingType"
T_LTP = _E + "LocalTimeParameters"
T_UP = _E + "UsagePoint"
T_MR = _E + "MeterReading"
P_START = f"{_E}timePeriod/{_E}start"
P_DUR = f"{_E}timePeriod/{_E}duration"
P_VALUE = _E + "value"
P_QUALITY = f"{_E}ReadingQuality/{_E}quality"

# ESPI QualityOfReading -> kwhub Quality.
#  0 valid, 7 manually edited, 8 estimated (reference day), 9 estimated (linear
#  interpolation), 10 questionable, 11 derived, 12 projected (forecast), 13 mixed,
#  14 raw, 15 normalized for weather, 16 other, 17 validated, 18 verified,
#  19 revenue-quality.
ESPI_QUALITY: dict[int, Quality] = {
    0: Quality.VALID, 7: Quality.EDITED, 8: Quality.ESTIMATED, 9: Quality.ESTIMATED,
    10: Quality.SUSPECT, 11: Quality.VALID, 12: Quality.ESTIMATED, 13: Quality.ESTIMATED,
    14: Quality.VALID, 15: Quality.EDITED, 16: Quality.SUSPECT, 17: Quality.VALID,
    18: Quality.VALID, 19: Quality.VALID,
}
# ESPI UnitSymbolKind codes that become kWh: (factor to Wh-or-W, is_power)
ENERGY_UOM: dict[int, tuple[float, bool]] = {72: (1.0, False), 38: (1.0, True)}
UOM_NAMES: dict[int, str] = {
    72: "Wh", 38: "W", 73: "VArh", 63: "VAr", 71: "VAh", 61: "VA", 42: "m3 (gas volume)", 169: "therm",
    119: "ft3", 128: "US gal", 29: "V", 5: "A", 33: "Hz", 0: "none",
}
FLOW_FORWARD, FLOW_REVERSE = 1, 19
_FLUSH_EVERY = 65_536  # readings buffered as strings before conversion to arrays
BYTES_PER_READING = 200  # peak memory per reading held (arrays, their concatenation and sorting)
MEMORY_PER_BYTE = 0.0  # streaming: memory grows with the readings and is checked as they come
POWER_OF_TEN = range(-12, 13)  # ESPI UnitMultiplierKind: pico (-12) to tera (12)
CUMULATIVE = {1, 2, 3, 9}  # accumulationBehaviour: bulkQuantity, continuousCumulative, cumulative, summation
MAX_EPOCH_TEXT = 12  # digits of a plausible epoch or duration in seconds
_QNONE = -1
_I64_MAX = int(np.iinfo(np.int64).max)


class GreenButtonConfig(AdapterConfig):
    """Settings of a ``meters.greenbutton`` instance."""

    channel: str | None = None
    channel_map: dict[str, str] = {}
    channel_prefix: str = "gb"
    received_suffix: str = ".received"
    received_mode: Literal["channel", "negate"] = "channel"  # flowDirection 19: own channel or sign
    default_uom: int = 72  # when the file carries no ReadingType for a MeterReading
    default_power_of_ten: int = 0
    unsupported_uom: Literal["error", "skip"] = "error"
    # one ReadingType href given twice with different uom, multiplier, flow, accumulation or
    # default quality: an error, unless the operator says which of the two holds
    reading_type_conflicts: Literal["error", "first", "last"] = "error"


@dataclass
class _Chunks:
    """Readings of one MeterReading, as array chunks in document order."""

    start: list[np.ndarray] = field(default_factory=list)
    dur: list[np.ndarray] = field(default_factory=list)
    value: list[np.ndarray] = field(default_factory=list)
    quality: list[np.ndarray] = field(default_factory=list)
    line: list[np.ndarray] = field(default_factory=list)

    def cat(self) -> tuple[np.ndarray, ...]:
        def c(parts: list[np.ndarray], dt: Any) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dt)

        return (c(self.start, np.int64), c(self.dur, np.int64), c(self.value, np.float64),
                c(self.quality, np.int64), c(self.line, np.int64))


def _localname(tag: Any) -> str:
    """``{ns}name`` -> ``name`` (plain string work: a broken document can leave tags lxml refuses)."""
    if not isinstance(tag, str):
        return str(tag)
    name = tag.rsplit("}", 1)[-1]
    return name.rsplit(":", 1)[-1] or name


def _last(href: str) -> str:
    return href.rstrip("/").rsplit("/", 1)[-1]


_PROLOG = re.compile(r"\s+|<\?.*?\?>|<!--.*?-->", re.S)
_ROOT_TAG = re.compile(r"<(?:[^\s/>:!?]+:)?([^\s/>:!?]+)[\s/>]")


def refuse_doctype(path: Path, fh: IO[bytes], max_bytes: int = DEFAULT_LIMITS.max_header_bytes) -> str:
    """Raise if the document's prolog declares a DOCTYPE (entities, external DTDs).

    Reads only as far as the prolog goes (XML declaration, comments, PIs, whitespace), and
    at most ``max_bytes``: a longer prolog is an error naming the limit. Returns the local
    name of the root element when the prolog shows it, else "".
    """
    data = b""
    while True:
        more = fh.read(65_536)
        data += more
        text = _decode_head(data)
        pos = 0
        while True:
            m = _PROLOG.match(text, pos)
            if not m or m.end() == pos:
                break
            pos = m.end()
        rest = text[pos:]
        if rest.startswith(("<!DOCTYPE", "<!doctype")):
            line = text.count("\n", 0, pos) + 1
            raise IntervalDataError("XML with a DOCTYPE is refused (DTDs and entity declarations are not allowed)",
                                    source=str(path), where=f"line {line}, element <!DOCTYPE>", field="DOCTYPE")
        unfinished = rest == "" or (rest.startswith(("<!--", "<?")) or "<!DOCTYPE".startswith(rest[:9]))
        if (not more or not unfinished) and pos <= max_bytes:
            m = _ROOT_TAG.match(rest)
            return m.group(1) if m else ""
        if len(data) > max_bytes or pos > max_bytes:
            line = text.count("\n", 0, pos) + 1
            raise IntervalDataError(
                f"the XML prolog (declaration, comments and processing instructions before the root element) is "
                f"longer than the limit of {size_text(max_bytes)} (ingest.max_header_kb in kwhub.toml); it starts with "
                f"{excerpt(text[:200], whole=False)}", source=str(path), where=f"line {line}", field="xml")


def _decode_head(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        return head.decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace").lstrip("\ufeff")


@dataclass
class _ParseState:
    """What a streaming pass collected."""

    readings: dict[str, _Chunks] = field(default_factory=dict)  # meter reading href -> readings
    reading_types: dict[str, dict[str, str]] = field(default_factory=dict)  # RT href -> fields
    reading_type_entries: list[dict[str, str]] = field(default_factory=list)  # every ReadingType seen
    mr_reading_type: dict[str, str] = field(default_factory=dict)  # MR href -> RT href
    usage_points: dict[str, dict[str, str]] = field(default_factory=dict)
    local_time: list[dict[str, str]] = field(default_factory=list)
    blocks: int = 0
    entries: int = 0
    source: str = ""
    limits: InputLimits = field(default_factory=InputLimits)
    rt_where: dict[str, tuple[str, dict[str, int]]] = field(default_factory=dict)  # RT href -> (path, field lines)
    rt_variants: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # RT href -> every distinct content
    rt_conflicts: dict[str, IntervalDataError] = field(default_factory=dict)  # RT href -> why it is ambiguous
    espi_resources: int = 0  # ESPI resources recognised (any kind)
    ignored: dict[str, int] = field(default_factory=dict)  # ESPI resources that hold no readings, by name
    foreign: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (ns, name) -> (count, line)
    meta_bytes: int = 0  # volume of metadata kept (ReadingType, UsagePoint, ... and meter reading keys)
    n_readings: int = 0
    scanner: BlockScanner | None = None  # reads the IntervalReadings from the bytes (lxml sees the rest)

    def add_metadata(self, n_bytes: int, line: int, what: str) -> None:
        """Count kept metadata against ``max_metadata_mb``."""
        self.meta_bytes += n_bytes
        if self.meta_bytes > self.limits.max_metadata_bytes:
            raise IntervalDataError(
                f"the file holds more than {size_text(self.limits.max_metadata_bytes)} of metadata "
                f"({what} and the like; ingest.max_metadata_mb in kwhub.toml)", source=self.source,
                where=f"line {line}", field="xml")

    def add_readings(self, n: int, line: int) -> None:
        """Count buffered readings against ``max_memory_mb``."""
        self.n_readings += n
        if self.n_readings * BYTES_PER_READING > self.limits.max_memory_bytes:
            raise IntervalDataError(
                f"more than {self.n_readings:,} readings: holding them needs more than the limit of "
                f"{size_text(self.limits.max_memory_bytes)} (ingest.max_memory_mb in kwhub.toml); split the file",
                source=self.source, where=f"line {line}", field="IntervalReading")


def _fields(el: Any) -> dict[str, str]:
    """Direct simple children of an element as localname -> text."""
    return _fields_lines(el)[0]


def _fields_lines(el: Any) -> tuple[dict[str, str], dict[str, int]]:
    """Direct simple children as localname -> text, and localname -> source line."""
    out: dict[str, str] = {}
    lines: dict[str, int] = {}
    for child in el:
        if isinstance(child.tag, str) and len(child) == 0 and child.text is not None:
            name = _localname(child.tag)
            out[name] = child.text.strip()
            lines[name] = int(child.sourceline or 0)
    return out, lines


def _nested(el: Any) -> dict[str, str]:
    """Simple descendants as dotted path -> text (UsagePoint metadata)."""
    out: dict[str, str] = {}
    for child in el.iter():
        if child is el or not isinstance(child.tag, str) or len(child):
            continue
        path = [_localname(child.tag)]
        p = child.getparent()
        while p is not None and p is not el:
            path.append(_localname(p.tag))
            p = p.getparent()
        if child.text and child.text.strip():
            out[".".join(reversed(path))] = child.text.strip()
    return out


SCAN = True  # IntervalReadings read by the byte scanner (greenbutton_scan); False: lxml reads everything


def _at_most(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    """``pieces`` fed to lxml in slices of at most ``size`` bytes. A block the scanner leaves
    to lxml (longer than ``greenbutton_scan.WINDOW``) would otherwise reach libxml2 as one
    piece, and libxml2's copies of it, not the chunk size, would bound the reader's memory."""
    for piece in pieces:
        if len(piece) <= size:
            yield piece
            continue
        view = memoryview(piece)
        for at in range(0, len(piece), size):
            yield bytes(view[at:at + size])


def stream_parse(path: Path, source: str | None = None, limits: InputLimits = DEFAULT_LIMITS) -> _ParseState:
    """One streaming pass over an ESPI file; memory stays flat in the file size.

    The readings of the IntervalBlocks the byte scanner recognises are read from the
    bytes; lxml parses the rest. When the scanner's view and lxml's disagree, or the
    file turns out to be wrong in any way, the file is read again by lxml alone, which
    gives the result or the error (naming the line and element) it always has.
    """
    source = source or str(path)
    with path.open("rb") as fh:
        root_name = refuse_doctype(path, fh, limits.max_header_bytes)
        fh.seek(0)
        # an Atom feed (or a single entry) is followed by its entries alone; anything else
        # (a bare ESPI resource) also reports IntervalBlock starts for the memory guard
        atom = root_name in ("feed", "entry")
        head = fh.read(1024)
        fh.seek(0)
        if SCAN and scannable(head):
            scanner = BlockScanner(max(limits.max_memory_bytes // BYTES_PER_READING, 1))
            try:
                st = _parse(fh, source, atom=atom, limits=limits, scanner=scanner)
                if not scanner.unclaimed:
                    return st
            except (IntervalDataError, ScanFallback):
                pass
            fh.seek(0)
        return _parse(fh, source, atom=atom, limits=limits)


_NS = {"e": ESPI, "a": ATOM}


def _xp(expr: str) -> etree.XPath:
    return etree.XPath(expr, namespaces=_NS, smart_strings=False)


_IR = "e:IntervalReading"
X_N = _xp(f"count({_IR})")
X_NQ = _xp(f"count({_IR}[e:ReadingQuality/e:quality])")
T_CONTENT = _A + "content"
T_RQ = _E + "ReadingQuality"
T_QUALITY = _E + "quality"
T_INTERVAL = _E + "interval"
T_START = _E + "start"
T_DURATION = _E + "duration"
T_VALUE = _E + "value"
_GUARD_BYTES = 8 << 20  # an entry larger than this is drained while it is still open
_CHUNK = 1 << 18
_SCAN_CHUNK = 1 << 20  # bytes the scanner reads at a time (the readings it cuts out shrink them ~20x for lxml)
_MR_OF_BLOCK = re.compile(r"/IntervalBlock(/[^/]*)?/?$")


def _extract(block: Any, into: _Chunks, source: str, keep_last: bool = False) -> None:
    """Turn the (complete) IntervalReadings of ``block`` into arrays, then drop them.

    Each field is gathered for the whole block by one C-level tree walk (no per-reading
    Python objects besides the text) and parsed to numbers in C; each must occur once per
    reading, else the first reading that breaks the rule is named with its line (line
    numbers are otherwise only taken from the block's first and last reading).
    """
    if keep_last:
        readings = list(block.iterchildren(T_READING))
        if len(readings) < 2:
            return
        holder = etree.Element("_")  # move complete readings into a scratch parent
        for r in readings[:-1]:
            holder.append(r)
        block = holder
    for other in list(block.iterchildren(T_INTERVAL)):
        block.remove(other)  # the block's own interval{start,duration}
    starts = [el.text for el in block.iter(T_START)]
    n = len(starts)
    n_children = len(block)
    if n != n_children:
        n_readings = int(X_N(block))
        if n == 0 and n_readings == 0:
            return
        if n != n_readings:
            _raise_bad_reading(block, source)
    durs = [el.text for el in block.iter(T_DURATION)]
    values = [el.text for el in block.iter(T_VALUE)]
    if not (len(durs) == len(values) == n):
        _raise_bad_reading(block, source)
    start_a = _numbers(starts, np.int64, n)
    dur_a = _numbers(durs, np.int64, n)
    value_a = _numbers(values, np.float64, n)
    if start_a is None or dur_a is None or value_a is None:
        _raise_bad_reading(block, source)
    if not np.isfinite(value_a.sum()):  # NaN or infinity somewhere: never a silent gap
        i = int(np.argmax(~np.isfinite(value_a)))
        _raise_at_reading(block, i, source, "value", f"IntervalReading value {excerpt(values[i] or '')} is not a "
                          "finite number; a reading that has no value is left out of the block")
    if (dur_a <= 0).any():
        i = int(np.argmax(dur_a <= 0))
        _raise_at_reading(block, i, source, "timePeriod/duration",
                          f"IntervalReading duration {int(dur_a[i])} s is not positive")
    qels = list(block.iter(T_QUALITY))  # usually none or a few flagged readings
    if not qels:
        quality: np.ndarray | None = np.full(n, _QNONE, dtype=np.int64)
    else:
        quality = _quality_sparse(block, qels, n, n_children)
        if quality is None:
            quality = _quality_per_reading(block, [el.text for el in qels], n)
        if quality is None:
            _raise_bad_reading(block, source)
    first = block[0] if n_children else None
    last = block[-1] if n_children else None
    first_line = int(first.sourceline or 0) if first is not None and first.tag == T_READING \
        else _first_reading_line(block)
    last_line = int(last.sourceline or first_line) if last is not None and last.tag == T_READING \
        else _last_reading_line(block, first_line)
    into.start.append(start_a)
    into.dur.append(dur_a)
    into.value.append(value_a)
    into.quality.append(quality)
    into.line.append(_reading_lines(n, first_line, last_line))
    if keep_last:
        holder.clear()  # otherwise the caller clears the whole entry next


def _quality_sparse(block: Any, qels: list[Any], n: int, n_children: int) -> np.ndarray | None:
    """First quality code of each flagged reading, placed by the reading's position.

    Only for blocks whose children are the readings (one start each, as ``_extract``
    checked) and where few readings are flagged (``block.index`` is linear); None sends
    the caller to the general linear pass.
    """
    if len(qels) == n and int(X_N(block)) == n and int(X_NQ(block)) == n:
        return _numbers([el.text for el in qels], np.int64, n)  # one code per reading, in order
    if len(qels) * 8 > n or n != n_children:
        return None
    codes = _numbers([el.text for el in qels], np.int64, len(qels))
    if codes is None:
        return None
    out = np.full(n, _QNONE, dtype=np.int64)
    prev = -1
    for q, code in zip(qels, codes.tolist(), strict=True):
        rq = q.getparent()
        r = rq.getparent() if rq is not None else None
        if r is None or rq.tag != T_RQ or r.tag != T_READING or r.getparent() is not block:
            return None
        i = block.index(r)
        if i != prev:  # the first ReadingQuality/quality of a reading counts
            out[i] = code
            prev = i
    return out


def _quality_per_reading(block: Any, qtext: list[str], n: int) -> np.ndarray | None:
    """First ReadingQuality code of each reading (-1 where a reading has none)."""
    codes = _numbers(qtext, np.int64, len(qtext))
    if codes is None:
        return None
    is_reading = np.array([el.tag == T_READING for el in block.iter(T_READING, T_QUALITY)], dtype=bool)
    owner = np.cumsum(is_reading)[~is_reading] - 1  # reading index of each quality element
    if len(owner) != len(codes) or (len(owner) and owner[0] < 0) or int(is_reading.sum()) != n:
        return None
    out = np.full(n, _QNONE, dtype=np.int64)
    first = np.ones(len(owner), dtype=bool)
    first[1:] = owner[1:] != owner[:-1]
    out[owner[first]] = codes[first]
    return out


def _numbers(texts: list[str], dtype: Any, n: int) -> np.ndarray | None:
    """Parse number texts in C; None when any is not a number."""
    if len(texts) != n:
        return None
    try:
        joined = " ".join(texts)
    except TypeError:  # an empty element (text None)
        return None
    if joined.replace(" ", "").isdigit() and joined.isascii():
        # plain non-negative integers (the usual case, values included): nothing for
        # fromstring to trip over, and its integer parsing is several times faster than
        # its float parsing; integers convert to float64 exactly as strtod would round them
        out = np.fromstring(joined, dtype=np.int64, sep=" ")
        if len(out) != n:
            return None
        if dtype is np.int64:
            return out
        if not n or int(out.max()) < _I64_MAX:  # not saturated by a 19+ digit value
            return out.astype(np.float64)
    if dtype is np.int64 and ("." in joined or "e" in joined or "E" in joined):
        arr = np.array(texts)
        try:
            f = arr.astype(np.float64)
        except ValueError:
            return None
        return f.astype(np.int64) if np.array_equal(f, np.round(f)) else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            out = np.fromstring(joined, dtype=dtype, sep=" ")
    except (ValueError, DeprecationWarning):
        return None
    return out if len(out) == n else None


def _raise_at_reading(block: Any, i: int, source: str, fld: str, message: str) -> None:
    """Raise for the ``i``-th IntervalReading of ``block`` (error path: finds its element and line)."""
    r = next((x for k, x in enumerate(block.iter(T_READING)) if k == i), None)
    line = int(r.sourceline or 0) if r is not None else int(block.sourceline or 0)
    raise IntervalDataError(message, source=source, where=f"line {line}, element <IntervalReading>", field=fld)


def _first_reading_line(block: Any) -> int:
    first = next(block.iterchildren(T_READING), None)
    return int(first.sourceline or 0) if first is not None else 0


def _last_reading_line(block: Any, first_line: int) -> int:
    last = next(block.iterchildren(T_READING, reversed=True), None)
    return int(last.sourceline or first_line) if last is not None else first_line


def _reading_lines(n: int, first_line: int, last_line: int) -> np.ndarray:
    """Line of each reading: exact when readings are one per line or evenly spaced."""
    if n == 1:
        return np.array([first_line], dtype=np.int64)
    return first_line + (np.arange(n, dtype=np.int64) * (last_line - first_line)) // (n - 1)


def _raise_bad_reading(block: Any, source: str) -> None:
    """Error path: find the first reading with a missing/duplicated/non-numeric field."""
    checks = (("timePeriod/start", f"{_E}timePeriod/{_E}start", int),
              ("timePeriod/duration", f"{_E}timePeriod/{_E}duration", int),
              ("value", _E + "value", float))
    for r in block.iterchildren(T_READING):
        for fld, path, conv in checks:
            found = r.findall(path)
            problem = ""
            if len(found) != 1:
                problem = "missing" if not found else f"appears {len(found)} times"
            else:
                text = (found[0].text or "").strip()
                try:
                    number = conv(text)
                    if conv is int and len(text.lstrip("+-")) > MAX_EPOCH_TEXT:
                        problem = f"{excerpt(text)} is not a plausible number of seconds"
                    elif conv is int and fld == "timePeriod/duration" and number <= 0:
                        problem = f"{number} s is not positive"
                except ValueError:
                    problem = f"{excerpt(text)} is not a number"
            if problem:
                raise IntervalDataError(f"IntervalReading {fld}: {problem}", source=source,
                                        where=f"line {r.sourceline}, element <IntervalReading>", field=fld)
        for q in r.iterfind(P_QUALITY):
            try:
                int((q.text or "").strip())
            except ValueError:
                raise IntervalDataError(f"ReadingQuality quality {excerpt(q.text or '')} is not a number",
                                        source=source,
                                        where=f"line {q.sourceline}, element <quality>",
                                        field="ReadingQuality/quality") from None
    raise IntervalDataError("IntervalBlock readings could not be read", source=source,
                            where=f"line {block.sourceline}, element <IntervalBlock>", field="IntervalReading")


def _parse(fh: IO[bytes], source: str, atom: bool = False, limits: InputLimits = DEFAULT_LIMITS,
           scanner: BlockScanner | None = None) -> _ParseState:
    """Stream the document; ``atom`` when its root is an Atom feed/entry (faster events).

    With a ``scanner``, lxml is fed the document as the scanner passes it on (the readings
    it read cut out) and the blocks it marked are claimed from it.
    """
    st = _ParseState(source=source, limits=limits, scanner=scanner)
    pending = _Chunks()  # readings of the entry being read (drained early when it is huge)
    # Events only for entries (plus IntervalBlock starts for bare resources): every extra
    # tag in the filter costs libxml2 callbacks on each element of the file.
    parser = etree.XMLPullParser(
        events=("start", "end"), tag=T_ENTRY if atom else (T_ENTRY, T_BLOCK), resolve_entities=False,
        no_network=True, load_dtd=False, huge_tree=False, remove_comments=True, remove_pis=True,
        dtd_validation=False, remove_blank_text=True,
    )
    root: Any = None
    open_el: Any = None  # the entry (or bare IntervalBlock) being read
    since_entry = 0
    chunks = (_at_most(scanner.pieces(fh.read, max(_CHUNK, _SCAN_CHUNK)), _CHUNK) if scanner is not None
              else iter(lambda: fh.read(_CHUNK), b""))
    try:
        for chunk in chunks:
            parser.feed(chunk)
            since_entry += len(chunk)
            for event, el in parser.read_events():
                if root is None:
                    tree = el.getroottree()
                    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
                        raise IntervalDataError("XML with a DOCTYPE is refused", source=source,
                                                where="line 1, element <!DOCTYPE>", field="DOCTYPE")
                    root = tree.getroot()
                if event == "start":
                    open_el = el
                    continue
                if el.tag != T_ENTRY:  # end of an IntervalBlock (bare resource documents)
                    st.blocks += 1
                    open_el = None
                    continue
                # end of an entry
                open_el = None
                st.entries += 1
                since_entry = 0
                _finish_entry(st, el, pending, source, count_blocks=atom)
                if pending.line:
                    pending = _Chunks()
                el.clear()
                parent = el.getparent()
                if parent is not None:
                    while el.getprevious() is not None:
                        del parent[0]
            if since_entry > _GUARD_BYTES and open_el is not None:
                block = _open_block(open_el)
                if block is not None and not _is_scanned(st, block):
                    held = sum(len(x) for x in pending.line)
                    _extract(block, pending, source, keep_last=True)
                    st.add_readings(sum(len(x) for x in pending.line) - held, int(block.sourceline or 0))
                since_entry = 0
        closed = parser.close()
        if closed is not None:
            info = closed.getroottree().docinfo
            if info.doctype or info.internalDTD is not None:
                raise IntervalDataError("XML with a DOCTYPE is refused", source=source,
                                        where="line 1, element <!DOCTYPE>", field="DOCTYPE")
            root = root if root is not None else closed
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, root, parser.feed_error_log, source) from None
    if st.entries == 0 and root is None:
        root = getattr(parser, "root", None)
    if st.entries == 0 and root is not None:
        # a bare resource document (no Atom entry around it)
        if atom:
            st.blocks += sum(1 for _ in root.iter(T_BLOCK))
        _collect_resources(st, [root], "", [])
        if root.tag == T_BLOCK and not _claim(st, root, pending):
            _extract(root, pending, source)
        st.add_readings(sum(len(x) for x in pending.line), int(root.sourceline or 0))
        _append(st.readings.setdefault("", _Chunks()), pending)
    return st


def _is_scanned(st: _ParseState, block: Any) -> bool:
    """Whether the scanner read the readings of ``block`` (lxml never saw them)."""
    return st.scanner is not None and block.get(st.scanner.mark) is not None


def _claim(st: _ParseState, block: Any, into: _Chunks) -> bool:
    """Take the scanner's arrays of ``block`` into ``into``; False when lxml holds its readings."""
    if st.scanner is None:
        return False
    key = block.get(st.scanner.mark)
    if key is None:
        return False
    got = st.scanner.claim(key)
    into.start.append(got.start)
    into.dur.append(got.dur)
    into.value.append(got.value)
    into.quality.append(got.quality)
    into.line.append(got.line)
    return True


def _open_block(el: Any) -> Any:
    """The innermost IntervalBlock on the path of last children below ``el`` (or None)."""
    block = el if el.tag == T_BLOCK else None
    while len(el):
        el = el[-1]
        if el.tag == T_BLOCK:
            block = el
    return block


def _append(into: _Chunks, chunks: _Chunks) -> None:
    into.start += chunks.start
    into.dur += chunks.dur
    into.value += chunks.value
    into.quality += chunks.quality
    into.line += chunks.line


_RESOURCES = {T_MR, T_RT, T_LTP, T_UP, T_BLOCK}


def _collect_resources(st: _ParseState, resources: list[Any], me: str, related: list[str],
                       entry_path: str = "") -> None:
    for res in resources:
        tag = res.tag
        line = int(res.sourceline or 0)
        if not tag.startswith(_E):
            if tag in (T_FEED, T_ENTRY):  # an Atom feed without entries: nothing foreign, nothing at all
                continue
            ns = tag[1:].split("}", 1)[0] if tag.startswith("{") else ""
            key = (ns, _localname(tag))
            n, first = st.foreign.get(key, (0, line))
            st.foreign[key] = (n + 1, first)
            continue
        st.espi_resources += 1
        if tag not in _RESOURCES:
            name = _localname(tag)
            st.ignored[name] = st.ignored.get(name, 0) + 1
            continue
        path = f"{entry_path}/{_localname(tag)}" if entry_path else _localname(tag)
        if tag == T_MR:
            for h in related:
                if "/ReadingType/" in h:
                    st.mr_reading_type[me] = h
                    st.add_metadata(len(me) + len(h) + 100, line, "MeterReading links")
        elif tag == T_RT:
            fields, lines = _fields_lines(res)
            key = me or f"#rt{len(st.reading_types)}"
            st.add_metadata(len(key) + sum(len(k) + len(v) + 50 for k, v in fields.items()), line, "ReadingType")
            variants = st.rt_variants.setdefault(key, [])
            if variants and fields not in variants and key not in st.rt_conflicts:
                st.rt_conflicts[key] = _conflicting_reading_type(st, key, variants[0], fields, lines, path)
            if fields not in variants:
                variants.append(fields)
            st.reading_types.setdefault(key, fields)
            st.rt_where.setdefault(key, (path, lines))
            st.reading_type_entries.append({"href": me, **fields})
        elif tag == T_LTP:
            fields = _fields(res)
            st.add_metadata(sum(len(k) + len(v) + 50 for k, v in fields.items()), line, "LocalTimeParameters")
            st.local_time.append(fields)
        elif tag == T_UP:
            nested = _nested(res)
            st.add_metadata(len(me) + sum(len(k) + len(v) + 50 for k, v in nested.items()), line, "UsagePoint")
            st.usage_points[me or f"#up{len(st.usage_points)}"] = nested


CONVERTING = ("uom", "powerOfTenMultiplier", "flowDirection", "accumulationBehaviour", "defaultQuality")


def _conflicting_reading_type(st: _ParseState, key: str, before: dict[str, str], now: dict[str, str],
                              lines: dict[str, int], path: str) -> IntervalDataError:
    """The error for one ReadingType href given twice with different content (raised when readings use it)."""
    names = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    name = next((n for n in CONVERTING if n in names), names[0])
    first_lines = st.rt_where.get(key, ("", {}))[1]
    return IntervalDataError(
        f"ReadingType {excerpt(key, 80)} appears twice with different {name}: {excerpt(before.get(name, '(none)'))} "
        f"(line {first_lines.get(name, '?')}) and {excerpt(now.get(name, '(none)'))}; its readings cannot be "
        "converted without choosing one. Fix the file, or set reading_type_conflicts = 'first' or 'last' if you "
        "know which one holds", source=st.source, where=f"line {lines.get(name, 0)}, element <{path}/{name}>",
        field=f"ReadingType/{name}")


def _finish_entry(st: _ParseState, el: Any, pending: _Chunks, source: str, count_blocks: bool = True) -> None:
    me = up = ""
    related: list[str] = []
    contents: list[Any] = []
    for child in el:
        tag = child.tag
        if tag == T_LINK:
            rel = child.get("rel", "")
            if rel == "self":
                me = me or child.get("href", "")
            elif rel == "up":
                up = up or child.get("href", "")
            elif rel == "related":
                related.append(child.get("href", ""))
        elif tag == T_CONTENT:
            contents.append(child)
    resources = [c for c in contents[0] if isinstance(c.tag, str)] if contents else []
    _collect_resources(st, resources, me, related, f"feed/entry[{st.entries}]/content")
    blocks = [r for r in resources if r.tag == T_BLOCK]
    for extra in contents[1:]:
        blocks += extra.iterchildren(T_BLOCK)
    if count_blocks:
        st.blocks += sum(1 for _ in el.iter(T_BLOCK))
    for block in blocks:
        if not _claim(st, block, pending):
            _extract(block, pending, source)
    if pending.line:
        ref = up or me
        mr = _MR_OF_BLOCK.sub("", ref) if ref else ""
        if mr not in st.readings:
            st.add_metadata(len(mr) + 400, int(el.sourceline or 0), "MeterReadings")
        st.add_readings(sum(len(x) for x in pending.line), int(el.sourceline or 0))
        _append(st.readings.setdefault(mr, _Chunks()), pending)


def _syntax_error(exc: etree.XMLSyntaxError, root: Any, log: Any, source: str) -> IntervalDataError:
    """Name the first real libxml2 error: its line, the element open there, the reason."""
    entries = [e for e in list(log or []) if e.level_name in ("ERROR", "FATAL")]  # this parser's own log
    first = entries[0] if entries else None
    line = (first.line if first is not None else 0) or exc.lineno or (exc.position[0] if exc.position else 0)
    msg = first.message if first is not None else str(getattr(exc, "msg", "") or exc)
    all_msgs = " | ".join(e.message for e in entries) or msg
    where_el = ""
    if root is not None:
        el = root
        while len(el):
            el = el[-1]
        where_el = _localname(el.tag)
    m = re.search(r"in tag (\S+)", all_msgs) or re.search(r"tag mismatch: (\S+)", all_msgs)
    if m:
        where_el = m.group(1).split(":")[-1]
    low = all_msgs.lower()
    if "too long" in low or "xml_parse_huge" in low or "huge" in low:
        text = (f"XML text or name in <{where_el or '?'}> is longer than the XML parser allows (10 MB); "
                "no meter reading is that long")
    elif "entity" in low:
        text = f"XML entity reference refused or undefined: {msg}"
    elif "premature end" in low or "end of data" in low or "no element found" in low or "truncated" in low:
        text = f"XML is truncated: {msg}"
    else:
        text = f"XML is not well-formed: {msg}"
    where = f"line {line}" + (f", element <{where_el}>" if where_el else "")
    return IntervalDataError(text, source=source, where=where, field="xml")


# --------------------------------------------------------------------------- interpretation


@dataclass
class _Stream:
    """One (meter reading, flow, duration) stream headed for one channel."""

    key: str
    channel: str
    minutes: int
    starts: np.ndarray
    kwh: np.ndarray
    quality: np.ndarray
    lines: np.ndarray


def _reading_type_for(st: _ParseState, mr: str, line: int, conflicts: str = "error",
                      ) -> tuple[dict[str, str], str, str]:
    """(fields, href, how it was found) of the ReadingType of meter reading ``mr``.

    A link that matches, by full href or by its last path segment, decides; a file with one
    ReadingType (or several identical ones) needs no link. When the file holds different
    ReadingTypes and none is linked, or the linked href was given twice with different
    content, the readings cannot be converted without guessing: error (``conflicts``
    ``first``/``last`` takes the first or last content of a twice-given href instead).
    """
    href = st.mr_reading_type.get(mr, "")
    found = ""
    how = ""
    if href and href in st.reading_types:
        found, how = href, "linked"
    elif href:
        # links may differ only in host or trailing parts: match by the last path segment
        tail = _last(href)
        found = next((k for k in st.reading_types if _last(k) == tail), "")
        how = "linked (by the last segment of its href)"
    if not found:
        if not st.reading_types:
            return {}, "", "none in the file: default_uom and default_power_of_ten assumed"
        distinct = {tuple(sorted(v.items())) for vs in st.rt_variants.values() for v in vs}
        if len(distinct) > 1:
            units = sorted({v.get("uom", "?") for vs in st.rt_variants.values() for v in vs})
            what = f"links to {excerpt(href, 80)}, which is not in the file" if href else "has no ReadingType link"
            raise IntervalDataError(
                f"MeterReading {excerpt(mr or '(none)', 80)} {what}, and the file holds {len(distinct)} different "
                f"ReadingTypes (uom {', '.join(units)}): which one converts its readings cannot be told. Link the "
                "MeterReading to its ReadingType", source=st.source, where=f"line {line}, element <IntervalReading>",
                field="ReadingType")
        found = next(iter(st.reading_types))
        how = "the only ReadingType in the file" + (" (its link did not match)" if href else "")
    if found in st.rt_conflicts:
        if conflicts == "error":
            raise st.rt_conflicts[found]
        variants = st.rt_variants[found]
        pick = variants[0] if conflicts == "first" else variants[-1]
        return pick, found, f"{how}; given {len(variants)} ways, the {conflicts} taken (reading_type_conflicts)"
    return st.reading_types[found], found, how


def _rt_int(st: _ParseState, rt: dict[str, str], href: str, name: str, default: int) -> int:
    """An integer field of a ReadingType; a non-integer is an error at its element."""
    if name not in rt:
        return default
    try:
        return int(rt[name])
    except ValueError:
        raise _rt_error(st, href, name, f"ReadingType {name} {excerpt(rt[name])} is not an integer") from None


def _rt_error(st: _ParseState, href: str, name: str, message: str) -> IntervalDataError:
    path, lines = st.rt_where.get(href, ("ReadingType", {}))
    return IntervalDataError(message, source=st.source, where=f"line {lines.get(name, 0)}, element <{path}/{name}>",
                             field=f"ReadingType/{name}")


def _no_espi_content(st: _ParseState) -> IntervalDataError | None:
    """Why a file is not Green Button data that can be stored, or None when it is."""
    meter_like = [(k, v) for k, v in st.foreign.items() if k[1] in ("IntervalBlock", "IntervalReading",
                                                                    "ReadingType", "MeterReading", "UsagePoint")]
    if st.espi_resources and not meter_like:
        return None
    if st.foreign:
        (ns, name), (count, line) = (meter_like or sorted(st.foreign.items(), key=lambda kv: kv[1][1]))[0]
        return IntervalDataError(
            f"resources in namespace {excerpt(ns or '(none)', 80)} (<{excerpt(name, 40)[1:-1]}>, {count} times) are "
            f"not Green Button (ESPI) resources of {ESPI!r}; nothing would be stored. Check the file's namespace",
            source=st.source, where=f"line {line}, element <{excerpt(name, 40)[1:-1]}>", field="xml")
    return IntervalDataError("the file holds no Green Button (ESPI) resources (UsagePoint, MeterReading, "
                             "ReadingType, IntervalBlock, LocalTimeParameters); nothing would be stored",
                             source=st.source, where="line 1", field="xml")


def _usage_point_id(mr: str) -> str:
    m = re.search(r"/UsagePoint/([^/]+)", mr)
    return m.group(1) if m else ""


def _meter_reading_id(mr: str) -> str:
    m = re.search(r"/MeterReading/([^/]+)", mr)
    return m.group(1) if m else ""


class GreenButtonMeter(MeterAdapter):
    """Interval and period readings from Green Button (ESPI) XML files."""

    type_id: ClassVar[str] = TYPE_ID
    title: ClassVar[str] = "Green Button / ESPI XML files"
    capabilities: ClassVar[frozenset[str]] = frozenset({"file"})
    Config: ClassVar[type[AdapterConfig]] = GreenButtonConfig
    config: GreenButtonConfig

    def check(self) -> CheckResult:
        """Parse a tiny ESPI document with the same safe parser settings."""
        doc = (b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><content>'
               b'<ReadingType xmlns="http://naesb.org/espi"><uom>72</uom></ReadingType></content></entry></feed>')
        import io

        st = _parse(io.BytesIO(doc), "(self-check)")
        return CheckResult.success("ESPI parser ready", reading_types=len(st.reading_types))

    def sniff(self, path: Path, head: bytes) -> bool:
        """ESPI namespace in the first bytes."""
        return sniff_greenbutton(path, head)

    def read_file(self, path: Path, channel: str | None = None) -> IntervalBatch:
        """Stream one ESPI file into a batch: interval series, period and register readings.

        Contradictions are errors naming the element and its line, never a silent choice:
        conflicting ReadingTypes or duplicate readings, values that are not finite, absurd
        multipliers, durations that are neither an interval length nor a whole-minute
        period, instants outside ``[ingest]`` first_year..last_year, and a file without
        any ESPI resource (e.g. a wrong namespace).
        """
        path = Path(path)
        source = str(path)
        limits = self.context.limits
        check_file(path, limits, MEMORY_PER_BYTE)
        try:
            st = stream_parse(path, source, limits)
        except OSError as exc:
            raise IntervalDataError(f"cannot read file: {exc.strerror}", source=source) from None
        problem = _no_espi_content(st)
        if problem is not None:
            raise problem
        cfg = self.config
        fixed = channel or cfg.channel
        streams: list[_Stream] = []
        periods: dict[tuple[str, str], list[tuple[np.ndarray, ...]]] = {}
        mr_periods: dict[str, list[tuple[str, tuple[np.ndarray, ...]]]] = {}  # per MeterReading: (kind, arrays)
        mr_where: dict[str, tuple[str, int, str, bool]] = {}  # MeterReading -> (usage point, flow, channel, chosen)
        interval_channels: dict[tuple[str, int], set[str]] = {}  # (usage point, flow) -> interval channel ids
        meta_rt: dict[str, dict[str, object]] = {}
        duplicates = 0
        quality_conflicts = 0
        skipped: list[str] = []
        mr_keys = sorted(st.readings)
        per_up: dict[str, set[str]] = {}
        for mr in mr_keys:
            per_up.setdefault(_usage_point_id(mr), set()).add(mr)
        for mr in mr_keys:
            start, dur, value, qual, lines = st.readings[mr].cat()
            if len(start) == 0:
                continue
            rt, rt_href, how = _reading_type_for(st, mr, int(lines[0]), cfg.reading_type_conflicts)
            uom = _rt_int(st, rt, rt_href, "uom", cfg.default_uom)
            p10 = _rt_int(st, rt, rt_href, "powerOfTenMultiplier", cfg.default_power_of_ten)
            flow = _rt_int(st, rt, rt_href, "flowDirection", FLOW_FORWARD)
            default_q = _rt_int(st, rt, rt_href, "defaultQuality", 0)
            acc = _rt_int(st, rt, rt_href, "accumulationBehaviour", 4)
            if p10 not in POWER_OF_TEN:
                raise _rt_error(st, rt_href, "powerOfTenMultiplier",
                                f"ReadingType powerOfTenMultiplier {p10} is not a unit multiplier (ESPI allows "
                                f"{POWER_OF_TEN.start}..{POWER_OF_TEN.stop - 1}: pico to tera)")
            meta_rt[mr or "(no MeterReading)"] = {
                "reading_type": rt_href or "(none in file: assumed)", "how": how, "uom": uom,
                "uom_name": UOM_NAMES.get(uom, "?"), "power_of_ten_multiplier": p10, "flow_direction": flow,
                "interval_length": rt.get("intervalLength"), "accumulation_behaviour": rt.get("accumulationBehaviour"),
                "commodity": rt.get("commodity"), "readings": int(len(start)),
            }
            if uom not in ENERGY_UOM:
                msg = (f"ReadingType uom {uom} ({UOM_NAMES.get(uom, 'unknown code')}) of {mr or 'the readings'} "
                       "cannot be converted to kWh (supported: 72 Wh, 38 W)")
                if cfg.unsupported_uom == "skip":
                    skipped.append(f"{len(start)} readings skipped: {msg}")
                    continue
                raise IntervalDataError(msg, source=source, where=f"line {int(lines[0])}, element <IntervalReading>",
                                        field="ReadingType/uom")
            _check_times(start, dur, lines, limits, source)
            factor, is_power = ENERGY_UOM[uom]
            with np.errstate(over="ignore", invalid="ignore"):
                kwh = value * (factor * (10.0 ** p10) / 1000.0)
                if is_power:
                    kwh = kwh * dur / 3600.0
            with np.errstate(invalid="ignore"):
                beyond = ~np.isfinite(kwh) | (np.abs(kwh) > ABSURD_KWH)
            if beyond.any():
                i = int(np.argmax(beyond))
                raise IntervalDataError(f"IntervalReading value {value[i]!r} x 10^{p10} {UOM_NAMES[uom]} is too large "
                                        "to be a meter reading", source=source,
                                        where=f"line {int(lines[i])}, element <IntervalReading>", field="value")
            sign = -1.0 if (flow == FLOW_REVERSE and cfg.received_mode == "negate") else 1.0
            kwh = kwh * sign
            q = np.where(qual == _QNONE, default_q, qual)
            if (q < 0).any():
                i = int(np.argmax(q < 0))
                raise IntervalDataError(f"ReadingQuality {int(q[i])} is not an ESPI quality code", source=source,
                                        where=f"line {int(lines[i])}, element <IntervalReading>",
                                        field="ReadingQuality/quality")
            qmap = np.full(max(int(q.max(initial=0)) + 1, 20), Quality.SUSPECT, dtype=np.uint8)
            for code, mapped in ESPI_QUALITY.items():
                qmap[code] = mapped
            s, d, v, kq, ln, n_dup, n_qc = _dedupe(start, dur, kwh, qmap[q], lines, source)
            duplicates += n_dup
            quality_conflicts += n_qc
            base, chosen = self._channel_for(mr, flow, per_up, fixed)
            if len(base) > MAX_CHANNEL_ID:
                raise IntervalDataError(f"channel id {excerpt(base)} (derived for MeterReading {excerpt(mr, 60)}) "
                                        f"is {len(base)} characters long, more than {MAX_CHANNEL_ID}; map it to a "
                                        "shorter id (channel_map)", source=source,
                                        where=f"line {int(ln[0])}, element <IntervalReading>", field="channel")
            mr_where[mr] = (_usage_point_id(mr), flow, base, chosen)
            if acc in CUMULATIVE:  # register readings: the register's value at the end of each period
                mr_periods.setdefault(mr, []).append(("register", (s + d, s + d, v, kq)))
                continue
            interval = (d % 60 == 0) & np.isin(d // 60, ALLOWED_INTERVAL_MINUTES)
            period = ~interval & (d > 3600) & (d % 60 == 0) & (s % 60 == 0)
            odd = ~interval & ~period
            if odd.any():
                i = int(np.argmax(odd))
                raise IntervalDataError(
                    f"IntervalReading duration {int(d[i])} s at {instant_text(int(s[i]))} is neither an interval "
                    f"length ({', '.join(str(m * 60) for m in ALLOWED_INTERVAL_MINUTES)} s) nor a period of whole "
                    "minutes longer than an hour; it would be neither stored nor checked", source=source,
                    where=f"line {int(ln[i])}, element <IntervalReading>", field="timePeriod/duration")
            if period.any():
                mr_periods.setdefault(mr, []).append(("period", (s[period], s[period] + d[period], v[period],
                                                                 kq[period])))
            durations = np.unique(d[interval])
            if len(durations):
                interval_channels.setdefault((_usage_point_id(mr), flow), set()).add(
                    base if len(durations) == 1 else "")
            for dsec in durations:
                m = interval & (d == dsec)
                minutes = int(dsec) // 60
                ch = base if len(durations) == 1 else f"{base}.{minutes}min"
                ss = s[m]
                mis = ss % (minutes * 60) != 0
                if mis.any():
                    i = int(np.argmax(mis))
                    raise IntervalDataError(
                        f"interval start {instant_text(int(ss[i]))} is not on the {minutes}-minute grid "
                        "(misaligned start)", source=source, where=f"line {int(ln[m][i])}, element <IntervalReading>",
                        field="timePeriod/start")
                streams.append(_Stream(mr, ch, minutes, ss, v[m], kq[m], ln[m]))
        series = self._merge_streams(streams, fixed, source)
        notes: list[str] = []
        interval_mrs = {s.key for s in streams}
        for mr, parts in mr_periods.items():
            up, flow, target, chosen = mr_where[mr]
            if not chosen and mr not in interval_mrs:
                # daily or billing reads of a usage point that also has interval data: the same meter,
                # so they go with its interval channel (where the sum check compares them)
                found = interval_channels.get((up, flow), set())
                if len(found) == 1 and "" not in found:
                    target = next(iter(found))
                    notes.append(f"period readings of MeterReading {mr} go with the interval channel {target} "
                                 "of the same usage point")
            for kind, arrays in parts:
                periods.setdefault((target, kind), []).append(arrays)
        period_series = [PeriodSeries(ch, kind, *(np.concatenate([x[k] for x in parts]) for k in range(4)))
                         for (ch, kind), parts in periods.items()]
        meta: dict[str, object] = {
            "adapter": TYPE_ID,
            "instance": self.instance_id,
            "entries": st.entries,
            "interval_blocks": st.blocks,
            "readings": int(sum(len(x) for c in st.readings.values() for x in c.line)),
            "duplicates": duplicates,
            "quality_conflicts": quality_conflicts,
            "period_readings": int(sum(len(p) for p in period_series)),
            "reading_types": st.reading_type_entries,
            "meter_readings": meta_rt,
            "usage_points": st.usage_points,
            "local_time_parameters": [_ltp(x) for x in st.local_time],
        }
        notes = skipped + notes
        if quality_conflicts:
            notes.append(f"{quality_conflicts} repeated readings had the same value but different quality flags; "
                         "the worse quality was kept")
        if st.ignored:
            notes.append("ignored (no interval, period or register data): "
                         + ", ".join(f"{n} {name}" for name, n in sorted(st.ignored.items())))
        for href in st.rt_conflicts:
            used = [m for m, r in meta_rt.items() if r["reading_type"] == href]
            if used:
                notes.append(f"ReadingType {href} is given {len(st.rt_variants[href])} ways; "
                             f"reading_type_conflicts = {cfg.reading_type_conflicts!r} decided")
            else:
                notes.append(f"ReadingType {href} is given {len(st.rt_variants[href])} ways (no readings use it)")
        foreign = [f"{n} <{name}> of namespace {ns or '(none)'}" for (ns, name), (n, _) in sorted(st.foreign.items())]
        if foreign:
            notes.append("ignored (not ESPI): " + ", ".join(foreign[:10]) + (" ..." if len(foreign) > 10 else ""))
        if skipped:
            meta["skipped"] = skipped
        if notes:
            meta["notes"] = notes
        return IntervalBatch(source=source, series=series, meta=meta, periods=period_series)

    def _channel_for(self, mr: str, flow: int, per_up: dict[str, set[str]], fixed: str | None) -> tuple[str, bool]:
        """(channel id, whether the operator chose it: ``channel`` or a ``channel_map`` entry)."""
        cfg = self.config
        if fixed is not None:
            return fixed, True
        up = _usage_point_id(mr)
        mrid = _meter_reading_id(mr)
        derived = f"{cfg.channel_prefix}.{up or 'meter'}"
        if len(per_up.get(up, ())) > 1 and mrid:
            derived += f".{mrid}"
        if flow == FLOW_REVERSE and cfg.received_mode == "channel":
            derived += cfg.received_suffix
        for key in (mr, derived, f"{up}.{mrid}" if mrid else "", up):
            if key and key in cfg.channel_map:
                mapped = cfg.channel_map[key]
                if key in (up, f"{up}.{mrid}") and flow == FLOW_REVERSE and cfg.received_mode == "channel":
                    mapped += cfg.received_suffix
                return mapped, True
        return derived, False

    def _merge_streams(self, streams: list[_Stream], fixed: str | None, source: str) -> list[ChannelSeries]:
        by_channel: dict[str, list[_Stream]] = {}
        for s in streams:
            by_channel.setdefault(s.channel, []).append(s)
        out: list[ChannelSeries] = []
        for ch, parts in by_channel.items():
            minutes = {p.minutes for p in parts}
            if len(minutes) > 1 or len({p.key for p in parts}) > 1 and fixed is not None:
                what = "interval lengths " + ", ".join(f"{m} min" for m in sorted(minutes)) if len(minutes) > 1 \
                    else f"{len(parts)} meter readings"
                raise IntervalDataError(
                    f"channel {ch!r} would receive {what}; map each MeterReading to its own channel "
                    "(channel_map) instead of one --channel", source=source, where=f"line {int(parts[0].lines[0])}",
                    field="channel")
            if len(parts) == 1:
                p = parts[0]
                out.append(ChannelSeries(ch, p.minutes, p.starts, p.kwh, p.quality, unit="kWh"))
                continue
            starts = np.concatenate([p.starts for p in parts])
            kwh = np.concatenate([p.kwh for p in parts])
            q = np.concatenate([p.quality for p in parts])
            order = np.argsort(starts, kind="stable")
            out.append(ChannelSeries(ch, parts[0].minutes, starts[order], kwh[order], q[order], unit="kWh"))
        return out


MAX_PERIOD_S = 400 * 86_400  # a period reading longer than this is not a billing period


def _check_times(start: np.ndarray, dur: np.ndarray, lines: np.ndarray, limits: InputLimits, source: str) -> None:
    """Durations up to 400 days; start and end inside ``[ingest]`` first_year..last_year."""
    long = dur > MAX_PERIOD_S
    if long.any():
        i = int(np.argmax(long))
        raise IntervalDataError(f"IntervalReading duration {int(dur[i]):,} s is longer than 400 days", source=source,
                                where=f"line {int(lines[i])}, element <IntervalReading>", field="timePeriod/duration")
    out = limits.outside(start) | limits.outside(np.minimum(start, limits.end_epoch) + dur - 1)
    if out.any():
        i = int(np.argmax(out))
        raise IntervalDataError(f"IntervalReading start {instant_text(int(start[i]))} is outside the accepted range "
                                f"{limits.range_text()}", source=source,
                                where=f"line {int(lines[i])}, element <IntervalReading>", field="timePeriod/start")


def _dedupe(start: np.ndarray, dur: np.ndarray, kwh: np.ndarray, quality: np.ndarray, lines: np.ndarray,
            source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Sort by (start, duration) and collapse repeats (overlapping blocks repeat readings).

    A repeat with another value is an error naming both lines; one with the same value
    but another quality keeps the worse quality. Returns the arrays plus the number of
    repeats and of quality-only conflicts.
    """
    order = np.lexsort((lines, dur, start))
    s, d, v, kq, ln = start[order], dur[order], kwh[order], quality[order], lines[order]
    same_next = (s[1:] == s[:-1]) & (d[1:] == d[:-1])
    n_dup = int(same_next.sum())
    if not n_dup:
        return s, d, v, kq, ln, 0, 0
    differ = same_next & (v[1:] != v[:-1])
    if differ.any():
        i = int(np.argmax(differ))
        raise IntervalDataError(
            f"IntervalReading {instant_text(int(s[i]))} ({int(d[i])} s) appears twice with different values: "
            f"{float(v[i])!r} kWh (line {int(ln[i])}) and {float(v[i + 1])!r} kWh; which one is right cannot be told",
            source=source, where=f"line {int(ln[i + 1])}, element <IntervalReading>", field="value")
    first = np.concatenate(([True], ~same_next))
    starts = np.flatnonzero(first)
    worst = np.maximum.reduceat(kq, starts)
    n_qc = int(np.count_nonzero(worst != np.minimum.reduceat(kq, starts)))
    return s[first], d[first], v[first], worst, ln[first], n_dup, n_qc


def _ltp(f: dict[str, str]) -> dict[str, object]:
    out: dict[str, object] = dict(f)
    for k in ("tzOffset", "dstOffset"):
        if k in f:
            try:
                out[k] = int(f[k])
            except ValueError:
                pass
    return out


def sniff_greenbutton(path: Path, head: bytes) -> bool:
    """True when the first bytes carry the ESPI namespace (or an Atom feed of ESPI resources)."""
    text = _decode_head(head[:4096])
    if "naesb.org/espi" in text:
        return True
    return Path(path).suffix.lower() == ".xml" and ("IntervalBlock" in text or "UsagePoint" in text)


@hookimpl
def kwhub_register_meter_adapters(register: Any) -> None:
    """Register the Green Button meter adapter."""
    register(GreenButtonMeter)


@hookimpl
def kwhub_sniff_meter_file(path: Path, head: bytes) -> str | None:
    """Claim Green Button / ESPI XML files."""
    return TYPE_ID if sniff_greenbutton(path, head) else None
