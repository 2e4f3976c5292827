"""Benchmark: Green Button (ESPI) parsing speed and memory vs. a plain lxml reader and greenbutton_objects.

Generates ESPI feeds in the layout utilities publish (pretty-printed Atom entries, one
IntervalBlock per day of 15-minute readings, a ReadingQuality on some readings, cost),
then parses each in a fresh subprocess so that peak RSS is per run:

* ours: ``kwhub.plugins.meters.greenbutton.GreenButtonMeter.read_file`` at two file sizes
  (memory should stay flat; only the output arrays grow, ~40 bytes per reading): the
  IntervalReadings are read from the bytes by ``greenbutton_scan``, the rest by lxml;
  the JSON says how many blocks the scanner read (``scanned_blocks``, from a separate
  untimed pass) so that a silent fall-back to lxml alone would show;
* lxml peer: a short ``lxml.etree.iterparse`` reader (:func:`lxml_reader`) that takes every
  IntervalReading's start and value into numpy arrays and nothing else; ours and it run
  ``--runs`` times alternately on the big file, medians and the ratio are printed, and the
  totals (readings, sum of values in Wh) are checked equal;
* peer: ``greenbutton_objects.parse.parse_feed`` (ElementTree DOM). When it cannot do the
  big file in reasonable time it runs on the small one and the JSON says which.

The last line is one JSON object.

    python bench/ingest_greenbutton.py [--mb 150] [--small-mb 30] [--runs 3] [--no-objects] [--peer-timeout 600]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASE = "https://utility.example/DataCustodian/espi/1_1/resource"


def _entry(links: list[tuple[str, str]], title: str, content: str) -> str:
    link_xml = "".join(f'    <link rel="{rel}" href="{href}"/>\n' for rel, href in links)
    return (f"  <entry>\n    <id>urn:uuid:{abs(hash((title, content[:40]))):032x}</id>\n{link_xml}"
            f"    <title>{title}</title>\n    <content>\n{content}    </content>\n"
            "    <updated>2024-01-01T00:00:00Z</updated>\n  </entry>\n")


def generate(path: Path, target_mb: float, seed: int = 7) -> int:
    """Write ESPI usage points of 15-minute data until the file reaches ``target_mb``."""
    rng = np.random.default_rng(seed)
    t0 = 1704085200  # 2024-01-01T05:00:00Z
    n_readings = 0
    with path.open("w", encoding="utf-8") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
                 'xmlns:espi="http://naesb.org/espi">\n  <id>urn:uuid:bench</id>\n  <title>bench</title>\n')
        fh.write(_entry([("self", f"{BASE}/LocalTimeParameters/1")], "DST For North America",
                        "      <espi:LocalTimeParameters>\n        <espi:dstEndRule>B40E2000</espi:dstEndRule>\n"
                        "        <espi:dstOffset>3600</espi:dstOffset>\n"
                        "        <espi:dstStartRule>360E2000</espi:dstStartRule>\n"
                        "        <espi:tzOffset>-18000</espi:tzOffset>\n      </espi:LocalTimeParameters>\n"))
        up_i = 0
        while fh.tell() < target_mb * 1e6:
            up_i += 1
            up = f"{BASE}/Subscription/1/UsagePoint/{up_i}"
            mr = f"{up}/MeterReading/1"
            rt = f"{BASE}/ReadingType/{up_i}"
            fh.write(_entry([("self", up), ("related", f"{up}/MeterReading")], f"Meter {up_i}",
                            "      <espi:UsagePoint>\n        <espi:ServiceCategory><espi:kind>0</espi:kind>"
                            "</espi:ServiceCategory>\n      </espi:UsagePoint>\n"))
            fh.write(_entry([("self", mr), ("up", f"{up}/MeterReading"), ("related", f"{mr}/IntervalBlock"),
                             ("related", rt)], "Energy", "      <espi:MeterReading/>\n"))
            fh.write(_entry([("self", rt)], "kWh", "      <espi:ReadingType>\n"
                            "        <espi:accumulationBehaviour>4</espi:accumulationBehaviour>\n"
                            "        <espi:commodity>1</espi:commodity>\n"
                            "        <espi:flowDirection>1</espi:flowDirection>\n"
                            "        <espi:intervalLength>900</espi:intervalLength>\n"
                            "        <espi:kind>12</espi:kind>\n"
                            "        <espi:powerOfTenMultiplier>0</espi:powerOfTenMultiplier>\n"
                            "        <espi:uom>72</espi:uom>\n      </espi:ReadingType>\n"))
            for day in range(365):
                s0 = t0 + day * 86400
                vals = rng.integers(50, 3000, 96)
                flagged = rng.random(96) < 0.05
                parts = [f"      <espi:IntervalBlock>\n        <espi:interval>\n"
                         f"          <espi:duration>86400</espi:duration>\n"
                         f"          <espi:start>{s0}</espi:start>\n        </espi:interval>\n"]
                for i in range(96):
                    q = ("          <espi:ReadingQuality>\n            <espi:quality>8</espi:quality>\n"
                         "          </espi:ReadingQuality>\n") if flagged[i] else ""
                    parts.append(f"        <espi:IntervalReading>\n          <espi:cost>{int(vals[i]) * 11}</espi:cost>\n"
                                 f"{q}          <espi:timePeriod>\n            <espi:duration>900</espi:duration>\n"
                                 f"            <espi:start>{s0 + 900 * i}</espi:start>\n          </espi:timePeriod>\n"
                                 f"          <espi:value>{int(vals[i])}</espi:value>\n        </espi:IntervalReading>\n")
                parts.append("      </espi:IntervalBlock>\n")
                fh.write(_entry([("self", f"{mr}/IntervalBlock/{day + 1}"), ("up", f"{mr}/IntervalBlock")],
                                "", "".join(parts)))
                n_readings += 96
        fh.write("</feed>\n")
    return n_readings


ESPI_NS = "{http://naesb.org/espi}"


def lxml_reader(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The lxml peer: every IntervalReading's start and value into numpy arrays.

    What a developer who knows lxml writes in a few lines: ``iterparse`` with a tag filter
    on the two fields (libxml2 reports nothing else to Python), the reading's start told
    from the block's own start by its parent (``timePeriod``), each element cleared, the
    texts turned into arrays at the end. No checks, no quality, no reading types. (The
    fastest of the variants tried: asking each IntervalReading for its two texts with
    ``findtext`` is about 2x slower, also dropping each finished entry about 1.5x.)
    """
    from lxml import etree

    start_tag, value_tag, period_tag = ESPI_NS + "start", ESPI_NS + "value", ESPI_NS + "timePeriod"
    starts: list[str] = []
    values: list[str] = []
    for _, el in etree.iterparse(str(path), events=("end",), tag=(start_tag, value_tag)):
        if el.tag == value_tag:
            values.append(el.text)
        elif el.getparent().tag == period_tag:
            starts.append(el.text)
        el.clear()
    return np.array(starts, dtype=np.int64), np.array(values, dtype=np.float64)


