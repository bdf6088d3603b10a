"""Decode + preprocess throughput for images (a script, not a test).

    .venv/bin/python benchmarks/bench_decode.py [--n 512] [--workers 0,1,2] [--threads 2] [--repeats 3]

The workload follows shared/PERFORMANCE.md: JPEGs made from skimage's bundled photos by random crops
and rescales (about 0.8 MP, quality 90), preprocessed to 224 x 224 with the reference semantics.

Rows:
- ``threads=N``: the reference harness's shape of work (PIL + cv2 in a thread pool), as a baseline;
- ``workers=W cold``: DecodePool, empty tensor cache (decode + preprocess + cache write);
- ``workers=W no cache``: DecodePool without a cache;
- ``workers=W no cache, tensors via pipe``: the same, tensors pickled back instead of shared slots;
- ``workers=W warm``: the same samples again, every one a cache hit (the second-model case).
``img/s`` excludes the pool's start-up (spawn + imports), reported on its own; ``img/s incl.``
includes it. Best of ``--repeats`` runs. ``--video`` adds a PyAV-vs-OpenCV pixel comparison for
video frames (the decode-library difference docs/preprocessing.md reports).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from gas.bench.decode_pool import DecodePool
from gas.bench.preprocess import decode_and_preprocess, decode_video_frames
from gas.bench.tensor_cache import TensorCache
from gas.bench.types import PreprocessKey, Sample
from gas.types import MediaLabel, Modality
from machine import cpu_model  # benchmarks/machine.py (the script's own folder)

KEY = PreprocessKey(Modality.IMAGE, 224, 224)




def machine_info() -> str:
    import av
    import cv2
    import PIL

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu_model()}, {cores} cores, Python {platform.python_version()}, numpy {np.__version__}, "
        f"Pillow {PIL.__version__}, cv2 {cv2.__version__}, PyAV {av.__version__}"
    )


def make_dataset(root: Path, n: int, seed: int = 34) -> tuple[list[Sample], float, float]:
    """n JPEGs of about 0.8 MP (0.5-1.1 MP, mixed aspect ratios); returns samples, mean MP, mean KB."""
    from media_fixtures import encode_image, photo

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    samples, mps, kbs = [], [], []
    for i in range(n):
        mp = rng.uniform(0.5, 1.1) * 1e6
        aspect = rng.choice([0.75, 1.0, 4 / 3, 1.5, 16 / 9])
        h = int(np.sqrt(mp / aspect))
        w = int(h * aspect)
        data = encode_image(photo(int(rng.integers(0, 1 << 30)), (h, w)), "JPEG", quality=90)
        path = root / f"img_{i:05d}.jpg"
        path.write_bytes(data)
        samples.append(
            Sample(f"img_{i:05d}", "bench", Modality.IMAGE, MediaLabel.REAL, path, hashlib.sha256(data).hexdigest())
        )
        mps.append(h * w / 1e6)
        kbs.append(len(data) / 1e3)
    return samples, float(np.mean(mps)), float(np.mean(kbs))


def run_threads(samples: list[Sample], threads: int) -> float:
    def one(s: Sample):
        return decode_and_preprocess(s.path.read_bytes(), KEY)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        for _ in ex.map(one, samples):
            pass
    return time.perf_counter() - t0


def run_pool(
    samples: list[Sample], workers: int, cache: TensorCache | None, slots: bool = True
) -> tuple[float, float, int]:
    """(start-up seconds, decode seconds, errors)."""
    t0 = time.perf_counter()
    with DecodePool(workers=workers, cache=cache) as pool:
        pool.use_slots = slots
        pool.warmup()
        t1 = time.perf_counter()
        errors = sum(1 for _, out, _ in pool.imap(samples, KEY) if not isinstance(out, np.ndarray))
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, errors


def video_parity(tmp: Path) -> str:
    """Mean |PyAV - OpenCV| over decoded frames of a few H.264 clips (both from FFmpeg, different builds)."""
    import cv2
    from media_fixtures import make_clip

    diffs = []
    for seed in range(4):
        data = make_clip(16, (240, 320), fps=25, seed=seed)
        ours = decode_video_frames(data, 16)
        p = tmp / f"clip{seed}.mp4"
        p.write_bytes(data)
        cap = cv2.VideoCapture(str(p))
        theirs = []
        while len(theirs) < 16:
            ok, bgr = cap.read()
            if not ok:
                break
            theirs.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        cap.release()
        if len(theirs) != 16:
            return "OpenCV could not decode the test clips"
        d = np.abs(ours.astype(np.int16) - np.stack(theirs)).astype(np.float64)
        diffs.append((d.mean(), d.max(), (d == 0).mean()))
    m = np.array(diffs)
    return (
        f"video frames, PyAV vs cv2.VideoCapture (H.264 4:2:0, 4 clips x 16 frames): "
        f"mean |d| {m[:, 0].mean():.3f}, max {m[:, 1].max():.0f}, identical values {100 * m[:, 2].mean():.1f}%"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--video", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_decode_"))
    try:
        print(f"machine: {machine_info()}")
        t = time.perf_counter()
        samples, mp, kb = make_dataset(tmp / "data", args.n)
        print(f"workload: {args.n} JPEGs, mean {mp:.2f} MP, {kb:.0f} KB (made in {time.perf_counter() - t:.1f} s)")
        rows = []
        n = len(samples)
        if args.threads:
            best = min(run_threads(samples, args.threads) for _ in range(args.repeats))
            rows.append((f"threads={args.threads} (reference shape)", 0.0, best, 0))
        for w in [int(x) for x in args.workers.split(",")]:
            cold, nocache, warm, pipe = [], [], [], []
            for r in range(args.repeats):
                root = tmp / f"cache_{w}_{r}"
                cache = TensorCache(root, 8 << 30)
                cold.append(run_pool(samples, w, cache))
                warm.append(run_pool(samples, w, TensorCache(root, 8 << 30)))
                nocache.append(run_pool(samples, w, None))
                if w > 0:
                    pipe.append(run_pool(samples, w, None, slots=False))
                shutil.rmtree(root)
            cases = [("cold", cold), ("no cache", nocache), ("no cache, tensors via pipe", pipe), ("warm", warm)]
            for name, res in [c for c in cases if c[1]]:
                startup, dt, errors = min(res, key=lambda x: x[1])
                rows.append((f"workers={w} {name}", startup, dt, errors))
        print()
        print("| case | start-up s | decode s | img/s | img/s incl. start-up | errors |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, startup, dt, errors in rows:
            print(f"| {name} | {startup:.2f} | {dt:.3f} | {n / dt:,.0f} | {n / (dt + startup):,.0f} | {errors} |")
        if args.video:
            print()
            print(video_parity(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
