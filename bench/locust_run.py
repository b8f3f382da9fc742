"""One headless Locust run for the benchmarks: its aggregated statistics and its CPU, sampled
once a second (Locust reports requests and percentiles, not what they cost the generator)."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import psutil


def run_locust(locustfile: Path, url: str, *, users: int, seconds: int, prefix: Path, log: Path,
               env: dict[str, str] | None = None) -> tuple[dict[str, str], list[float]]:
    """(the "Aggregated" row of Locust's stats CSV, CPU % samples of its process)."""
    argv = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", url,
            "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{seconds}s",
            "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        p = psutil.Process(proc.pid)
        p.cpu_percent(None)
        samples = []
        while proc.poll() is None:
            time.sleep(1.0)
            try:
                samples.append(p.cpu_percent(None))
            except psutil.NoSuchProcess:
                break
    if proc.returncode != 0:
        raise RuntimeError(f"locust exited {proc.returncode}; see {log}")
    with open(f"{prefix}_stats.csv") as f:
        return next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated"), samples
