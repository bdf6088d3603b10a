"""The robustness pass: key format, step rules, determinism (pinned), and that it changes pixels."""

from __future__ import annotations

import hashlib
import io

import cv2
import numpy as np
import pytest
from media_fixtures import make_clip, make_jpeg, photo
from PIL import Image

from gas.bench import augment as aug
from gas.bench.preprocess import decode_and_preprocess, decode_image, decode_video_frames
from gas.bench.types import PreprocessKey
from gas.types import Modality


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return make_jpeg(11, (600, 800))


@pytest.fixture(scope="module")
def clip() -> bytes:
    return make_clip(10, (300, 520), fps=25, seed=5)


def test_key_format():
    assert aug.aug_key(42) == "robust-v1-s42" and aug.aug_key() == "robust-v1-s42"
    assert aug.parse_aug("robust-v1-s7") == aug.AugSpec(seed=7)
    assert aug.parse_aug("robust-v1-s0").key == "robust-v1-s0"
    for bad in ["robust-v1", "robust-v1-s-1", "robust-s1", "blur-v1-s1", "robust-v1-s1 ", "ROBUST-v1-s1"]:
        with pytest.raises(ValueError):
            aug.parse_aug(bad)
    with pytest.raises(ValueError, match="version"):
        aug.parse_aug("robust-v2-s1")
    with pytest.raises(ValueError):
        aug.aug_key(-1)
    assert PreprocessKey(Modality.IMAGE, aug=aug.aug_key(3)).id == "image-224x224-v1-robust-v1-s3"
    assert aug.sample_seed(42, 5) == 47


def test_downscale_rules():
    img = photo(1, (600, 800))
    # x0.5 both ways, back up to the original size
    expect = cv2.resize(cv2.resize(img, (400, 300), interpolation=cv2.INTER_AREA), (800, 600))
    assert np.array_equal(aug.downscale_upscale(img), expect)
    # floors at 256: 400x1000 -> 256x500
    assert aug.downscale(photo(1, (400, 1000))).shape == (256, 500, 3)
    # skipped unless both sides shrink: 200x1000 has a side below the floor
    small = photo(2, (200, 1000))
    assert aug.downscale_upscale(small) is small and aug.downscale(small) is small
    assert aug.downscale(photo(2, (256, 300))).shape == (256, 300, 3)  # 256 does not shrink
    assert aug.downscale(img).shape == (300, 400, 3)  # video frames are not scaled back up


def test_image_chain_is_the_documented_steps():
    img = photo(3, (600, 800))

    def pil_rt(a, fmt, **kw):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, fmt, **kw)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))

    x = aug.downscale_upscale(img)
    x = pil_rt(x, "JPEG", quality=55, subsampling=2)
    if aug.webp_available():
        x = pil_rt(x, "WEBP", quality=75, method=4)
    x = pil_rt(x, "JPEG", quality=80, subsampling=2)
    assert np.array_equal(aug.robust_image(img), x)


def test_image_pass_deterministic_and_different(jpeg):
    key = PreprocessKey(Modality.IMAGE, aug="robust-v1-s42")
    a = decode_and_preprocess(jpeg, key)
    b = decode_and_preprocess(jpeg, key)
    assert a.shape == (3, 224, 224) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    base = decode_and_preprocess(jpeg, PreprocessKey(Modality.IMAGE))
    diff = np.abs(a.astype(int) - base).mean()
    assert 0.5 < diff < 20  # recompressed, still the same picture
    # the v1 chain draws nothing random: the seed names the pass, it does not change pixels
    assert np.array_equal(a, decode_and_preprocess(jpeg, PreprocessKey(Modality.IMAGE, aug="robust-v1-s7")))
    assert sha(a) == GOLDEN_IMAGE_AUG_SHA


def test_h264_roundtrip_keeps_frames():
    frames = np.stack([photo(i, (64, 96)) for i in range(5)])
    out = aug.h264_roundtrip(frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    mse = np.mean((out.astype(float) - frames) ** 2)
    assert 10 * np.log10(255**2 / mse) > 28  # lossy but close (crf 23)
    assert np.array_equal(out, aug.h264_roundtrip(frames))  # repeatable in one process


def test_odd_and_tiny_frames():
    odd = np.stack([photo(4, (57, 91))] * 3)
    out = aug.robust_video(odd)
    assert out.shape == (3, 56, 90, 3)  # trimmed to even
    tiny = np.zeros((2, 1, 7, 3), np.uint8)
    assert aug.robust_video(tiny) is tiny  # nothing to encode below 2x2


def test_video_pass_deterministic_and_different(clip):
    key = PreprocessKey(Modality.VIDEO, num_frames=12, aug="robust-v1-s42")
    a = decode_and_preprocess(clip, key)
    b = decode_and_preprocess(clip, key)
    assert a.shape == (12, 3, 224, 224) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    base = decode_and_preprocess(clip, PreprocessKey(Modality.VIDEO, num_frames=12))
    assert 0.5 < np.abs(a.astype(int) - base).mean() < 25
    # padded repeats of the last frame go through H.264 too: close, though not bit-identical
    assert np.abs(a[9].astype(int) - a[11]).mean() < 2
    assert sha(a) == GOLDEN_VIDEO_AUG_SHA


def test_video_chain_order(clip):
    frames = decode_video_frames(clip, 4)
    small = np.stack([aug.downscale(f) for f in frames])
    assert small.shape == (4, 256, 260, 3)
    rt = aug.robust_video(small)
    want = np.stack([cv2.resize(f[:, 2:258], (224, 224)) for f in rt]).transpose(0, 3, 1, 2)
    got = decode_and_preprocess(clip, PreprocessKey(Modality.VIDEO, num_frames=4, aug="robust-v1-s1"))
    assert np.array_equal(got, want)


def test_audio_has_no_augmentation():
    with pytest.raises(ValueError, match="no robustness"):
        aug.augment_and_preprocess(b"x", PreprocessKey(Modality.AUDIO, aug="robust-v1-s1"))


def test_aug_on_bad_bytes_is_a_decode_error():
    from gas.bench.preprocess import DecodeError

    for m in (Modality.IMAGE, Modality.VIDEO):
        with pytest.raises(DecodeError):
            decode_and_preprocess(b"\x00garbage", PreprocessKey(m, aug="robust-v1-s1"))


def test_decoded_image_feeds_the_chain(jpeg):
    img = decode_image(jpeg)
    assert np.array_equal(
        aug.augment_image(jpeg, PreprocessKey(Modality.IMAGE, height=64, width=64)),
        cv2.resize(aug.robust_image(img)[:, 100:700], (64, 64)).transpose(2, 0, 1),
    )


# Pinned once (Pillow 13.0 / libjpeg-turbo and libwebp of its wheel, cv2 5.0, PyAV 18.1's x264).
GOLDEN_IMAGE_AUG_SHA = "534236a0080fe8dda3971f0813aecbbe14e8b0f32154e0e97cb1eb21803e2877"
GOLDEN_VIDEO_AUG_SHA = "a5080fc69bccc1a3c8506ba062f177b3e4b9900d4f74e6af0f37fc5c1085dd07"
