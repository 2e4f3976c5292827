"""Green Button (NAESB ESPI) XML files, streamed with bounded memory.

The Atom feed is read with :func:`lxml.etree.iterparse`; every ``IntervalReading`` is
reduced to four numbers the moment it closes and then cleared, and finished entries are
removed from the tree, so the parser's memory does not grow with the file. Parsing is
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

import numpy as np
from lxml import etree

from kwhub.core.adapters import AdapterConfig, CheckResult, MeterAdapter
from kwhub.core.hookspecs import hookimpl
from kwhub.core.intervals import (
    ALLOWED_INTERVAL_MINUTES,
    ChannelSeries,
    IntervalBatch,
    IntervalDataError,
)
from kwhub.core.quality import Quality

TYPE_ID = "meters.greenbutton"
ESPI = "http://naesb.org/espi"
ATOM = "http://www.w3.org/2005/Atom"

_E = f"{{{ESPI}}}"
_A = f"{{{ATOM}}}"
T_ENTRY = _A + "entry"
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
    return etree.QName(tag).localname if isinstance(tag, str) else str(tag)


def _last(href: str) -> str:
    return href.rstrip("/").rsplit("/", 1)[-1]


_PROLOG = re.compile(r"\s+|<\?.*?\?>|<!--.*?-->", re.S)
_ROOT_TAG = re.compile(r"<(?:[^\s/>:!?]+:)?([^\s/>:!?]+)[\s/>]")


def refuse_doctype(path: Path, fh: IO[bytes], max_bytes: int = 64 << 20) -> str:
    """Raise if the document's prolog declares a DOCTYPE (entities, external DTDs).

    Reads only as far as the prolog goes (XML declaration, comments, PIs, whitespace).
    Returns the local name of the root element when the prolog shows it, else "".
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
        if not more or not unfinished or len(data) > max_bytes:
            m = _ROOT_TAG.match(rest)
            return m.group(1) if m else ""


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


def _fields(el: Any) -> dict[str, str]:
    """Direct simple children of an element as localname -> text."""
    out: dict[str, str] = {}
    for child in el:
        if isinstance(child.tag, str) and len(child) == 0 and child.text is not None:
            out[_localname(child.tag)] = child.text.strip()
    return out


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


def stream_parse(path: Path, source: str | None = None) -> _ParseState:
    """One streaming pass over an ESPI file; memory stays flat in the file size."""
    source = source or str(path)
    with path.open("rb") as fh:
        root_name = refuse_doctype(path, fh)
        fh.seek(0)
        # an Atom feed (or a single entry) is followed by its entries alone; anything else
        # (a bare ESPI resource) also reports IntervalBlock starts for the memory guard
        return _parse(fh, source, atom=root_name in ("feed", "entry"))


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
                try:
                    conv((found[0].text or "").strip())
                except ValueError:
                    problem = f"{found[0].text!r} is not a number"
            if problem:
                raise IntervalDataError(f"IntervalReading {fld}: {problem}", source=source,
                                        where=f"line {r.sourceline}, element <IntervalReading>", field=fld)
        for q in r.iterfind(P_QUALITY):
            try:
                int((q.text or "").strip())
            except ValueError:
                raise IntervalDataError(f"ReadingQuality quality {q.text!r} is not a number", source=source,
                                        where=f"line {q.sourceline}, element <quality>",
                                        field="ReadingQuality/quality") from None
    raise IntervalDataError("IntervalBlock readings could not be read", source=source,
                            where=f"line {block.sourceline}, element <IntervalBlock>", field="IntervalReading")


def _parse(fh: IO[bytes], source: str, atom: bool = False) -> _ParseState:
    """Stream the document; ``atom`` when its root is an Atom feed/entry (faster events)."""
    st = _ParseState()
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
    read = fh.read
    try:
        while True:
            chunk = read(_CHUNK)
            if not chunk:
                break
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
                if block is not None:
                    _extract(block, pending, source, keep_last=True)
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
        if root.tag == T_BLOCK:
            _extract(root, pending, source)
        _append(st.readings.setdefault("", _Chunks()), pending)
    return st


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


