"""TaskStore.create latency and TaskEngine.submit throughput (the per-request cost the miner's server pays).

    .venv/bin/python benchmarks/bench_task_store.py [--n 20000] [--dir /tmp/x]

Prints median / p99 / max of ``create`` under ``synchronous=NORMAL`` (the default) and ``FULL``,
and ``submit`` calls per second on a running engine whose workers are busy (so the figure is the
intake cost alone: durable insert + enqueue).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model

from gas.generation.engine import TaskEngine
from gas.generation.task_store import TaskStore

URL = "http://10.0.0.1:8092/generative_callback"
HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
PROMPT = "A photorealistic image of a red fox in a snowy forest at dawn, soft light, 85mm lens " * 2


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))]


def bench_create(root: Path, n: int, synchronous: str) -> dict:
    with TaskStore(root / f"create-{synchronous}.db", synchronous=synchronous) as store:
        for _ in range(500):
            store.create("image", PROMPT, {"resolution": "1024x1024"}, URL, HOTKEY)
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            store.create("image", PROMPT, {"resolution": "1024x1024"}, URL, HOTKEY)
            lat.append(time.perf_counter() - t0)
    return {
        "synchronous": synchronous,
        "n": n,
        "median_us": round(pct(lat, 0.5) * 1e6, 1),
        "p99_us": round(pct(lat, 0.99) * 1e6, 1),
        "max_us": round(max(lat) * 1e6, 1),
        "per_s": round(n / sum(lat)),
    }


class _Busy:
    name = "busy"
    modalities = frozenset({"image", "video"})

    def unavailable_reason(self) -> None:
        return None

    async def generate(self, request, checkpoint):
        await asyncio.sleep(3600)


class _Services:
    def for_modality(self, modality: str) -> _Busy:
        return _Busy()


async def bench_submit(root: Path, n: int) -> dict:
    store = TaskStore(root / "submit.db")
    engine = TaskEngine(store, _Services(), webhooks=None, max_concurrent=5)  # type: ignore[arg-type]
    await engine.start()
    t0 = time.perf_counter()
    for i in range(n):
        engine.submit("image", PROMPT, {"resolution": "1024x1024", "i": i}, URL, HOTKEY)
    elapsed = time.perf_counter() - t0
    await engine.stop()
    store.close()
    return {"n": n, "submits_per_s": round(n / elapsed), "mean_us": round(elapsed / n * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        out = {
            "machine": cpu_model(),
            "create": [bench_create(root, args.n, "NORMAL"), bench_create(root, min(args.n, 2000), "FULL")],
            "submit": asyncio.run(bench_submit(root, args.n)),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
