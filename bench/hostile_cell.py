"""Benchmark: a meter file with one 256 MiB cell, refused in bounded time and memory.

Issue 10's probe: a CSV with a 256 MiB bad cell took 6 GB, 179 s and echoed the whole
cell. This writes such a file (a CSV value cell, and a Green Button ``<value>``), reads each
in a fresh subprocess with the adapter (peak RSS of that process, seconds to the error,
length of the message), and, as the peer, ``pandas.read_csv`` of the same CSV with a
1.5 GiB address-space cap and a 60 s timeout (what the parser did before the first pass
existed). Targets: peak under 300 MB, error under 5 s. The last line is one JSON object.

    python bench/hostile_cell.py [--mib 256] [--no-peer] [--keep]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = b"9" * (1 << 20)


def write_csv(path: Path, mib: int) -> None:
    with path.open("wb") as fh:
        fh.write(b"channel_id,interval_start,interval_minutes,kwh\nm,2024-01-01T00:00:00Z,15,1\n"
                 b"m,2024-01-01T00:15:00Z,15,")
        for _ in range(mib):
            fh.write(BLOCK)
        fh.write(b"x\n")


def write_xml(path: Path, mib: int) -> None:
    with path.open("wb") as fh:
        fh.write(b'<?xml version="1.0"?>\n<feed xmlns="http://www.w3.org/2005/Atom" xmlns:espi="http://naesb.org/espi">'
                 b"<entry><content><espi:IntervalBlock><espi:IntervalReading><espi:timePeriod>"
                 b"<espi:duration>900</espi:duration><espi:start>1704067200</espi:start></espi:timePeriod><espi:value>")
        for _ in range(mib):
            fh.write(BLOCK)
        fh.write(b"</espi:value></espi:IntervalReading></espi:IntervalBlock></content></entry></feed>\n")


def child(kind: str, path: str) -> None:
    """Read once in this process; print seconds, peak RSS and the error message length."""
    sys.path.insert(0, str(ROOT))
    t = time.perf_counter()
    outcome, message = "read", ""
    try:
        if kind == "csv":
            from kwhub.plugins.meters.csv_meter import CsvMeter

            CsvMeter("bench").read_file(Path(path))
        elif kind == "greenbutton":
            from kwhub.plugins.meters.greenbutton import GreenButtonMeter

            GreenButtonMeter("bench").read_file(Path(path))
        else:
            resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))
            import numpy as np
            import pandas as pd

            pd.read_csv(path, dtype={"kwh": np.float64})
    except Exception as exc:  # noqa: BLE001  (the outcome is what is measured)
        outcome, message = type(exc).__name__, str(exc)
    # VmHWM: this process image's own peak (ru_maxrss would carry the launching process's over the exec)
    hwm_kb = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:"))
    print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": hwm_kb / 1024,
        "outcome": outcome, "message_chars": len(message),
        "message": message[:300]}))


def run(kind: str, path: Path, timeout: float) -> dict:
    try:
        out = subprocess.run([sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True,
                             timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"outcome": f"timeout after {timeout:.0f} s"}
    lines = out.stdout.strip().splitlines()
    if not lines:
        return {"outcome": f"exit {out.returncode}", "stderr": out.stderr[-300:]}
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    work = Path(tempfile.mkdtemp(prefix="kwhub_bench_cell_"))
    try:
        csv_path, xml_path = work / "cell.csv", work / "cell.xml"
        write_csv(csv_path, args.mib)
        write_xml(xml_path, args.mib)
        result: dict = {"cell_mib": args.mib}
        for kind, path in (("csv", csv_path), ("greenbutton", xml_path)):
            r = run(kind, path, 120)
            result[kind] = r
            print(f"ours {kind}: {r.get('outcome')} in {r.get('seconds', float('nan')):.2f} s, peak RSS "
                  f"{r.get('peak_rss_mb', float('nan')):.0f} MB, message {r.get('message_chars')} chars: "
                  f"{r.get('message', '')[:160]}")
        if not args.no_peer:
            r = run("peer", csv_path, 60)
            result["peer"] = {**r, "what": "pandas.read_csv, 1.5 GiB address space, 60 s"}
            print(f"peer pandas.read_csv: {r.get('outcome')} in {r.get('seconds', float('nan')):.2f} s, peak RSS "
                  f"{r.get('peak_rss_mb', float('nan')):.0f} MB, message {r.get('message_chars')} chars")
        ok = all(result[k].get("seconds", 1e9) < 5 and result[k].get("peak_rss_mb", 1e9) < 300
                 and result[k].get("outcome") == "IntervalDataError" for k in ("csv", "greenbutton"))
        result["targets_met"] = ok
        print(json.dumps(result))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
