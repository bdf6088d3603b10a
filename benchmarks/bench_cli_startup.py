"""How long `gascli --help` takes, as a user sees it (a fresh process each time).

Target (shared/PERFORMANCE.md): under 1 s. Run: .venv/bin/python benchmarks/bench_cli_startup.py
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GASCLI = REPO / ".venv" / "bin" / "gascli"


def main(repeats: int = 15) -> None:
    cmds = {
        "gascli --help": [str(GASCLI), "--help"],
        "gascli version": [str(GASCLI), "version"],
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
    }
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'command':28s} {'median s':>9s} {'min s':>7s} {'max s':>7s}")
    for name, cmd in cmds.items():
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - t0)
        print(f"{name:28s} {statistics.median(times):9.3f} {min(times):7.3f} {max(times):7.3f}")


if __name__ == "__main__":
    main()
