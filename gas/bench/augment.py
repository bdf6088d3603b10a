"""The robustness pass: re-compress and rescale a sample before the base crop + resize.

Images and videos only (audio has no robustness pass). The chains have no random draws: the
output is a pure function of the bytes and the target size, so a pass is deterministic for any
``(sample, seed)``. The seed names the pass (which samples it picks, and its cache key).

``PreprocessKey.aug`` format: ``"robust-v1-s<seed>"``, e.g. ``"robust-v1-s42"``. ``v1`` is the chain
version (bump it when the chain's output changes); ``<seed>`` is the pass seed, a non-negative
integer. The reference's per-sample seed is ``seed + sample_index`` (:func:`sample_seed`).

Image chain, on the decoded RGB image:
  1. downscale x0.5 (INTER_AREA), then back to the original size (INTER_LINEAR); each side is
     floored at 256 px and the step is skipped unless both sides shrink;
  2. JPEG q=55, 4:2:0; 3. WebP q=75, method 4 (skipped if Pillow lacks WebP); 4. JPEG q=80, 4:2:0;
  5. the base centered crop + INTER_LINEAR resize.
Video chain, on the selected (and padded) frames:
  1. per frame, downscale x0.5 (INTER_AREA), same floor and skip rule, not scaled back up;
  2. trim to even height and width; 3. H.264 round trip in memory (libx264, crf 23, yuv420p,
     25 fps, one encoder thread and x264's bit-exact code paths, so the bitstream is the same on
     every call and every machine);
  4. the base crop + resize per frame.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import cv2
import numpy as np

from gas.bench.preprocess import (
    DecodeError,
    _check_size,
    _iter_video_frames,
    _pad_frames,
    center_crop_resize,
    decode_image,
)
from gas.bench.types import PreprocessKey
from gas.types import Modality

AUG_NAME = "robust"
AUG_VERSION = 1
DEFAULT_AUG_SEED = 42  # the reference's pass seed when none is given
_AUG_RE = re.compile(r"^robust-v(\d+)-s(\d{1,18})$")

DOWNSCALE_FACTOR = 0.5
DOWNSCALE_FLOOR = 256
IMAGE_JPEG_QUALITIES = (55, 80)
WEBP_QUALITY = 75
WEBP_METHOD = 4
H264_CRF = 23
H264_FPS = 25
# One thread, and only x264's bit-exact code paths: its default SIMD macroblock-tree code is not
# bit-exact and, as measured here, not even repeatable within one process (it reads uninitialised
# memory), so the same frames could encode differently on each call. ``cpu-independent`` gives
# the output of x264's C code on every machine, at SIMD speed.
X264_OPTIONS = {"threads": "1", "x264-params": "cpu-independent=1"}


@dataclass(frozen=True)
class AugSpec:
    """A parsed ``PreprocessKey.aug`` value."""

    seed: int
    version: int = AUG_VERSION

    @property
    def key(self) -> str:
        return f"{AUG_NAME}-v{self.version}-s{self.seed}"


def aug_key(seed: int = DEFAULT_AUG_SEED) -> str:
    """The ``PreprocessKey.aug`` value of the robustness pass with ``seed``."""
    if seed < 0:
        raise ValueError("aug seed must be non-negative")
    return AugSpec(seed).key


def parse_aug(aug: str) -> AugSpec:
    """``"robust-v1-s42"`` -> ``AugSpec(seed=42)``; anything else is a ValueError."""
    m = _AUG_RE.match(aug)
    if not m:
        raise ValueError(f"unknown augmentation {aug!r} (expected 'robust-v{AUG_VERSION}-s<seed>')")
    version, seed = int(m.group(1)), int(m.group(2))
    if version != AUG_VERSION:
        raise ValueError(f"augmentation version v{version} is not supported (this build has v{AUG_VERSION})")
    return AugSpec(seed=seed, version=version)


def sample_seed(pass_seed: int, sample_index: int) -> int:
    """The reference's per-sample seed. The v1 chains draw nothing random, so it changes no pixel."""
    return pass_seed + sample_index


# ---- steps ----------------------------------------------------------------------------------------


def _half_size(h: int, w: int) -> tuple[int, int] | None:
    """Target (h, w) of the x0.5 step, or None when it does not shrink both sides."""
    nh = max(DOWNSCALE_FLOOR, int(h * DOWNSCALE_FACTOR))
    nw = max(DOWNSCALE_FLOOR, int(w * DOWNSCALE_FACTOR))
    if nh < h and nw < w:
        return nh, nw
    return None