def child(kind: str, path: str) -> None:
    """Parse once in this process and print seconds, readings and peak RSS."""
    sys.path.insert(0, str(ROOT))
    t = time.perf_counter()
    c0 = time.process_time()
    if kind == "ours":
        from kwhub.plugins.meters.greenbutton import GreenButtonMeter

        batch = GreenButtonMeter("bench").read_file(Path(path))
        readings = len(batch) + batch.n_periods
        secs, cpu = time.perf_counter() - t, time.process_time() - c0
        # the file's values are Wh (uom 72, multiplier 0), the batch holds kWh: total in Wh
        total = int(sum(int(np.rint(s.values * 1000).astype(np.int64).sum()) for s in batch.series))
    elif kind == "lxml":
        _starts, values = lxml_reader(Path(path))
        readings = len(values)
        secs, cpu = time.perf_counter() - t, time.process_time() - c0
        total = int(np.rint(values).astype(np.int64).sum())
    else:
        from greenbutton_objects.parse import parse_feed

        ups = parse_feed(path)
        readings = sum(sum(1 for _ in mr.intervalReadings) for up in ups for mr in up.meterReadings)
        secs, cpu = time.perf_counter() - t, time.process_time() - c0
        total = None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": secs, "cpu_seconds": cpu, "readings": readings, "peak_rss_mb": rss,
                      "total_wh": total}))


