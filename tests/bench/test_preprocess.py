"""Decode + preprocess: reference semantics pinned on real bytes, geometry by hand, hostile input."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media_fixtures import (
    encode_clip,
    encode_image,
    frame_index,
    gray_frame_value,
    make_clip,
    make_index_clip,
    make_jpeg,
    make_png,
    make_wav,
    photo,
    ramp_wav,
)
from PIL import Image

from gas.bench import preprocess as pp
from gas.bench.preprocess import (
    DecodeError,
    center_crop_resize,
    crop_box,
    crop_or_pad,
    decode_and_preprocess,
    decode_audio,
    decode_image,
    decode_video_frames,
    preprocess_audio,
    preprocess_image,
    preprocess_video,
    video_step,
)
from gas.bench.types import AUDIO_SAMPLES, PreprocessKey
from gas.types import Modality

IMG = PreprocessKey(Modality.IMAGE)
VID = PreprocessKey(Modality.VIDEO, num_frames=8)
AUD = PreprocessKey(Modality.AUDIO)


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return make_jpeg(7, (480, 640))


@pytest.fixture(scope="module")
def clip() -> bytes:
    return make_clip(12, (120, 160), fps=25, seed=3)


@pytest.fixture(scope="module")
def index_clip() -> bytes:
    return make_index_clip(20, fps=30)  # frame i is grey gray_frame_value(i)


# ---- geometry -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("h", "w", "H", "W", "box"),
    [
        (480, 640, 224, 224, (0, 80, 480, 480)),  # landscape: crop the sides
        (640, 480, 224, 224, (80, 0, 480, 480)),  # portrait: crop top and bottom
        (300, 300, 224, 224, (0, 0, 300, 300)),  # square: whole image
        (480, 640, 224, 448, (80, 0, 320, 640)),  # wide target: scale = 640/448
        (481, 641, 224, 224, (0, 80, 481, 481)),  # odd sizes: floor-divided offsets
        (5, 9, 2, 4, (0, 0, 4, 9)),  # scale 2.25: round(4.5) = 4 (Python's round-half-even)
        (1, 1000, 224, 224, (0, 499, 1, 1)),  # a 1-px strip
        (1, 1000, 500, 224, (0, 499, 1, 1)),  # round(0.448) = 0 -> at least 1 px
        (100, 101, 224, 224, (0, 0, 100, 100)),
    ],
)
def test_crop_box_by_hand(h, w, H, W, box):
    assert crop_box(h, w, H, W) == box


def test_center_crop_resize_is_crop_then_cv2_linear():
    img = photo(1, (480, 640))
    out = center_crop_resize(img, 224, 224)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    expect = cv2.resize(np.ascontiguousarray(img[:, 80:560]), (224, 224), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(out, expect)
    # upscaling a tiny image works too, and a 1x1 image becomes a flat target
    assert center_crop_resize(img[:3, :5], 16, 16).shape == (16, 16, 3)
    one = center_crop_resize(np.full((1, 1, 3), 9, np.uint8), 4, 6)
    assert one.shape == (4, 6, 3) and (one == 9).all()


# ---- image ----------------------------------------------------------------------------------------


def test_decode_image_is_pil_convert_rgb(jpeg):
    arr = decode_image(jpeg)
    assert arr.shape == (480, 640, 3) and arr.dtype == np.uint8
    assert np.array_equal(arr, np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")))


def test_png_is_lossless_and_modes_convert():
    img = photo(2, (60, 80))
    assert np.array_equal(decode_image(make_png(2, (60, 80))), img)
    gray = encode_image(img[:, :, 0], "PNG")
    assert np.array_equal(decode_image(gray), np.repeat(img[:, :, :1], 3, axis=2))
    rgba = encode_image(np.dstack([img, np.full(img.shape[:2], 7, np.uint8)]), "PNG")
    assert np.array_equal(decode_image(rgba), img)  # alpha dropped, not composited
    pal = Image.fromarray(img).convert("P")
    buf = io.BytesIO()
    pal.save(buf, "PNG")
    assert np.array_equal(decode_image(buf.getvalue()), np.asarray(pal.convert("RGB")))


def test_no_exif_transpose():
    img = photo(3, (40, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=95, exif=exif)
    assert decode_image(buf.getvalue()).shape == (40, 100, 3)  # stored orientation kept


def test_first_frame_of_animated_gif():
    frames = [Image.new("RGB", (16, 12), c) for c in [(255, 0, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    arr = decode_image(buf.getvalue())
    assert arr.shape == (12, 16, 3) and tuple(arr[5, 5]) == (255, 0, 0)


def _png_with_size(w: int, h: int) -> bytes:
    png = encode_image(np.zeros((2, 2, 3), np.uint8), "PNG")
    ihdr = struct.pack(">II", w, h) + png[24:29]
    chunk = b"IHDR" + ihdr
    return png[:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]


def test_decompression_bomb_is_a_decode_error():
    assert Image.MAX_IMAGE_PIXELS * 2 < 20000 * 20000
    with pytest.raises(DecodeError, match="decompression bomb"):
        decode_image(_png_with_size(20000, 20000))


def test_bomb_limit_holds_even_if_pil_global_is_disabled(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(DecodeError, match="decompression bomb"):
        decode_image(_png_with_size(20000, 20000))


def test_eps_is_never_handed_to_ghostscript():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(DecodeError, match="unsupported"):
        decode_image(eps)


def test_preprocess_image_golden(jpeg):
    out = preprocess_image(jpeg, IMG)
    assert out.shape == (3, 224, 224) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.array_equal(out, center_crop_resize(decode_image(jpeg), 224, 224).transpose(2, 0, 1))
    assert out[:, 0, 0].tolist() == GOLDEN_IMAGE_PIXELS[0]
    assert out[:, 111, 57].tolist() == GOLDEN_IMAGE_PIXELS[1]
    assert sha(out) == GOLDEN_IMAGE_SHA
    png = preprocess_image(make_png(4, (333, 250)), PreprocessKey(Modality.IMAGE, height=96, width=128))
    assert png.shape == (3, 96, 128)
    assert sha(png) == GOLDEN_PNG_SHA


@pytest.mark.parametrize(
    "bad",
    [b"", b"\xff\xd8\xff\xe0", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40],
)
def test_bad_images(bad):
    with pytest.raises(DecodeError):
        preprocess_image(bad, IMG)


def test_truncated_and_corrupt_jpeg(jpeg):
    with pytest.raises(DecodeError, match="corrupt or truncated"):
        decode_image(jpeg[: len(jpeg) // 2])
    with pytest.raises(DecodeError):
        decode_image(jpeg[:600])


# ---- video ----------------------------------------------------------------------------------------


def test_video_step():
    assert video_step(30.0, None) == 1
    assert video_step(30.0, 10) == 3
    assert video_step(30.0, 12) == 2  # round(2.5) = 2
    assert video_step(25.0, 10) == 2  # round(2.5) = 2
    assert video_step(30.0, 60) == 1  # never below 1
    assert video_step(None, 10) == 3 and video_step(0.0, 10) == 3  # fps fallback 30
    with pytest.raises(ValueError):
        video_step(30.0, 0)


def test_index_clip_decodes_exactly(index_clip):
    frames = decode_video_frames(index_clip, 16)
    assert frames.shape == (16, 64, 96, 3) and frames.dtype == np.uint8
    for i, f in enumerate(frames):
        assert abs(float(f.mean()) - gray_frame_value(i)) <= 1.0  # limited-range YUV rounding


def test_first_t_frames_without_frame_rate(index_clip):
    assert [frame_index(f) for f in decode_video_frames(index_clip, 16)] == list(range(16))
    assert [frame_index(f) for f in decode_video_frames(index_clip, 3)] == [0, 1, 2]


def test_stride_with_frame_rate(index_clip):
    # 30 fps, frame_rate 10 -> step 3 -> range(0, 20, 3) = 0..18, then the last frame repeats
    got = [frame_index(f) for f in decode_video_frames(index_clip, 10, frame_rate=10)]
    assert got == [0, 3, 6, 9, 12, 15, 18, 18, 18, 18]
    got = [frame_index(f) for f in decode_video_frames(index_clip, 4, frame_rate=7)]  # round(4.29) = 4
    assert got == [0, 4, 8, 12]
    got = [frame_index(f) for f in decode_video_frames(index_clip, 4, frame_rate=100)]
    assert got == [0, 1, 2, 3]


def test_short_clip_pads_with_last_frame():
    clip = make_index_clip(5, fps=30)
    frames = decode_video_frames(clip, 8)
    assert [frame_index(f) for f in frames] == [0, 1, 2, 3, 4, 4, 4, 4]
    assert np.array_equal(frames[4], frames[7])
    one = decode_video_frames(make_index_clip(1), 4)
    assert one.shape[0] == 4 and [frame_index(f) for f in one] == [0, 0, 0, 0]


def test_average_rate_drives_the_stride():
    clip = make_index_clip(12, fps=10)  # 10 fps, frame_rate 5 -> step 2
    assert [frame_index(f) for f in decode_video_frames(clip, 6, frame_rate=5)] == [0, 2, 4, 6, 8, 10]


def test_preprocess_video_golden(clip):
    out = preprocess_video(clip, VID)
    assert out.shape == (8, 3, 224, 224) and out.dtype == np.uint8 and out.flags.c_contiguous
    frames = decode_video_frames(clip, 8)
    expect = np.stack([center_crop_resize(f, 224, 224) for f in frames]).transpose(0, 3, 1, 2)
    assert np.array_equal(out, expect)
    assert sha(out) == GOLDEN_VIDEO_SHA
    padded = preprocess_video(clip, PreprocessKey(Modality.VIDEO, num_frames=16, height=32, width=48))
    assert padded.shape == (16, 3, 32, 48)
    assert all(np.array_equal(padded[11], padded[i]) for i in range(12, 16))


def test_other_containers_and_codecs():
    frames = [photo(5, (64, 80))] * 3
    for codec, container, pix in [("mpeg4", "avi", "yuv420p"), ("mjpeg", "matroska", "yuvj420p"), ("ffv1", "matroska", "yuv444p")]:
        try:
            data = encode_clip(frames, codec=codec, container=container, pix_fmt=pix)
        except Exception:  # pragma: no cover - encoder missing from this PyAV build
            continue
        out = decode_video_frames(data, 4)
        assert out.shape == (4, 64, 80, 3)
        assert np.abs(out[0].astype(int) - frames[0]).mean() < 12


def test_bad_videos(index_clip):
    with pytest.raises(DecodeError, match="zero-length"):
        preprocess_video(b"", VID)
    with pytest.raises(DecodeError, match="no video stream"):
        preprocess_video(make_wav(0.2), VID)
    with pytest.raises(DecodeError):
        preprocess_video(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100, VID)
    with pytest.raises(DecodeError):
        preprocess_video(index_clip[:300], VID)
    with pytest.raises(ValueError):
        decode_video_frames(index_clip, 65)


def test_oversized_frames_are_refused():
    wide = encode_clip([np.zeros((16, 8200, 3), np.uint8)])
    with pytest.raises(DecodeError, match="too large"):
        decode_video_frames(wide, 1)


# ---- audio ----------------------------------------------------------------------------------------


def test_decode_audio_16k_mono_is_exact():
    wav = make_wav(0.5, sr=16_000)
    x = decode_audio(wav)
    assert x.dtype == np.float32 and x.shape == (8000,)
    t = np.arange(8000) / 16_000
    pcm = np.round(0.5 * np.sin(2 * np.pi * 440 * t) * 32767) / 32768
    assert np.abs(x - pcm).max() < 1e-4


def test_resample_and_downmix_are_ffmpegs():
    x = decode_audio(make_wav(1.0, sr=44_100, channels=2))
    assert x.shape == (16_000,) and x.dtype == np.float32
    # libswresample's default stereo->mono matrix: (L + R) / sqrt(2); float output is not renormalised
    assert 0.69 < np.abs(x[1000:-1000]).max() < 0.72
    assert sha(x) == GOLDEN_AUDIO_SHA
    x8 = decode_audio(make_wav(1.0, sr=8_000))
    assert x8.shape == (16_000,)


def test_crop_or_pad_exact_values():
    long = np.arange(100_001, dtype=np.float32)
    out = crop_or_pad(long)
    assert out.shape == (AUDIO_SAMPLES,) and out.dtype == np.float32
    assert out[0] == (100_001 - AUDIO_SAMPLES) // 2 == 2000 and out[-1] == 2000 + AUDIO_SAMPLES - 1
    short = np.arange(1, 11, dtype=np.float32)
    out = crop_or_pad(short)
    assert out[:10].tolist() == list(range(1, 11)) and not out[10:].any()
    assert np.array_equal(crop_or_pad(np.ones(AUDIO_SAMPLES)), np.ones(AUDIO_SAMPLES, np.float32))


def test_preprocess_audio_center_crop_and_right_pad():
    out = preprocess_audio(ramp_wav(100_000))  # sample i is i / 2**20
    assert out.dtype == np.float32 and out.shape == (AUDIO_SAMPLES,)
    assert np.array_equal(out * 2**20, np.arange(2000, 2000 + AUDIO_SAMPLES, dtype=np.float32))
    out = preprocess_audio(ramp_wav(1000))
    assert np.array_equal(out[:1000] * 2**20, np.arange(1000, dtype=np.float32)) and not out[1000:].any()


def test_silence_is_valid_but_no_samples_is_not():
    assert not preprocess_audio(make_wav(1.0, amplitude=0.0)).any()
    with pytest.raises(DecodeError, match="zero-length"):
        preprocess_audio(make_wav(0.0))
    with pytest.raises(DecodeError, match="zero-length"):
        preprocess_audio(b"")
    with pytest.raises(DecodeError):
        preprocess_audio(b"RIFF\x10\x00\x00\x00WAVEfmt " + b"\x01" * 30)
    with pytest.raises(DecodeError, match="no audio stream"):
        preprocess_audio(make_index_clip(3))


def test_non_finite_audio_is_refused():
    sig = np.zeros(16_000, np.float32)
    sig[8000] = np.nan
    with pytest.raises(DecodeError, match="non-finite"):
        preprocess_audio(make_wav(0, subtype="FLOAT", signal=sig))


def test_long_audio_two_pass_equals_one_pass(monkeypatch):
    wav = ramp_wav(300_001)
    one = preprocess_audio(wav)
    monkeypatch.setattr(pp, "AUDIO_IN_MEMORY_SAMPLES", 50_000)
    two = decode_audio(wav)
    assert two.shape == (AUDIO_SAMPLES,)
    assert np.array_equal(one, two) and two[0] * 2**20 == (300_001 - AUDIO_SAMPLES) // 2


# ---- dispatch and hostile bytes -------------------------------------------------------------------


def test_dispatch_shapes_and_dtypes(jpeg, clip):
    for data, key in [(jpeg, IMG), (clip, VID), (make_wav(7.0), AUD)]:
        out = decode_and_preprocess(data, key)
        assert out.shape == key.shape and out.dtype == np.dtype(key.dtype)
    with pytest.raises(ValueError):
        decode_and_preprocess(make_wav(1.0), PreprocessKey(Modality.AUDIO, aug="robust-v1-s1"))
    with pytest.raises(ValueError):
        decode_and_preprocess(jpeg, PreprocessKey(Modality.IMAGE, aug="sharpen-v9"))


_SEEDS: dict[str, bytes] = {}


def _seed_files() -> dict[str, bytes]:
    if not _SEEDS:
        _SEEDS.update(
            jpeg=make_jpeg(1, (64, 80)),
            png=make_png(2, (40, 40)),
            clip=make_index_clip(4, (32, 48)),
            wav=make_wav(0.3),
            gif=encode_image(photo(3, (24, 24)), "GIF"),
            webp=encode_image(photo(3, (24, 24)), "WEBP"),
        )
    return _SEEDS


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(["jpeg", "png", "clip", "wav", "gif", "webp"]),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
    modality=st.sampled_from(list(Modality)),
)
def test_hostile_bytes_only_raise_decode_error(which, cut, flips, modality):
    data = bytearray(_seed_files()[which])
    data = data[: int(len(data) * cut)]
    for pos, val in flips:
        if data:
            data[int(pos * (len(data) - 1))] = val
    key = PreprocessKey(modality, height=32, width=32, num_frames=4)
    try:
        out = decode_and_preprocess(bytes(data), key)
    except DecodeError:
        return
    assert out.shape == key.shape and out.dtype == np.dtype(key.dtype)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2048), modality=st.sampled_from(list(Modality)))
def test_random_bytes_only_raise_decode_error(data, modality):
    key = PreprocessKey(modality, height=16, width=16, num_frames=2)
    try:
        decode_and_preprocess(data, key)
    except DecodeError:
        pass


# ---- golden values (computed once from the bytes above; a change means decode output changed) ---
# Pinned with Pillow 13.0 (libjpeg-turbo of its wheel), cv2 5.0, PyAV 18.1 (FFmpeg + x264 of its
# wheel). A library upgrade that moves a pixel shows up here: check it, then bump PREPROCESS_VERSION.

GOLDEN_IMAGE_SHA = "0bed45afce60bc0ddd7833ede1430342e7f26586064265232a1c4fde4fd18ec3"
GOLDEN_IMAGE_PIXELS = [[167, 85, 41], [97, 15, 5]]
GOLDEN_PNG_SHA = "6a3df1e2477b19755e3990d10998a722f1c9b88ab76b5b64f04d875b3b3fffc8"
GOLDEN_VIDEO_SHA = "7616d0377f402483e473359c386175e3c3375b822943af92a07107b9a6673590"
GOLDEN_AUDIO_SHA = "26822202c485d1d8cd8a1318b4fc2b4e2bee7398c1df16ab761ac2b8b61da1c6"