def downscale_upscale(img: np.ndarray) -> np.ndarray:
    """x0.5 INTER_AREA, then back to the original size INTER_LINEAR (or unchanged, see module doc)."""
    h, w = img.shape[:2]
    half = _half_size(h, w)
    if half is None:
        return img
    small = cv2.resize(img, (half[1], half[0]), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def downscale(img: np.ndarray) -> np.ndarray:
    """x0.5 INTER_AREA with the same floor and skip rule, not scaled back up (video frames)."""
    half = _half_size(*img.shape[:2])
    if half is None:
        return img
    return cv2.resize(img, (half[1], half[0]), interpolation=cv2.INTER_AREA)


def _pil_roundtrip(img: np.ndarray, fmt: str, **options) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **options)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` with forced 4:2:0 chroma subsampling and decode again."""
    return _pil_roundtrip(img, "JPEG", quality=quality, subsampling=2)


def webp_available() -> bool:
    from PIL import features

    return bool(features.check("webp"))


def webp_roundtrip(img: np.ndarray, quality: int = WEBP_QUALITY) -> np.ndarray:
    """Lossy WebP at ``quality`` (method 4) and back; unchanged when Pillow lacks WebP."""
    if not webp_available():
        return img
    return _pil_roundtrip(img, "WEBP", quality=quality, method=WEBP_METHOD)


def robust_image(img: np.ndarray) -> np.ndarray:
    """Steps 1-4 of the image chain on an HWC uint8 RGB image (same size out)."""
    img = downscale_upscale(img)
    img = jpeg_roundtrip(img, IMAGE_JPEG_QUALITIES[0])
    img = webp_roundtrip(img)
    return jpeg_roundtrip(img, IMAGE_JPEG_QUALITIES[1])


def h264_roundtrip(frames: np.ndarray, crf: int = H264_CRF, fps: int = H264_FPS) -> np.ndarray:
    """``[T,h,w,3]`` uint8 (even h, w) -> the same frames after libx264 encode + decode, in memory."""
    import av

    t, h, w = frames.shape[:3]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options=dict(X264_OPTIONS, crf=str(crf)))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1
        for f in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            # The ffmpeg CLI's auto-inserted scaler converts rgb24 -> yuv420p with bicubic flags.
            vf = vf.reformat(format="yuv420p", interpolation="BICUBIC", threads=1)
            for p in stream.encode(vf):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    buf.seek(0)
    decoded = []
    with av.open(buf, mode="r") as inp:
        vs = inp.streams.video[0]
        vs.codec_context.thread_count = 1
        for frame in inp.decode(vs):
            decoded.append(frame.to_ndarray(format="rgb24", interpolation="BICUBIC", threads=1))
    if not decoded:  # pragma: no cover - x264 always returns what it was given
        raise DecodeError("H.264 round trip returned no frames")
    decoded = decoded[:t] + [decoded[-1]] * (t - len(decoded))
    return np.stack(decoded)


def robust_video(frames: np.ndarray) -> np.ndarray:
    """Steps 2-3 of the video chain on already downscaled ``[T,h,w,3]`` frames."""
    h, w = frames.shape[1:3]
    he, we = h - h % 2, w - w % 2
    if he < 2 or we < 2:  # too small for 4:2:0: nothing to round-trip
        return frames
    return h264_roundtrip(np.ascontiguousarray(frames[:, :he, :we]))


# ---- whole passes ---------------------------------------------------------------------------------


def augment_image(data: bytes, key: PreprocessKey) -> np.ndarray:
    """Image bytes -> ``[3,H,W]`` uint8 through the image chain."""
    _check_size(key.height, key.width)
    img = robust_image(decode_image(data))
    out = center_crop_resize(img, key.height, key.width)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def augment_video(data: bytes, key: PreprocessKey, *, timeout_s: float | None = None) -> np.ndarray:
    """Video bytes -> ``[T,3,H,W]`` uint8 through the video chain (frames downscaled as decoded)."""
    _check_size(key.height, key.width)
    frames = [downscale(f) for f in _iter_video_frames(data, key.num_frames, key.frame_rate, timeout_s)]
    rt = robust_video(_pad_frames(frames, key.num_frames))
    out = np.stack([center_crop_resize(f, key.height, key.width) for f in rt])
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def augment_and_preprocess(data: bytes, key: PreprocessKey, *, timeout_s: float | None = None) -> np.ndarray:
    """Dispatch of :func:`gas.bench.preprocess.decode_and_preprocess` when ``key.aug`` is set."""
    parse_aug(key.aug or "")
    if key.modality is Modality.IMAGE:
        return augment_image(data, key)
    if key.modality is Modality.VIDEO:
        return augment_video(data, key, timeout_s=timeout_s)
    raise ValueError(f"{key.modality.value} has no robustness augmentation")