def _scanned(path: Path) -> tuple[int, int]:
    """(blocks the byte scanner read, IntervalBlocks in the file): an untimed pass of our parser."""
    sys.path.insert(0, str(ROOT))
    from kwhub.plugins.meters.greenbutton import stream_parse

    st = stream_parse(path)
    return (st.scanner.scanned_blocks if st.scanner is not None else 0), st.blocks


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def run(kind: str, path: Path, timeout: float) -> dict | None:
    try:
        out = subprocess.run([sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True,
                             timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["mb"] = path.stat().st_size / 1e6
    res["mb_per_s"] = res["mb"] / res["seconds"]
    res["mb_per_cpu_s"] = res["mb"] / res["cpu_seconds"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=150)
    ap.add_argument("--small-mb", type=float, default=30)
    ap.add_argument("--peer-timeout", type=float, default=600)
    ap.add_argument("--runs", type=int, default=3, help="runs of ours and of the lxml peer (medians)")
    ap.add_argument("--no-objects", action="store_true", help="skip the greenbutton_objects peer (slow)")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "FILE"))
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    work = Path(tempfile.mkdtemp(prefix="kwhub_bench_gb_"))
    big, small = work / "big.xml", work / "small.xml"
    for p, mb in ((big, args.mb), (small, args.small_mb)):
        t = time.perf_counter()
        n = generate(p, mb)
        print(f"generated {p.name}: {p.stat().st_size / 1e6:.1f} MB, {n:,} readings in "
              f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
    ours_small = run("ours", small, 3600)
    assert ours_small
    # ours and the plain lxml reader alternate on the big file, each in a fresh process
    ours_runs: list[dict] = []
    lxml_runs: list[dict] = []
    for _ in range(args.runs):
        o, p = run("ours", big, 3600), run("lxml", big, 3600)
        assert o and p
        ours_runs.append(o)
        lxml_runs.append(p)
    ours_big = sorted(ours_runs, key=lambda r: r["seconds"])[len(ours_runs) // 2]
    lxml = sorted(lxml_runs, key=lambda r: r["seconds"])[len(lxml_runs) // 2]
    totals_equal = all(r["total_wh"] == lxml["total_wh"] and r["readings"] == lxml["readings"]
                       for r in ours_runs + lxml_runs)
    for name, r in (("small", ours_small), ("big", ours_big)):
        print(f"ours {name}: {r['mb']:.1f} MB in {r['seconds']:.2f} s = {r['mb_per_s']:.1f} MB/s "
              f"({r['mb_per_cpu_s']:.1f} MB per CPU-s), "
              f"{r['readings']:,} readings, peak RSS {r['peak_rss_mb']:.0f} MB", file=sys.stderr)
    spread = ", ".join(f"{o['seconds']:.2f}/{p['seconds']:.2f}" for o, p in zip(ours_runs, lxml_runs, strict=True))
    ratio = lxml["seconds"] / ours_big["seconds"]
    cpu_ratio = _median([r["cpu_seconds"] for r in lxml_runs]) / _median([r["cpu_seconds"] for r in ours_runs])
    print(f"lxml peer (big): {lxml['mb']:.1f} MB in {lxml['seconds']:.2f} s = {lxml['mb_per_s']:.1f} MB/s, "
          f"{lxml['readings']:,} readings, peak RSS {lxml['peak_rss_mb']:.0f} MB; ours/lxml speed {ratio:.2f}x wall, "
          f"{cpu_ratio:.2f}x CPU "
          f"(runs ours/lxml s: {spread}); totals (Wh) ours {ours_big['total_wh']:,}, lxml {lxml['total_wh']:,}, "
          f"equal: {totals_equal}", file=sys.stderr)
    scanned_blocks, blocks = _scanned(big)
    print(f"blocks read by the byte scanner: {scanned_blocks:,} of {blocks:,}", file=sys.stderr)
    peer = None
    peer_file = "skipped"
    if not args.no_objects:
        peer = run("peer", big, args.peer_timeout)
        peer_file = "big"
        if peer is None:
            print(f"peer did not finish the big file within {args.peer_timeout:.0f} s; measuring it on the small "
                  "file", file=sys.stderr)
            peer = run("peer", small, args.peer_timeout)
            peer_file = "small"
    if peer:
        print(f"greenbutton_objects peer ({peer_file}): {peer['mb']:.1f} MB in {peer['seconds']:.2f} s = "
              f"{peer['mb_per_s']:.2f} MB/s ({peer['mb_per_cpu_s']:.2f} MB per CPU-s), "
              f"{peer['readings']:,} readings, peak RSS {peer['peak_rss_mb']:.0f} MB", file=sys.stderr)
    result = {
        "mb_per_s": round(ours_big["mb_per_s"], 2),
        "seconds_runs": [round(r["seconds"], 3) for r in ours_runs],
        "lxml_mb_per_s": round(lxml["mb_per_s"], 2),
        "lxml_seconds_runs": [round(r["seconds"], 3) for r in lxml_runs],
        "ratio_vs_lxml": round(ratio, 3),
        "cpu_ratio_vs_lxml": round(cpu_ratio, 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "totals_equal": totals_equal,
        "scanned_blocks": scanned_blocks,
        "interval_blocks": blocks,
        "mb_per_cpu_s": round(ours_big["mb_per_cpu_s"], 2),
        "peer_mb_per_cpu_s": round(peer["mb_per_cpu_s"], 2) if peer else None,
        "peer_mb_per_s": round(peer["mb_per_s"], 2) if peer else None,
        "peak_rss_mb": round(ours_big["peak_rss_mb"], 1),
        "file_mb": round(ours_big["mb"], 1),
        "readings": ours_big["readings"],
        "small_file_mb": round(ours_small["mb"], 1),
        "small_peak_rss_mb": round(ours_small["peak_rss_mb"], 1),
        "small_mb_per_s": round(ours_small["mb_per_s"], 2),
        "peer_file": peer_file,
        "peer_file_mb": round(peer["mb"], 1) if peer else None,
        "peer_peak_rss_mb": round(peer["peak_rss_mb"], 1) if peer else None,
        "peer_readings": peer["readings"] if peer else None,
    }
    for p in (big, small):
        p.unlink()
    os.rmdir(work)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
