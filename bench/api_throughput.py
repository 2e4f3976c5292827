"""Benchmark: the REST API under load, beside a minimal Starlette peer, in the same run.

Builds a campus (two tenants, one month of 15-minute data, October settled: two invoices)
in a SQLite file, starts ``kwhub serve --workers 2 --no-scheduler`` (uvicorn, access log
off as in the peer) and the peer (``bench/api_peer.py``, uvicorn, 2 workers), and loads
each with ``wrk`` (one thread, 32 connections) for ``--seconds`` per case:

* ``GET /api/v1/invoices/{id}`` with a tenant key (target: 1,000 requests/s on 2 cores);
* ``GET /api/v1/channels/{id}/readings`` for one month of 15-minute data, 2,976 intervals
  (target: 200 requests/s).

Prints requests/s and p50/p99 latency for kwhub and the peer; the last line is one JSON
object. Needs ``wrk`` (Debian: ``apt-get install wrk``).

    python bench/api_throughput.py [--seconds 20] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
START, END = "2026-10-01T00:00:00-04:00", "2026-11-01T00:00:00-04:00"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(folder: Path) -> tuple[Path, str, str]:
    """kwhub.toml, the database URL and a tenant key; October settled."""
    import tomli_w

    from kwhub.core.intervals import ChannelSeries, day_start_epoch
    from kwhub.hub.api.keys import create_key
    from kwhub.hub.api.serve import sync_reference
    from kwhub.hub.app import Hub

    url = f"sqlite:///{folder / 'kwhub.db'}"
    cfg = {
        "hub": {"name": "bench", "timezone": "America/New_York", "database": url},
        "sites": [{"id": "campus"}],
        "parties": [{"id": "op", "name": "Operator", "roles": ["operator"]},
                    {"id": "tenant_a", "name": "Hall A", "roles": ["tenant"]},
                    {"id": "tenant_b", "name": "Hall B", "roles": ["tenant"]}],
        "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 55000}],
        "channels": [{"id": "a.load", "party": "tenant_a", "role": "tenant_load", "direction": "received"},
                     {"id": "b.load", "party": "tenant_b", "role": "tenant_load", "direction": "received"},
                     {"id": "gt1.net", "asset": "gt1", "role": "generation"}],
        "contracts": [{"id": f"ppa-{x}", "seller": "op", "buyer": f"tenant_{x}", "load_channels": [f"{x}.load"],
                       "components": [{"kind": "fixed_energy", "price_per_mwh": "50"}]} for x in ("a", "b")],
        "service": {"access_log": False, "log_format": "json", "log_level": "warning"},
        "scheduler": {"enabled": False},
    }
    path = folder / "kwhub.toml"
    path.write_bytes(tomli_w.dumps(cfg).encode())
    with Hub.open(path) as hub:
        sync_reference(hub)
        first, last = date(2026, 10, 1), date(2026, 11, 1)
        starts = np.arange(day_start_epoch(first), day_start_epoch(last + timedelta(days=1)), 900, dtype=np.int64)
        rng = np.random.default_rng(1)
        series = [ChannelSeries(c, 15, starts, v, np.zeros(len(starts), np.uint8)) for c, v in
                  (("a.load", 100 + rng.random(len(starts))), ("b.load", 50 + rng.random(len(starts))),
                   ("gt1.net", 151 + rng.random(len(starts))))]
        hub.db.intervals.write_series(series, layer="validated")
        outcomes = hub.settle("2026-10", issue_date=date(2026, 11, 3))
        assert all(o.status == "issued" for o in outcomes), [o.error or o.held_reasons for o in outcomes]
        key = create_key(hub.db, role="tenant", party="tenant_a", days=30, max_days=366, actor="bench").token
        inv = next(o.invoice.id for o in outcomes if o.contract_id == "ppa-a")  # type: ignore[union-attr]
    return path, inv, key


def _wait(url: str, headers: dict[str, str] | None = None, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer 200")


def wrk(url: str, seconds: float, connections: int, header: str | None = None) -> dict[str, float]:
    """One ``wrk`` run (one client thread); ``client_cpu`` is the share of one core wrk used."""
    import resource

    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", url]
    if header:
        cmd[1:1] = ["-H", header]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    def lat(p: str) -> float:
        m = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": round(rps, 1), "p50_ms": lat("50"), "p99_ms": lat("99"),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "client_cpu": round(cpu / seconds, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (apt-get install wrk)")
    folder = Path(tempfile.mkdtemp(prefix="kwhub-api-bench-"))
    path, inv, key = build(folder)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kport, pport = _port(), _port()
    kwhub = subprocess.Popen([sys.executable, "-m", "kwhub.hub.cli.main", "serve", "--config", str(path), "--port",
                              str(kport), "--workers", str(args.workers), "--no-scheduler"], cwd=folder, env=env,
                             stdout=subprocess.DEVNULL, stderr=(folder / "serve.log").open("w"))
    peer = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.api_peer:app", "--port", str(pport),
                             "--workers", str(args.workers), "--no-access-log", "--log-level", "warning"],
                            cwd=ROOT, env={**env, "KWHUB_PEER_DB": f"sqlite:///{folder / 'kwhub.db'}"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    auth = f"Authorization: Bearer {key}"
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        k_inv = f"http://127.0.0.1:{kport}/api/v1/invoices/{inv}"
        k_read = (f"http://127.0.0.1:{kport}/api/v1/channels/a.load/readings?start={START.replace('+', '%2B')}"
                  f"&end={END}&limit=2976")
        p_inv = f"http://127.0.0.1:{pport}/invoices/{inv}"
        p_read = f"http://127.0.0.1:{pport}/readings/a.load?start={START}&end={END}"
        _wait(k_inv, {"Authorization": f"Bearer {key}"})
        _wait(p_inv)
        import httpx

        mine = httpx.get(k_read, headers={"Authorization": f"Bearer {key}"}).json()
        assert len(mine["kwh"]) == 2976 and mine == httpx.get(p_read).json(), "kwhub and the peer answer differently"
        load_before = os.getloadavg()
        for name, (k_url, p_url) in {"invoice": (k_inv, p_inv), "readings_month": (k_read, p_read)}.items():
            wrk(k_url, 3, args.connections, auth)  # warm up
            wrk(p_url, 3, args.connections)
            results[name] = {"kwhub": wrk(k_url, args.seconds, args.connections, auth),
                             "peer": wrk(p_url, args.seconds, args.connections)}
    finally:
        for p in (kwhub, peer):
            p.send_signal(signal.SIGTERM)
        for p in (kwhub, peer):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    targets = {"invoice": 1000, "readings_month": 200}
    load = [round(x, 2) for x in os.getloadavg()]
    for name, r in results.items():
        k, p = r["kwhub"], r["peer"]
        print(f"{name:15s} kwhub {k['rps']:8.1f} req/s p50 {k['p50_ms']:.2f} ms p99 {k['p99_ms']:.2f} ms "
              f"non-2xx {k['non_2xx']} | peer (Starlette) {p['rps']:8.1f} req/s p99 {p['p99_ms']:.2f} ms | "
              f"target {targets[name]} req/s: {'met' if k['rps'] >= targets[name] else 'NOT met'}")
    cpu = max(r[s]["client_cpu"] for r in results.values() for s in ("kwhub", "peer"))
    print(f"client: wrk -t1 -c{args.connections} (one thread; at most {cpu:.0%} of one core); server: uvicorn "
          f"{args.workers} workers on {os.cpu_count()} cores; load average {load_before[0]:.2f} before, "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} after")
    print(json.dumps({"workers": args.workers, "cores": os.cpu_count(), "seconds": args.seconds,
                      "connections": args.connections, "load_avg": load, **results}))


if __name__ == "__main__":
    main()
