"""Decode media bytes and turn them into the tensors detectors see (reference semantics).

Every public function here is a pure function of its input bytes and arguments: no files, no
globals that change between calls, no network. Each is safe on hostile bytes: the only exception a
malformed input raises is :class:`DecodeError`, work is bounded (a wall-clock deadline checked
between packets, caps on packets and decode errors), and no large array is allocated before its
size has been checked.

Semantics, per modality (docs/preprocessing.md has the details and the deviations):

- image: PIL ``open`` + ``convert("RGB")`` (first frame, no EXIF transpose, PIL's decompression-bomb
  limit), centered crop to the target aspect ratio, ``cv2.resize`` INTER_LINEAR, ``[3,H,W]`` uint8.
- video: PyAV sequential decode; the first T frames, or every ``round(fps/frame_rate)``-th frame
  from 0; padded by repeating the last frame; each frame cropped and resized like an image;
  ``[T,3,H,W]`` uint8.
- audio: PyAV decode, FFmpeg resampling to 16 kHz mono float32, centre crop or right zero-pad to
  96000 samples; no normalisation; ``[96000]`` float32.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Iterator

import cv2
import numpy as np

from gas.bench.types import AUDIO_SAMPLE_RATE, AUDIO_SAMPLES, PreprocessKey
from gas.types import Modality

# ---- limits ---------------------------------------------------------------------------------------

MAX_FRAMES = 64  # the reference clamps T at 64
PIL_DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # PIL raises past twice this (about 179 M pixels)
MAX_VIDEO_DIM = 8192  # per side, checked on the stream header and on every decoded frame
MAX_VIDEO_PIXELS = 8192 * 8192
MAX_VIDEO_ARRAY_BYTES = 2 << 30  # decode_video_frames keeps T full-size frames: cap their total
MAX_PACKETS = 1_000_000  # demuxed packets per file (hostile files made of empty packets)
MAX_DECODE_ERRORS = 200  # corrupt packets skipped before giving up on a file
AUDIO_IN_MEMORY_SAMPLES = AUDIO_SAMPLE_RATE * 60 * 20  # past 20 min: count first, then re-decode
MAX_AUDIO_SAMPLES = AUDIO_SAMPLE_RATE * 3600 * 6  # 6 h of decoded audio at most
DEFAULT_DEADLINE_S = 60.0  # soft wall-clock limit per decode (the pool also kills hung workers)

# PIL plugins that must never run on untrusted bytes: EPS hands the file to a Ghostscript subprocess.
_PIL_EXCLUDED_FORMATS = frozenset({"EPS"})
# Defence in depth: demuxers that open nested URLs (hls, concat, ...) get no protocol to open.
_AV_CONTAINER_OPTIONS = {"protocol_whitelist": "none"}


class DecodeError(ValueError):
    """A sample's bytes could not be turned into a tensor; ``str(err)`` is a short reason."""


# ---- shared geometry ------------------------------------------------------------------------------


def crop_box(h: int, w: int, height: int, width: int) -> tuple[int, int, int, int]:
    """The centered crop ``(top, left, crop_h, crop_w)`` with the target's aspect ratio.

    ``scale = min(h/H, w/W)``; the crop is ``round(scale*H) x round(scale*W)`` (Python's round,
    clamped to the image and to at least 1 px), offset by floor division.
    """
    scale = min(h / height, w / width)
    ch = min(max(1, round(scale * height)), h)
    cw = min(max(1, round(scale * width)), w)
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def center_crop_resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """HWC uint8 -> ``[height, width, C]``: centered aspect crop, then cv2 INTER_LINEAR (no antialias)."""
    if img.ndim != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise DecodeError(f"bad image shape {img.shape}")
    top, left, ch, cw = crop_box(img.shape[0], img.shape[1], height, width)
    crop = img[top : top + ch, left : left + cw]
    out = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)
    if out.ndim == 2:  # cv2 drops a trailing channel axis of size 1
        out = out[:, :, None]
    return out


def _check_size(height: int, width: int) -> None:
    if not (1 <= height <= 4096 and 1 <= width <= 4096):
        raise ValueError(f"target size {height}x{width} out of range")


# ---- image ----------------------------------------------------------------------------------------


