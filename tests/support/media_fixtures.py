"""Builders for real media bytes (JPEG/PNG photos, H.264 clips, WAV) and test decoders.

Everything is made in memory from skimage's bundled photos or synthetic signals, deterministic for
its arguments (x264 runs single-threaded so its bitstream does not depend on the machine's cores).
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "retina", "hubble_deep_field")


def photo(seed: int, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A ``size`` (h, w) HWC uint8 RGB crop of one of skimage's bundled photos, rescaled to fit."""
    import cv2
    import skimage.data

    rng = np.random.default_rng(seed)
    src = getattr(skimage.data, _PHOTOS[seed % len(_PHOTOS)])()
    if src.ndim == 2:
        src = np.repeat(src[:, :, None], 3, axis=2)
    src = src[:, :, :3]
    h, w = size
    sh, sw = src.shape[:2]
    # random crop with the target's aspect ratio covering 60-100% of the limiting side
    scale = min(sh / h, sw / w) * rng.uniform(0.6, 1.0)
    ch, cw = max(1, int(h * scale)), max(1, int(w * scale))
    top = int(rng.integers(0, sh - ch + 1))
    left = int(rng.integers(0, sw - cw + 1))
    crop = np.ascontiguousarray(src[top : top + ch, left : left + cw])
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA if scale > 1 else cv2.INTER_CUBIC)


def encode_image(img: np.ndarray, fmt: str = "JPEG", **options) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **options)
    return buf.getvalue()


def make_jpeg(seed: int, size: tuple[int, int] = (480, 640), quality: int = 90) -> bytes:
    """A baseline JPEG (4:2:0) of ``photo(seed, size)``."""
    return encode_image(photo(seed, size), "JPEG", quality=quality)


def make_png(seed: int, size: tuple[int, int] = (480, 640)) -> bytes:
    return encode_image(photo(seed, size), "PNG")


def gray_frame_value(i: int) -> int:
    """Grey level of frame ``i`` in :func:`make_index_clip` (16 + 6*i, mod 224)."""
    return 16 + (6 * i) % 224


def frame_index(frame: np.ndarray) -> int:
    """Inverse of :func:`gray_frame_value` for a decoded frame (mean grey, valid for i < 37)."""
    return int(round((float(frame.mean()) - 16) / 6))


def encode_clip(
    frames: Sequence[np.ndarray] | np.ndarray,
    fps: int = 25,
    codec: str = "libx264",
    container: str = "mp4",
    crf: int = 18,
    pix_fmt: str = "yuv420p",
) -> bytes:
    """Encode THWC uint8 RGB frames into a clip held in memory."""
    import av

    frames = list(frames)
    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        # x264's default SIMD mb-tree is not repeatable (see gas.bench.augment.X264_OPTIONS)
        opts = {"crf": str(crf), "threads": "1", "x264-params": "cpu-independent=1"} if codec == "libx264" else {}
        stream = out.add_stream(codec, rate=fps, options=opts)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if codec == "libx264":
            stream.codec_context.thread_count = 1
        for f in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            for p in stream.encode(vf):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    return buf.getvalue()


def make_index_clip(n_frames: int, size: tuple[int, int] = (64, 96), fps: int = 30) -> bytes:
    """An H.264 clip whose frame ``i`` is uniform grey ``gray_frame_value(i)`` (lossless-ish, crf 0)."""
    h, w = size
    frames = [np.full((h, w, 3), gray_frame_value(i), np.uint8) for i in range(n_frames)]
    return encode_clip(frames, fps=fps, crf=0)


def make_clip(
    n_frames: int = 12, size: tuple[int, int] = (120, 160), fps: int = 25, seed: int = 0
) -> bytes:
    """An H.264 clip (crf 18) panning across a skimage photo: real texture, real motion."""
    base = photo(seed, (size[0] * 2, size[1] * 2))
    h, w = size
    frames = []
    for i in range(n_frames):
        dy, dx = (3 * i) % h, (5 * i) % w
        frames.append(base[dy : dy + h, dx : dx + w])
    return encode_clip(frames, fps=fps)


def make_wav(
    seconds: float,
    sr: int = 16_000,
    channels: int = 1,
    freq: float = 440.0,
    amplitude: float = 0.5,
    subtype: str = "PCM_16",
    signal: np.ndarray | None = None,
) -> bytes:
    """A WAV file of a sine (or of ``signal``, shape [n] or [n, channels]) made with soundfile."""
    import soundfile as sf

    if signal is None:
        t = np.arange(int(round(seconds * sr))) / sr
        mono = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        signal = np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono
    buf = io.BytesIO()
    sf.write(buf, signal, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def ramp_wav(n: int, sr: int = 16_000) -> bytes:
    """A float32 mono WAV whose sample ``i`` is ``i / 2**20`` (exact in float32): position-coded."""
    return make_wav(0, sr=sr, subtype="FLOAT", signal=(np.arange(n, dtype=np.float64) / 2**20).astype(np.float32))


def write_samples(root: Path, blobs: Sequence[bytes], modality, dataset: str = "fixture", suffix: str = ".bin"):
    """Write ``blobs`` under ``root`` and return their ``Sample``s (ids ``s000``, ``s001``, ...)."""
    from gas.bench.types import Sample
    from gas.types import MediaLabel

    root.mkdir(parents=True, exist_ok=True)
    samples = []
    for i, blob in enumerate(blobs):
        path = root / f"s{i:03d}{suffix}"
        path.write_bytes(blob)
        samples.append(
            Sample(
                sample_id=f"s{i:03d}",
                dataset=dataset,
                modality=modality,
                label=MediaLabel.REAL if i % 2 == 0 else MediaLabel.SYNTHETIC,
                path=path,
                sha256=hashlib.sha256(blob).hexdigest(),
            )
        )
    return samples


# ---- decoders for DecodePool's test hook (module level so worker processes can import them) -----


def hanging_decoder(data: bytes, key):
    """Sleeps (effectively forever) on bytes starting with b"HANG"; decodes normally otherwise."""
    from gas.bench.preprocess import decode_and_preprocess

    if data.startswith(b"HANG"):
        time.sleep(3600)
    return decode_and_preprocess(data, key)


def exploding_decoder(data: bytes, key):
    """Fails the test if it is ever called (proves a cache hit skipped decoding)."""
    raise AssertionError("decoder called")


def crashing_decoder(data: bytes, key):
    """Kills its own process on bytes starting with b"CRASH" (a segfaulting codec, as seen from outside)."""
    import os

    from gas.bench.preprocess import decode_and_preprocess

    if data.startswith(b"CRASH"):
        os._exit(1)
    return decode_and_preprocess(data, key)


def tiny_decoder(data: bytes, key):
    """Returns a 2x2 array whatever the key says (a decoder whose output does not fit the slots)."""
    return np.full((2, 2), len(data) % 251, np.uint8)


def failing_worker_init() -> None:
    """A decode-worker initializer that fails as a missing codec module would (spawned workers)."""
    raise ModuleNotFoundError("No module named 'av'")