def _collect_resources(st: _ParseState, resources: list[Any], me: str, related: list[str]) -> None:
    for res in resources:
        tag = res.tag
        if tag == T_MR:
            for h in related:
                if "/ReadingType/" in h:
                    st.mr_reading_type[me] = h
        elif tag == T_RT:
            fields = _fields(res)
            st.reading_types[me or f"#rt{len(st.reading_types)}"] = fields
            st.reading_type_entries.append({"href": me, **fields})
        elif tag == T_LTP:
            st.local_time.append(_fields(res))
        elif tag == T_UP:
            st.usage_points[me or f"#up{len(st.usage_points)}"] = _nested(res)


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
    _collect_resources(st, resources, me, related)
    blocks = [r for r in resources if r.tag == T_BLOCK]
    for extra in contents[1:]:
        blocks += extra.iterchildren(T_BLOCK)
    if count_blocks:
        st.blocks += sum(1 for _ in el.iter(T_BLOCK))
    for block in blocks:
        _extract(block, pending, source)
    if pending.line:
        ref = up or me
        mr = _MR_OF_BLOCK.sub("", ref) if ref else ""
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
    if "entity" in low:
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


def _reading_type_for(st: _ParseState, mr: str) -> tuple[dict[str, str], str]:
    href = st.mr_reading_type.get(mr, "")
    if href and href in st.reading_types:
        return st.reading_types[href], href
    if href:
        # links may differ only in host or trailing parts: match by the last path segment
        tail = _last(href)
        for k, v in st.reading_types.items():
            if _last(k) == tail:
                return v, k
    if len(st.reading_types) == 1:
        k, v = next(iter(st.reading_types.items()))
        return v, k
    distinct = {tuple(sorted(v.items())) for v in st.reading_types.values()}
    if len(distinct) == 1:
        k, v = next(iter(st.reading_types.items()))
        return v, k
    return {}, ""


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
        """Stream one ESPI file into a batch (interval series + period readings in meta)."""
        path = Path(path)
        source = str(path)
        try:
            st = stream_parse(path, source)
        except OSError as exc:
            raise IntervalDataError(f"cannot read file: {exc.strerror}", source=source) from None
        cfg = self.config
        fixed = channel or cfg.channel
        streams: list[_Stream] = []
        periods: list[dict[str, object]] = []
        meta_rt: dict[str, dict[str, object]] = {}
        duplicates = 0
        conflicts = 0
        skipped: list[str] = []
        mr_keys = sorted(st.readings)
        per_up: dict[str, set[str]] = {}
        for mr in mr_keys:
            per_up.setdefault(_usage_point_id(mr), set()).add(mr)
        for mr in mr_keys:
            start, dur, value, qual, lines = st.readings[mr].cat()
            if len(start) == 0:
                continue
            rt, rt_href = _reading_type_for(st, mr)
            uom = int(rt.get("uom", cfg.default_uom))
            p10 = int(rt.get("powerOfTenMultiplier", cfg.default_power_of_ten))
            flow = int(rt.get("flowDirection", FLOW_FORWARD))
            default_q = int(rt.get("defaultQuality", 0))
            meta_rt[mr or "(no MeterReading)"] = {
                "reading_type": rt_href or "(none in file: assumed)", "uom": uom, "uom_name": UOM_NAMES.get(uom, "?"),
                "power_of_ten_multiplier": p10, "flow_direction": flow,
                "interval_length": int(rt["intervalLength"]) if "intervalLength" in rt else None,
                "accumulation_behaviour": rt.get("accumulationBehaviour"), "commodity": rt.get("commodity"),
                "readings": int(len(start)),
            }
            if uom not in ENERGY_UOM:
                msg = (f"ReadingType uom {uom} ({UOM_NAMES.get(uom, 'unknown code')}) of {mr or 'the readings'} "
                       "cannot be converted to kWh (supported: 72 Wh, 38 W)")
                if cfg.unsupported_uom == "skip":
                    skipped.append(msg)
                    continue
                raise IntervalDataError(msg, source=source, where=f"line {int(lines[0])}, element <IntervalReading>",
                                        field="ReadingType/uom")
            factor, is_power = ENERGY_UOM[uom]
            kwh = value * factor * (10.0 ** p10) / 1000.0
            if is_power:
                kwh = kwh * dur / 3600.0
            sign = -1.0 if (flow == FLOW_REVERSE and cfg.received_mode == "negate") else 1.0
            kwh = kwh * sign
            q = np.where(qual == _QNONE, default_q, qual)
            qmap = np.full(max(int(q.max(initial=0)) + 1, 20), Quality.SUSPECT, dtype=np.uint8)
            for code, kq in ESPI_QUALITY.items():
                qmap[code] = kq
            if (q < 0).any():
                i = int(np.argmax(q < 0))
                raise IntervalDataError(f"ReadingQuality {int(q[i])} is not an ESPI quality code", source=source,
                                        where=f"line {int(lines[i])}, element <IntervalReading>",
                                        field="ReadingQuality/quality")
            kq_arr = qmap[q]
            # dedupe: same (start, duration) repeated across blocks; the later one wins
            order = np.lexsort((lines, dur, start))
            s, d, v, kq, ln = start[order], dur[order], kwh[order], kq_arr[order], lines[order]
            last = np.ones(len(s), dtype=bool)
            same_next = (s[1:] == s[:-1]) & (d[1:] == d[:-1])
            last[:-1] = ~same_next
            n_dup = int(same_next.sum())
            if n_dup:
                duplicates += n_dup
                differs = same_next & ((v[1:] != v[:-1]) | (kq[1:] != kq[:-1]))
                conflicts += int(differs.sum())
                s, d, v, kq, ln = s[last], d[last], v[last], kq[last], ln[last]
            base = self._channel_for(mr, flow, per_up, fixed)
            interval = (d % 60 == 0) & np.isin(d // 60, ALLOWED_INTERVAL_MINUTES)
            if (~interval).any():
                idx = np.flatnonzero(~interval)
                periods += [
                    {"channel": base, "start": int(s[i]), "start_utc": _iso(int(s[i])), "duration": int(d[i]),
                     "kwh": float(v[i]), "quality": Quality(int(kq[i])).label, "meter_reading": mr}
                    for i in idx  # period readings are few (daily/billing), not intervals
                ]
            durations = np.unique(d[interval])
            for dsec in durations:
                m = interval & (d == dsec)
                minutes = int(dsec) // 60
                ch = base if len(durations) == 1 else f"{base}.{minutes}min"
                ss = s[m]
                mis = ss % (minutes * 60) != 0
                if mis.any():
                    i = int(np.argmax(mis))
                    raise IntervalDataError(
                        f"interval start {_iso(int(ss[i]))} is not on the {minutes}-minute grid (misaligned start)",
                        source=source, where=f"line {int(ln[m][i])}, element <IntervalReading>",
                        field="timePeriod/start")
                streams.append(_Stream(mr, ch, minutes, ss, v[m], kq[m], ln[m]))
        series = self._merge_streams(streams, fixed, source)
        meta: dict[str, object] = {
            "adapter": TYPE_ID,
            "instance": self.instance_id,
            "entries": st.entries,
            "interval_blocks": st.blocks,
            "readings": int(sum(len(x) for c in st.readings.values() for x in c.line)),
            "duplicates": duplicates,
            "conflicting_duplicates": conflicts,
            "period_readings": periods,
            "reading_types": st.reading_type_entries,
            "meter_readings": meta_rt,
            "usage_points": st.usage_points,
            "local_time_parameters": [_ltp(x) for x in st.local_time],
        }
        if skipped:
            meta["skipped"] = skipped
        return IntervalBatch(source=source, series=series, meta=meta)

    def _channel_for(self, mr: str, flow: int, per_up: dict[str, set[str]], fixed: str | None) -> str:
        cfg = self.config
        if fixed is not None:
            return fixed
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
                return mapped
        return derived

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
                out.append(ChannelSeries(ch, p.minutes, p.starts, p.kwh, p.quality))
                continue
            starts = np.concatenate([p.starts for p in parts])
            kwh = np.concatenate([p.kwh for p in parts])
            q = np.concatenate([p.quality for p in parts])
            order = np.argsort(starts, kind="stable")
            out.append(ChannelSeries(ch, parts[0].minutes, starts[order], kwh[order], q[order]))
        return out


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
