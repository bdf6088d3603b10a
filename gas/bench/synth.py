"""Offline demo datasets, built on this machine from nothing but installed packages.

:func:`synthesize` writes up to seven small datasets under ``root`` (one directory each):

=========================  =========  =============  ===============================================
name                       modality   label          how
=========================  =========  =============  ===============================================
synth-real-images          image      real           random crops/rescales of scikit-image's bundled
                                                     photos, saved once as JPEG (q 85-95) or PNG
synth-diffusion-images     image      synthetic      a tiny random-weight Stable Diffusion pipeline
                                                     built in code (64x64, 2 DDIM steps), upscaled
synth-gan-images           image      synthetic      a tiny random-weight DCGAN-style generator
                                                     (transposed convs from noise), upscaled
synth-real-video           video      real           pan/zoom over the bundled photos, H.264 mp4
synth-fake-video           video      synthetic      latent walks of the tiny diffusion model,
                                                     decoded by its VAE frame by frame, H.264 mp4
synth-real-audio           audio      real           espeak-ng speech (the espeakng-loader wheel),
                                                     2-8 s, 16 or 22.05 kHz, WAV or FLAC
synth-fake-audio           audio      synthetic      tones, chirps, FM/AM and filtered noise, 2-8 s
=========================  =========  =============  ===============================================

"Real" here means "not made by the generators under test"; espeak speech is itself synthetic, so
these datasets exercise the pipeline (decode paths, crop and pad, labels), not detector quality.
Every sample's randomness comes from ``(seed, dataset, index)``, and weights from ``seed``, so one
seed gives the same bytes again on the same machine and library versions. Nothing is downloaded:
``HF_HUB_OFFLINE=1`` is set while the diffusion pipeline is built. Heavy imports (torch,
diffusers, av) happen inside the functions.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gas.bench.dataset import DatasetError, DatasetItem, LocalDataset, write_dataset
from gas.types import MediaLabel, Modality

#: ``progress(dataset_name, done, total)``, called after each sample.
SynthProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SynthSpec:
    name: str
    modality: Modality
    label: MediaLabel
    key: int  # folded into every per-sample seed, so datasets never share random streams
    generator_model: str | None
    description: str


SYNTH_DATASETS: tuple[SynthSpec, ...] = (
    SynthSpec("synth-real-images", Modality.IMAGE, MediaLabel.REAL, 11, None, "crops of scikit-image photos"),
    SynthSpec(
        "synth-diffusion-images", Modality.IMAGE, MediaLabel.SYNTHETIC, 12, "tiny-sd-random", "tiny random-weight SD"
    ),
    SynthSpec("synth-gan-images", Modality.IMAGE, MediaLabel.SYNTHETIC, 13, "tiny-dcgan-random", "tiny random DCGAN"),
    SynthSpec("synth-real-video", Modality.VIDEO, MediaLabel.REAL, 21, None, "pan/zoom over photos"),
    SynthSpec(
        "synth-fake-video", Modality.VIDEO, MediaLabel.SYNTHETIC, 22, "tiny-sd-random-latent-walk", "SD latent walks"
    ),
    SynthSpec("synth-real-audio", Modality.AUDIO, MediaLabel.REAL, 31, None, "espeak-ng speech"),
    SynthSpec("synth-fake-audio", Modality.AUDIO, MediaLabel.SYNTHETIC, 32, "procedural-dsp", "tones, chirps, noise"),
)
SYNTH_NAMES = tuple(s.name for s in SYNTH_DATASETS)

PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "stereo_motorcycle",
    "camera",
)
PROMPTS = (
    "a photo of a cat on a sofa",
    "a mountain lake at sunrise",
    "portrait of an astronaut, studio light",
    "a red sports car in the rain",
    "a bowl of fruit on a wooden table",
    "a city street at night, neon signs",
    "an oil painting of a ship at sea",
    "a close-up of a flower, macro photo",
)
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "The weather today is cloudy with a chance of rain in the afternoon.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese.",
    "We also need a small plastic snake and a big toy frog for the kids.",
    "The train to the city leaves at half past seven every morning.",
    "She sells sea shells by the sea shore.",
    "A good benchmark measures what it claims to measure, and nothing else.",
    "Turn left at the second light, then keep going until you see the bridge.",
    "Numbers like four hundred and twelve are read out one word at a time.",
    "The museum opens at nine and closes early on Sundays.",
    "Can you hear the difference between a voice and a recording of a voice?",
)
#: espeak voices whose output is bit-stable (the f2/f3/f5 variants add breath noise that is not seeded)
VOICES = ("en-us", "en", "en+m3", "en-us+f4", "en+f1", "en-gb-x-rp", "en+m1", "en-us-nyc", "en-029", "en-gb-scotland")


def _rng(seed: int, spec: SynthSpec, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, spec.key, index])


# --------------------------------------------------------------------------------------------
# encoders (PIL, PyAV, soundfile): these bytes are the datasets' "original bytes"
# --------------------------------------------------------------------------------------------
def encode_image(rgb: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    if fmt == "jpg":
        img.save(buf, "JPEG", quality=quality, subsampling=2 if quality < 90 else 0)
    else:
        img.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def _rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range planar YUV 4:2:0 (2x2 chroma means), as PyAV's ``yuv420p`` ndarray layout.

    Done in numpy so the encoder's input does not depend on swscale's build and CPU paths.
    """
    x = rgb.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    h, w = y.shape

    def sub(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    planes = [y.ravel(), sub(cb).ravel(), sub(cr).ravel()]
    return np.clip(np.concatenate(planes).round(), 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def encode_video(frames: Sequence[np.ndarray], fps: int) -> bytes:
    """H.264 (libx264, yuv420p, CRF 23) in mp4; even dimensions; same frames give the same bytes."""
    import av

    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # x264's SIMD paths gave different bitstreams for identical input from run to run here;
        # its C paths (asm=0) are bit-stable and fast enough for clips this small
        stream.options = {"crf": "23", "preset": "veryfast", "x264-params": "asm=0:threads=1"}
        stream.codec_context.thread_count = 1
        for f in frames:
            frame = av.VideoFrame.from_ndarray(_rgb_to_yuv420p(f), format="yuv420p")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def encode_audio(wave: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    pcm = np.clip(wave, -1.0, 1.0).astype(np.float32)
    if fmt == "flac":
        sf.write(buf, pcm, sample_rate, format="FLAC", subtype="PCM_16")
    else:
        sf.write(buf, pcm, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _resize(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    shrink = w < rgb.shape[1] or h < rgb.shape[0]
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _image_format(rng: np.random.Generator, index: int) -> tuple[str, int]:
    """Alternate JPEG and PNG in every image dataset alike, so format is no label shortcut."""
    return ("jpg", int(rng.integers(85, 96))) if index % 2 == 0 else ("png", 0)


# --------------------------------------------------------------------------------------------
# real images and video
# --------------------------------------------------------------------------------------------
def _photos() -> list[tuple[str, np.ndarray]]:
    import skimage.data

    out = []
    for name in PHOTOS:
        a = getattr(skimage.data, name)()
        if isinstance(a, tuple):
            a = a[0]
        if a.ndim == 2:
            a = np.stack([a] * 3, axis=-1)
        out.append((name, np.ascontiguousarray(a[..., :3], dtype=np.uint8)))
    return out


def _real_images(spec: SynthSpec, seed: int, n: int, photos) -> Iterator[DatasetItem]:
    for i in range(n):
        rng = _rng(seed, spec, i)
        name, photo = photos[int(rng.integers(len(photos)))]
        ph, pw = photo.shape[:2]
        side = int(min(ph, pw) * rng.uniform(0.35, 1.0))
        aspect = rng.uniform(0.75, 1.33)
        cw, ch = min(pw, int(side * aspect)), min(ph, int(side / aspect))
        x, y = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
        out_w = int(rng.integers(96, 321))
        out_h = max(64, int(out_w * ch / cw))
        crop = _resize(photo[y : y + ch, x : x + cw], out_w, out_h)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        fmt, q = _image_format(rng, i)
        yield DatasetItem(f"samples/{i:06d}.{fmt}", encode_image(crop, fmt, q), spec.label, f"synth:skimage/{name}")


def _pan_zoom(photo: np.ndarray, rng: np.random.Generator, t: int, w: int, h: int) -> list[np.ndarray]:
    ph, pw = photo.shape[:2]
    aspect = w / h
    z0, z1 = rng.uniform(0.45, 1.0, size=2)
    frames = []
    start, end = rng.uniform(0, 1, size=2), rng.uniform(0, 1, size=2)
    for k in range(t):
        a = k / max(1, t - 1)
        z = z0 + (z1 - z0) * a
        ch = int(min(ph, pw / aspect) * z)
        cw = int(ch * aspect)
        cx, cy = start + (end - start) * a
        x, y = int(cx * (pw - cw)), int(cy * (ph - ch))
        frames.append(_resize(photo[y : y + ch, x : x + cw], w, h))
    return frames


def _video_shape(rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(frames, width, height, fps): 8-24 frames, 64-128 px even sides, 8-30 fps."""
    t = int(rng.integers(8, 25))
    w = int(rng.choice([64, 80, 96, 112, 128]))
    h = int(rng.choice([64, 72, 96, 128]))
    fps = int(rng.choice([8, 12, 15, 24, 25, 30]))
    return t, w, h, fps


def _real_video(spec: SynthSpec, seed: int, n: int, photos) -> Iterator[DatasetItem]:
    for i in range(n):
        rng = _rng(seed, spec, i)
        name, photo = photos[int(rng.integers(len(photos)))]
        t, w, h, fps = _video_shape(rng)
        frames = _pan_zoom(photo, rng, t, w, h)
        yield DatasetItem(f"samples/{i:06d}.mp4", encode_video(frames, fps), spec.label, f"synth:skimage/{name}")


# --------------------------------------------------------------------------------------------
# generators: tiny diffusion and a tiny GAN, random weights, seeded
# --------------------------------------------------------------------------------------------
@contextmanager
def _offline_hub() -> Iterator[None]:
    values = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "DIFFUSERS_VERBOSITY": "error",
    }
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _byte_unicode() -> list[str]:
    """The 256 printable characters CLIP's byte-level BPE maps bytes to (GPT-2's table)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    table = dict(zip(keep, keep, strict=True)) | {b: 256 + k for k, b in enumerate(extra)}
    return [chr(table[b]) for b in range(256)]


def build_tiny_pipeline(seed: int):
    """A CPU StableDiffusionPipeline with random weights (about 2.1M parameters), built in code.

    Configs follow the ones verified offline (UNet (32, 64) blocks, 2-block VAE, 5-layer CLIP text
    encoder with hidden size 32). The tokenizer is a character-level CLIP BPE: the 256 byte symbols,
    the same with ``</w>``, and the two specials (514 ids), with an empty merges table.
    """
    import torch

    with _offline_hub():
        from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            unet = UNet2DConditionModel(
                block_out_channels=(32, 64),
                layers_per_block=2,
                sample_size=32,
                in_channels=4,
                out_channels=4,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                cross_attention_dim=32,
            )
            vae = AutoencoderKL(
                block_out_channels=[32, 64],
                in_channels=3,
                out_channels=3,
                down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
                latent_channels=4,
            )
            text_encoder = CLIPTextModel(
                CLIPTextConfig(
                    bos_token_id=512,
                    eos_token_id=513,
                    pad_token_id=513,
                    hidden_size=32,
                    intermediate_size=37,
                    layer_norm_eps=1e-5,
                    num_attention_heads=4,
                    num_hidden_layers=5,
                    vocab_size=514,
                )
            )
        symbols = _byte_unicode()
        vocab = {s: i for i, s in enumerate(symbols)} | {s + "</w>": 256 + i for i, s in enumerate(symbols)}
        vocab |= {"<|startoftext|>": 512, "<|endoftext|>": 513}
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
            (Path(tmp) / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
            tokenizer = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"), model_max_length=77)
        scheduler = DDIMScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            clip_sample=False,
            set_alpha_to_one=False,
            steps_offset=1,
        )
        pipe = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _stretch(x: np.ndarray) -> np.ndarray:
    """Per-image contrast stretch to uint8 (random-weight outputs are low-contrast)."""
    lo, hi = np.percentile(x, [1, 99], axis=(0, 1), keepdims=True)
    return (np.clip((x - lo) / np.maximum(hi - lo, 1e-6), 0, 1) * 255).round().astype(np.uint8)


def _generated_size(rng: np.random.Generator, widths: Sequence[int]) -> tuple[int, int]:
    """Output size of a generated image: varied widths and aspect ratios, like the real crops."""
    w = int(rng.choice(widths))
    return w, max(48, int(round(w * float(rng.choice([0.75, 1.0, 1.0, 1.25])) / 2)) * 2)


def _diffusion_images(pipe, seed: int, spec: SynthSpec, n: int, batch: int = 8) -> Iterator[np.ndarray]:
    """64x64 RGB float images, one torch Generator per sample (batched for speed; no classifier-free
    guidance, which would double the cost and means nothing for random weights)."""
    import torch

    for start in range(0, n, batch):
        idx = list(range(start, min(n, start + batch)))
        prompts = [PROMPTS[int(_rng(seed, spec, i).integers(len(PROMPTS)))] for i in idx]
        gens = [torch.Generator().manual_seed(int(_rng(seed, spec, i).integers(2**31))) for i in idx]
        with torch.inference_mode():
            out = pipe(
                prompts, num_inference_steps=2, height=64, width=64, generator=gens, guidance_scale=1.0,
                output_type="np",
            )
        yield from out.images


def _diffusion_items(pipe, spec: SynthSpec, seed: int, n: int) -> Iterator[DatasetItem]:
    for i, img in enumerate(_diffusion_images(pipe, seed, spec, n)):
        rng = _rng(seed, spec, i + 100_000)
        w, h = _generated_size(rng, (64, 96, 128, 160, 192, 256))
        rgb = _resize(_stretch(img), w, h)
        fmt, q = _image_format(rng, i)
        yield DatasetItem(
            f"samples/{i:06d}.{fmt}", encode_image(rgb, fmt, q), spec.label, f"synth:tiny-sd/seed{seed}", None,
            spec.generator_model,
        )


def _gan(seed: int):
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 7919)
        layers: list[nn.Module] = [nn.ConvTranspose2d(64, 128, 4, 1, 0), nn.LeakyReLU(0.2)]
        chans = [128, 96, 64, 32]
        for a, b in zip(chans, chans[1:], strict=False):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.InstanceNorm2d(b), nn.LeakyReLU(0.2)]
        layers += [nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1), nn.Tanh()]  # 4 -> 8 -> 16 -> 32 -> 64
        net = nn.Sequential(*layers).eval()
    return net


def _gan_items(spec: SynthSpec, seed: int, n: int) -> Iterator[DatasetItem]:
    import torch

    net = _gan(seed)
    for i in range(n):
        rng = _rng(seed, spec, i)
        z = torch.from_numpy(rng.standard_normal((1, 64, 1, 1)).astype(np.float32))
        with torch.inference_mode():
            img = net(z)[0].permute(1, 2, 0).numpy()
        w, h = _generated_size(rng, (64, 96, 128, 160, 192))
        rgb = _resize(_stretch(img), w, h)
        fmt, q = _image_format(rng, i)
        yield DatasetItem(
            f"samples/{i:06d}.{fmt}", encode_image(rgb, fmt, q), spec.label, f"synth:tiny-dcgan/seed{seed}", None,
            spec.generator_model,
        )


def _fake_video(pipe, spec: SynthSpec, seed: int, n: int, batch: int = 8) -> Iterator[DatasetItem]:
    """Each clip: two diffusion latents (one prompt, two seeds), walked linearly, VAE-decoded per frame.

    Keyframes are 32x32 (16x16 latents; frames are upscaled to the clip size), made in batches.
    """
    import torch

    plans = []
    for i in range(n):
        rng = _rng(seed, spec, i)
        t, w, h, fps = _video_shape(rng)
        prompt = PROMPTS[int(rng.integers(len(PROMPTS)))]
        plans.append((t, w, h, fps, prompt, [int(s) for s in rng.integers(2**31, size=2)]))
    for start in range(0, n, batch // 2):
        chunk = plans[start : start + batch // 2]
        prompts = [p[4] for p in chunk for _ in range(2)]
        gens = [torch.Generator().manual_seed(s) for p in chunk for s in p[5]]
        with torch.inference_mode():
            out = pipe(
                prompts, num_inference_steps=2, height=32, width=32, generator=gens, guidance_scale=1.0,
                output_type="latent",
            )
        for k, (t, w, h, fps, _prompt, _seeds) in enumerate(chunk):
            z = out.images[2 * k : 2 * k + 2]
            with torch.inference_mode():
                steps = torch.linspace(0, 1, t).view(t, 1, 1, 1)
                walk = z[0:1] * (1 - steps) + z[1:2] * steps
                dec = pipe.vae.decode(walk / pipe.vae.config.scaling_factor).sample
            frames_f = ((dec.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
            lo, hi = np.percentile(frames_f, [1, 99])
            frames_u8 = (np.clip((frames_f - lo) / max(hi - lo, 1e-6), 0, 1) * 255).round().astype(np.uint8)
            frames = [_resize(f, w, h) for f in frames_u8]
            i = start + k
            yield DatasetItem(
                f"samples/{i:06d}.mp4", encode_video(frames, fps), spec.label, f"synth:tiny-sd-walk/seed{seed}",
                None, spec.generator_model,
            )


# --------------------------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------------------------
def espeak(jobs: list[dict[str, Any]], timeout: float = 120.0) -> tuple[int, list[np.ndarray]]:
    """Speak each ``{"text", "voice", "rate", "pitch"}`` job in a child process; (rate, int16 arrays)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "gas.bench._espeak", tmp],
                input=json.dumps(jobs),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DatasetError(f"espeak speech synthesis timed out after {timeout:g} s") from None
        if proc.returncode != 0:
            tail = " ".join((proc.stderr or proc.stdout).split())[-300:]
            raise DatasetError(f"espeak speech synthesis failed (exit {proc.returncode}): {tail}")
        rate = int(json.loads(proc.stdout.strip().splitlines()[-1])["sample_rate"])
        return rate, [np.frombuffer((Path(tmp) / f"{i}.pcm").read_bytes(), dtype=np.int16) for i in range(len(jobs))]


def _fit_duration(wave: np.ndarray, sr: int, seconds: float) -> np.ndarray:
    """Trim to ``seconds`` (with a 20 ms fade-out) or pad with silence up to it."""
    n = int(round(seconds * sr))
    if len(wave) >= n:
        out = wave[:n].copy()
        fade = min(n, int(0.02 * sr))
        out[n - fade :] *= np.linspace(1, 0, fade, dtype=out.dtype)
        return out
    lead = min(n - len(wave), int(0.1 * sr))
    return np.concatenate([np.zeros(lead, wave.dtype), wave, np.zeros(n - len(wave) - lead, wave.dtype)])


def _resample(wave: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    if sr_from == sr_to:
        return wave
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr_from, sr_to)
    return resample_poly(wave, sr_to // g, sr_from // g).astype(np.float32)


def _audio_format(rng: np.random.Generator, index: int) -> tuple[int, str]:
    sr = 16_000 if rng.random() < 0.5 else 22_050
    return sr, ("wav" if index % 2 == 0 else "flac")


def _real_audio(spec: SynthSpec, seed: int, n: int) -> Iterator[DatasetItem]:
    plans = []
    for i in range(n):
        rng = _rng(seed, spec, i)
        seconds = float(rng.uniform(2.0, 8.0))
        words, text = 0, []
        order = rng.permutation(len(SENTENCES))
        for k in order:  # about 2.6 words a second at the default rate
            text.append(SENTENCES[int(k)])
            words += len(SENTENCES[int(k)].split())
            if words / 2.6 >= seconds:
                break
        job = {
            "text": " ".join(text),
            "voice": VOICES[int(rng.integers(len(VOICES)))],
            "rate": int(rng.integers(140, 200)),
            "pitch": int(rng.integers(30, 71)),
        }
        plans.append((rng, seconds, job))
    native, waves = espeak([p[2] for p in plans])
    for i, ((rng, seconds, job), pcm) in enumerate(zip(plans, waves, strict=True)):
        wave = pcm.astype(np.float32) / 32768.0
        sr, fmt = _audio_format(rng, i)
        wave = _fit_duration(_resample(wave, native, sr), sr, seconds)
        src = f"synth:espeak-ng/{job['voice']}"
        yield DatasetItem(f"samples/{i:06d}.{fmt}", encode_audio(wave, sr, fmt), spec.label, src)


def _fake_wave(rng: np.random.Generator, sr: int, seconds: float) -> tuple[str, np.ndarray]:
    n = int(round(seconds * sr))
    t = np.arange(n, dtype=np.float64) / sr
    kind = ("tones", "chirp", "fm", "noise")[int(rng.integers(4))]
    if kind == "tones":
        f0 = rng.uniform(110, 440)
        vib = 1 + 0.01 * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
        phase = 2 * np.pi * f0 * np.cumsum(vib) / sr
        wave = sum(np.sin(k * phase) / k for k in range(1, int(rng.integers(2, 7))))
    elif kind == "chirp":
        f0, f1 = rng.uniform(100, 600), rng.uniform(800, min(6000, sr / 2 - 500))
        if rng.random() < 0.5:
            f0, f1 = f1, f0
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
        wave = np.sin(phase)
    elif kind == "fm":
        fc, fm, idx = rng.uniform(200, 1000), rng.uniform(2, 40), rng.uniform(1, 8)
        wave = np.sin(2 * np.pi * fc * t + idx * np.sin(2 * np.pi * fm * t))
        wave *= 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 4) * t)
    else:
        from scipy.signal import butter, sosfilt

        lo = rng.uniform(100, 1500)
        hi = min(lo * rng.uniform(1.5, 4), sr / 2 - 200)
        sos = butter(4, [lo, hi], btype="bandpass", fs=sr, output="sos")
        wave = sosfilt(sos, rng.standard_normal(n))
    wave = np.asarray(wave, dtype=np.float64)
    env = np.ones(n)
    ramp = min(n // 2, int(0.05 * sr))
    env[:ramp], env[n - ramp :] = np.linspace(0, 1, ramp), np.linspace(1, 0, ramp)
    wave = wave * env
    peak = float(np.max(np.abs(wave))) or 1.0
    return kind, (wave / peak * rng.uniform(0.3, 0.9)).astype(np.float32)


def _fake_audio(spec: SynthSpec, seed: int, n: int) -> Iterator[DatasetItem]:
    for i in range(n):
        rng = _rng(seed, spec, i)
        seconds = float(rng.uniform(2.0, 8.0))
        sr, fmt = _audio_format(rng, i)
        kind, wave = _fake_wave(rng, sr, seconds)
        yield DatasetItem(
            f"samples/{i:06d}.{fmt}", encode_audio(wave, sr, fmt), spec.label, f"synth:dsp/{kind}", None,
            spec.generator_model,
        )


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def synthesize(
    root: Path | str,
    *,
    n: int = 16,
    seed: int = 0,
    modalities: Iterable[Modality | str] = ("image", "video", "audio"),
    progress: SynthProgress | None = None,
    names: Iterable[str] | None = None,
) -> list[LocalDataset]:
    """Build the synth datasets of ``modalities`` (``n`` samples each) as ``root/<name>``, replacing
    any previous copy. ``names`` restricts to some of :data:`SYNTH_NAMES`. Returns them in table order.
    """
    if n < 1:
        raise DatasetError("synthesize: n must be at least 1")
    wanted_mod = {Modality(m) for m in modalities}
    wanted_names = set(SYNTH_NAMES if names is None else names)
    unknown = wanted_names - set(SYNTH_NAMES)
    if unknown:
        raise DatasetError(f"unknown synth dataset(s) {sorted(unknown)}; known: {', '.join(SYNTH_NAMES)}")
    specs = [s for s in SYNTH_DATASETS if s.modality in wanted_mod and s.name in wanted_names]
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    needs = {s.name for s in specs}
    photos = _photos() if needs & {"synth-real-images", "synth-real-video"} else []
    pipe = build_tiny_pipeline(seed) if needs & {"synth-diffusion-images", "synth-fake-video"} else None

    def items_for(spec: SynthSpec) -> Iterator[DatasetItem]:
        if spec.name == "synth-real-images":
            return _real_images(spec, seed, n, photos)
        if spec.name == "synth-diffusion-images":
            return _diffusion_items(pipe, spec, seed, n)
        if spec.name == "synth-gan-images":
            return _gan_items(spec, seed, n)
        if spec.name == "synth-real-video":
            return _real_video(spec, seed, n, photos)
        if spec.name == "synth-fake-video":
            return _fake_video(pipe, spec, seed, n)
        if spec.name == "synth-real-audio":
            return _real_audio(spec, seed, n)
        return _fake_audio(spec, seed, n)

    def reported(spec: SynthSpec, items: Iterator[DatasetItem]) -> Iterator[DatasetItem]:
        for k, item in enumerate(items, 1):
            yield item
            if progress:
                progress(spec.name, k, n)

    out = []
    for spec in specs:
        if progress:
            progress(spec.name, 0, n)
        out.append(write_dataset(root / spec.name, spec.name, reported(spec, items_for(spec)), spec.modality, overwrite=True))
    return out