def decode_image(data: bytes) -> np.ndarray:
    """Bytes -> HWC uint8 RGB, exactly as ``PIL.Image.open(...).convert("RGB")`` gives it.

    First frame of animations, no EXIF orientation fix. Images past PIL's decompression-bomb limit
    (2 x ``Image.MAX_IMAGE_PIXELS``, about 179 M pixels) are a :class:`DecodeError`.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise DecodeError("zero-length image")
    Image.init()
    formats = [f for f in Image.OPEN if f not in _PIL_EXCLUDED_FORMATS]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning and plugin chatter
            with Image.open(io.BytesIO(data), formats=formats) as im:
                # PIL's own check uses a module global other code may have changed (None disables it)
                if im.width * im.height > 2 * PIL_DEFAULT_MAX_IMAGE_PIXELS:
                    raise Image.DecompressionBombError("too many pixels")
                rgb = im.convert("RGB")
        arr = np.asarray(rgb)
    except Image.DecompressionBombError:
        raise DecodeError("image too large (decompression bomb limit)") from None
    except UnidentifiedImageError:
        raise DecodeError("unsupported or unrecognised image format") from None
    except MemoryError:
        raise DecodeError("image too large (out of memory)") from None
    except Exception as e:  # PIL plugins raise anything (OSError, SyntaxError, struct.error, ...)
        raise DecodeError(f"corrupt or truncated image ({type(e).__name__})") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise DecodeError(f"bad decoded image shape {arr.shape}")
    return arr


def preprocess_image(data: bytes, key: PreprocessKey) -> np.ndarray:
    """Image bytes -> ``[3,H,W]`` uint8."""
    _check_size(key.height, key.width)
    out = center_crop_resize(decode_image(data), key.height, key.width)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


# ---- PyAV helpers ---------------------------------------------------------------------------------


def _deadline(timeout_s: float | None) -> float:
    return time.monotonic() + (DEFAULT_DEADLINE_S if timeout_s is None else timeout_s)


def _check_deadline(t_end: float) -> None:
    if time.monotonic() > t_end:
        raise DecodeError("decode timeout")


def _open_container(data: bytes, what: str):
    import av

    if not data:
        raise DecodeError(f"zero-length {what}")
    try:
        return av.open(
            io.BytesIO(data),
            mode="r",
            container_options=dict(_AV_CONTAINER_OPTIONS),
            metadata_errors="ignore",
        )
    except MemoryError:
        raise DecodeError(f"{what} container needs too much memory") from None
    except Exception as e:
        raise DecodeError(f"unrecognised or corrupt {what} container ({type(e).__name__})") from None


def _decode_packets(container, stream, t_end: float) -> Iterator:
    """Decoded frames of one stream, in presentation order, with bounded work.

    A packet the decoder rejects is skipped (as FFmpeg's CLI does), up to MAX_DECODE_ERRORS; a
    demuxer error ends the stream (what was decoded so far is kept).
    """
    import av

    packets = errors = 0
    try:
        demux = container.demux(stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except av.error.FFmpegError:
                return
            packets += 1
            if packets > MAX_PACKETS:
                raise DecodeError("too many packets")
            _check_deadline(t_end)
            try:
                frames = packet.decode()
            except av.error.DecoderNotFoundError:
                raise
            except av.error.FFmpegError:
                errors += 1
                if errors > MAX_DECODE_ERRORS:
                    raise DecodeError("too many corrupt packets") from None
                continue
            yield from frames
    except DecodeError:
        raise
    except av.error.DecoderNotFoundError:
        raise DecodeError(f"unsupported codec ({_codec_name(stream)})") from None
    except MemoryError:
        raise DecodeError("out of memory while decoding") from None
    except Exception as e:
        raise DecodeError(f"corrupt stream ({type(e).__name__})") from None


def _codec_name(stream) -> str:
    try:
        return stream.codec_context.name
    except Exception:
        return "unknown"


def _configure_decoder(stream) -> None:
    try:
        cc = stream.codec_context
    except Exception as e:
        raise DecodeError(f"unsupported codec ({type(e).__name__})") from None
    if cc is None:
        raise DecodeError("unsupported codec (no decoder)")
    try:
        # One thread per decode: parallelism comes from the process pool, and frame threading
        # adds latency and memory per worker without changing the output.
        cc.thread_count = 1
        cc.thread_type = "SLICE"
    except Exception:
        pass


# ---- video ----------------------------------------------------------------------------------------


def video_step(fps: float | None, frame_rate: float | None) -> int:
    """Stride between selected frames: 1 at native rate, else ``max(1, round(fps/frame_rate))``.

    ``fps`` is the stream's average rate, with 30 when it is missing or not positive.
    """
    if frame_rate is None:
        return 1
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")
    f = 30.0 if not fps or fps <= 0 else float(fps)
    return max(1, round(f / frame_rate))


def _iter_video_frames(data: bytes, num_frames: int, frame_rate: float | None, timeout_s: float | None):
    """Yield the selected frames as HWC uint8 RGB arrays, at most ``num_frames`` of them."""
    if not 1 <= num_frames <= MAX_FRAMES:
        raise ValueError(f"num_frames must be in 1..{MAX_FRAMES}, got {num_frames}")
    t_end = _deadline(timeout_s)
    container = _open_container(data, "video")
    try:
        try:
            stream = container.streams.best("video")
        except Exception:
            stream = None
        if stream is None:
            raise DecodeError("no video stream")
        _configure_decoder(stream)
        cc = stream.codec_context
        if cc.width > MAX_VIDEO_DIM or cc.height > MAX_VIDEO_DIM:
            raise DecodeError(f"video frame too large ({cc.width}x{cc.height})")
        try:
            fps = float(stream.average_rate) if stream.average_rate else None
        except Exception:
            fps = None
        step = video_step(fps, frame_rate)
        index = got = 0
        size: tuple[int, int] | None = None  # later frames are scaled to the first frame's size
        for frame in _decode_packets(container, stream, t_end):
            w, h = frame.width, frame.height
            if w < 1 or h < 1 or w > MAX_VIDEO_DIM or h > MAX_VIDEO_DIM or w * h > MAX_VIDEO_PIXELS:
                raise DecodeError(f"video frame too large ({w}x{h})")
            if index % step == 0:
                if size is None:
                    size = (w, h)
                try:
                    arr = frame.to_ndarray(format="rgb24", width=size[0], height=size[1], threads=1)
                except Exception as e:
                    raise DecodeError(f"cannot convert video frame ({type(e).__name__})") from None
                yield arr
                got += 1
                if got >= num_frames:
                    return
            index += 1
            _check_deadline(t_end)
        if got == 0:
            raise DecodeError("zero-length video (no decodable frames)")
    finally:
        container.close()


def _pad_frames(frames: list[np.ndarray], num_frames: int) -> np.ndarray:
    if not frames:
        raise DecodeError("zero-length video (no decodable frames)")
    frames = frames + [frames[-1]] * (num_frames - len(frames))
    return np.stack(frames)


def decode_video_frames(
    data: bytes, num_frames: int, frame_rate: float | None = None, *, timeout_s: float | None = None
) -> np.ndarray:
    """Video bytes -> ``[T,h,w,3]`` uint8 RGB at the stream's resolution (selected and padded)."""
    frames: list[np.ndarray] = []
    total = 0
    for arr in _iter_video_frames(data, num_frames, frame_rate, timeout_s):
        total += arr.nbytes
        if total > MAX_VIDEO_ARRAY_BYTES or arr.nbytes * num_frames > MAX_VIDEO_ARRAY_BYTES:
            raise DecodeError("video too large to hold in memory")
        frames.append(arr)
    return _pad_frames(frames, num_frames)


def preprocess_video(data: bytes, key: PreprocessKey, *, timeout_s: float | None = None) -> np.ndarray:
    """Video bytes -> ``[T,3,H,W]`` uint8; frames are cropped and resized as they are decoded."""
    _check_size(key.height, key.width)
    frames = [
        center_crop_resize(f, key.height, key.width)
        for f in _iter_video_frames(data, key.num_frames, key.frame_rate, timeout_s)
    ]
    return np.ascontiguousarray(_pad_frames(frames, key.num_frames).transpose(0, 3, 1, 2))


# ---- audio ----------------------------------------------------------------------------------------


def _iter_audio_chunks(data: bytes, timeout_s: float | None) -> Iterator[np.ndarray]:
    """Mono float32 16 kHz chunks, resampled by FFmpeg (libswresample via PyAV's filter graph)."""
    import av

    t_end = _deadline(timeout_s)
    container = _open_container(data, "audio")
    try:
        try:
            stream = container.streams.best("audio")
        except Exception:
            stream = None
        if stream is None:
            raise DecodeError("no audio stream")
        _configure_decoder(stream)
        resampler = None
        template = None
        total = 0
        try:
            for frame in _decode_packets(container, stream, t_end):
                shape = (frame.format.name, frame.layout.name, frame.sample_rate)
                if shape[2] <= 0:
                    raise DecodeError("bad audio sample rate")
                if resampler is not None and shape != template:
                    # The input format changed mid-stream: flush the old conversion, start a new one.
                    for out in resampler.resample(None):
                        yield out.to_ndarray().reshape(-1)
                    resampler = None
                if resampler is None:
                    resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_SAMPLE_RATE)
                    template = shape
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    total += chunk.size
                    if total > MAX_AUDIO_SAMPLES:
                        raise DecodeError("audio too long")
                    yield chunk
            if resampler is not None:
                for out in resampler.resample(None):
                    yield out.to_ndarray().reshape(-1)
        except DecodeError:
            raise
        except MemoryError:
            raise DecodeError("out of memory while decoding audio") from None
        except Exception as e:
            raise DecodeError(f"corrupt audio stream ({type(e).__name__})") from None
    finally:
        container.close()


