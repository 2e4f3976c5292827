"""Benchmark: how long ``kwhub`` takes to start, beside ``python -c pass`` in the same run.

Issue 18: every command took about 1 s of CPU and 1.6-6.5 s of wall time, ``--help``
included, because every plugin was imported first. Targets on the project machine:
``kwhub --help`` and any ``kwhub CMD --help`` under 0.3 s, a read command on a small store
under 0.6 s. Each figure is the median wall time (and CPU time: user + system of the child)
of ``--runs`` fresh processes; the floor is the same interpreter doing nothing, so the
difference is kwhub's own start-up. The small store is built first in a temporary folder
(the embedded default configuration, one day of two channels ingested).

    python bench/cli_startup.py [--runs 7] [--keep] [--no-bytecode]

Byte code: ``pip install`` compiles an installed package's modules, so an operator's
``kwhub`` reads ``.pyc`` files. A source checkout run with ``PYTHONDONTWRITEBYTECODE=1``
(as on the project machine) compiles every imported kwhub module again in every process,
about 0.2 s of CPU that no installed copy pays. The children therefore get a byte-code
cache of their own in the temporary folder (``PYTHONPYCACHEPREFIX``, filled by the warm-up
run); ``--no-bytecode`` measures the compile-every-time case instead.

The read commands on a SQLite store (``readings``, ``invoices list``) query it with Python's
own ``sqlite3`` (:mod:`kwhub.hub.store.plain_read`): no SQLAlchemy, SQLModel or Alembic import.

The last line is one JSON object. ``python -X importtime -m kwhub.hub.cli.main CMD --help``
shows what a command imports.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "kwhub_long.csv"
HELP_TARGET_S = 0.3
READ_TARGET_S = 0.6


def kwhub_command() -> list[str]:
    """The installed console script beside this interpreter (what an operator runs)."""
    script = Path(sys.executable).with_name("kwhub")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kwhub.hub.cli.main"]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, child CPU seconds, exit code) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-400:]}")
    return wall, cpu, proc.returncode


def measure(cmd: list[str], cwd: Path, env: dict[str, str], runs: int) -> dict[str, float]:
    timed(cmd, cwd, env)  # warm the file cache once
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu, _code = timed(cmd, cwd, env)
        walls.append(wall)
        cpus.append(cpu)
    return {"wall_s": round(statistics.median(walls), 3), "cpu_s": round(statistics.median(cpus), 3)}


def build_store(work: Path, kwhub: list[str], env: dict[str, str]) -> None:
    """A small store: the embedded default configuration and one ingested CSV file."""
    shutil.copy(SAMPLE, work / "meter.csv")
    subprocess.run([*kwhub, "ingest", "meter.csv", "--adapter", "meters.csv", "--format", "json"], cwd=work,
                   env=env, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="fresh processes per figure (median)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary store")
    ap.add_argument("--no-bytecode", action="store_true",
                    help="children compile kwhub's modules in every run (PYTHONDONTWRITEBYTECODE kept)")
    args = ap.parse_args()

    kwhub = kwhub_command()
    work = Path(tempfile.mkdtemp(prefix="kwhub-startup-"))
    env = {k: v for k, v in os.environ.items() if k not in ("KWHUB_CONFIG", "KWHUB_DATABASE_URL")}
    if not args.no_bytecode:  # as installed: modules compiled once (see the module docs)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    try:
        build_store(work, kwhub, env)
        cases: list[tuple[str, list[str], float | None]] = [
            ("python -c pass", [sys.executable, "-c", "pass"], None),
            ("kwhub --help", [*kwhub, "--help"], HELP_TARGET_S),
            ("kwhub readings --help", [*kwhub, "readings", "--help"], HELP_TARGET_S),
            ("kwhub invoices list --help", [*kwhub, "invoices", "list", "--help"], HELP_TARGET_S),
            ("kwhub settle --help", [*kwhub, "settle", "--help"], HELP_TARGET_S),
            ("kwhub deliver --help", [*kwhub, "deliver", "--help"], HELP_TARGET_S),
            ("kwhub serve --help", [*kwhub, "serve", "--help"], HELP_TARGET_S),
            ("kwhub readings --summary (small store)", [*kwhub, "readings", "--summary"], READ_TARGET_S),
            ("kwhub readings CHANNEL (small store)",
             [*kwhub, "readings", "hall_a.load", "--start", "2024-03-01", "--format", "csv"], READ_TARGET_S),
            ("kwhub invoices list (small store)", [*kwhub, "invoices", "list"], READ_TARGET_S),
        ]
        results = []
        floor = None
        print(f"{'command':<42} {'wall s':>8} {'cpu s':>7} {'floor s':>8} {'target s':>9}  ok")
        for name, cmd, target in cases:
            fig = measure(cmd, work, env, args.runs)
            if floor is None:
                floor = fig
            ok = "" if target is None else ("yes" if fig["wall_s"] <= target else "NO")
            print(f"{name:<42} {fig['wall_s']:>8.3f} {fig['cpu_s']:>7.3f} {floor['wall_s']:>8.3f} "
                  f"{'' if target is None else f'{target:.1f}':>9}  {ok}")
            results.append({"command": name, **fig, "floor_wall_s": floor["wall_s"], "floor_cpu_s": floor["cpu_s"],
                            "target_s": target})
    finally:
        if args.keep:
            print(f"store kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(json.dumps({"bench": "cli_startup", "runs": args.runs, "bytecode": not args.no_bytecode,
                      "load_avg": os.getloadavg()[0],
                      "results": results}))


if __name__ == "__main__":
    main()