def decode_audio(data: bytes, *, timeout_s: float | None = None) -> np.ndarray:
    """Audio bytes -> the whole waveform, float32 mono 16 kHz (silence is valid; no samples is not).

    Up to 20 minutes are held in memory. A longer file is decoded twice: the first pass only counts
    samples, the second keeps the centre ``AUDIO_SAMPLES`` window that :func:`crop_or_pad` would cut,
    so the result equals ``crop_or_pad`` of the full decode without holding hours of audio.
    """
    chunks: list[np.ndarray] = []
    n = 0
    spilled = False
    for chunk in _iter_audio_chunks(data, timeout_s):
        n += chunk.size
        if not spilled:
            chunks.append(chunk)
            if n > AUDIO_IN_MEMORY_SAMPLES:
                spilled = True
                chunks = []
    if n == 0:
        raise DecodeError("zero-length audio (no decodable samples)")
    if not spilled:
        return np.concatenate(chunks).astype(np.float32, copy=False)
    # Second pass: keep only [start, start + AUDIO_SAMPLES) of the n samples.
    start = (n - AUDIO_SAMPLES) // 2
    out = np.empty(AUDIO_SAMPLES, np.float32)
    pos = filled = 0
    for chunk in _iter_audio_chunks(data, timeout_s):
        lo, hi = max(start, pos), min(start + AUDIO_SAMPLES, pos + chunk.size)
        if hi > lo:
            out[lo - start : hi - start] = chunk[lo - pos : hi - pos]
            filled += hi - lo
        pos += chunk.size
        if pos >= start + AUDIO_SAMPLES:
            break
    if filled != AUDIO_SAMPLES:
        raise DecodeError("audio decode is not repeatable")
    return out


def crop_or_pad(wave: np.ndarray) -> np.ndarray:
    """``[n]`` -> ``[96000]`` float32: centre crop at ``(n-96000)//2``, or zero-pad on the right."""
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    n = wave.size
    if n >= AUDIO_SAMPLES:
        start = (n - AUDIO_SAMPLES) // 2
        return np.ascontiguousarray(wave[start : start + AUDIO_SAMPLES])
    out = np.zeros(AUDIO_SAMPLES, np.float32)
    out[:n] = wave
    return out


def preprocess_audio(data: bytes, key: PreprocessKey | None = None, *, timeout_s: float | None = None) -> np.ndarray:
    """Audio bytes -> ``[96000]`` float32. Non-finite samples are a DecodeError (see the docs)."""
    out = crop_or_pad(decode_audio(data, timeout_s=timeout_s))
    if not np.isfinite(out).all():
        raise DecodeError("non-finite audio samples")
    return out


# ---- dispatch -------------------------------------------------------------------------------------


def decode_and_preprocess(data: bytes, key: PreprocessKey, *, timeout_s: float | None = None) -> np.ndarray:
    """Bytes -> the tensor ``key`` describes (``key.shape``, ``key.dtype``), or :class:`DecodeError`.

    ``key.aug`` (e.g. ``"robust-v1-s42"``) applies the robustness chain of gas.bench.augment to
    images and videos. Programming errors (a bad key) raise ``ValueError``, not DecodeError.
    """
    if key.aug:
        from gas.bench import augment

        out = augment.augment_and_preprocess(data, key, timeout_s=timeout_s)
    elif key.modality is Modality.IMAGE:
        out = preprocess_image(data, key)
    elif key.modality is Modality.VIDEO:
        out = preprocess_video(data, key, timeout_s=timeout_s)
    elif key.modality is Modality.AUDIO:
        out = preprocess_audio(data, key, timeout_s=timeout_s)
    else:  # pragma: no cover - Modality is closed
        raise ValueError(f"unknown modality {key.modality!r}")
    if out.shape != key.shape or out.dtype != np.dtype(key.dtype):
        raise DecodeError(f"preprocessed shape {out.shape} {out.dtype} != {key.shape} {key.dtype}")
    return out
