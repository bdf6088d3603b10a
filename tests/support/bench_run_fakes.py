"""Stand-ins for the benchmark runner's tests: tiny datasets of real media, and a serial decode pool.

The runner takes any object with ``name``, ``modality`` and ``samples()`` as a dataset and any
context manager with ``imap(samples, key)`` as a decode pool; these keep its tests independent of
gas.bench.dataset / gas.bench.decode_pool (which have their own tests).
"""

from __future__ import annotations

import hashlib
import io
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gas.bench.types import AUDIO_SAMPLES, PreprocessKey, Sample
from gas.types import MediaLabel, Modality


@dataclass
class FakeDataset:
    name: str
    modality: Modality
    items: list[Sample] = field(default_factory=list)

    def samples(self) -> list[Sample]:
        return list(self.items)


def _sample(path: Path, dataset: str, modality: Modality, label: MediaLabel, hotkey: str | None) -> Sample:
    data = path.read_bytes()
    return Sample(
        sample_id=hashlib.sha256(f"{dataset}/{path.name}".encode()).hexdigest()[:16],
        dataset=dataset,
        modality=modality,
        label=label,
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        source=f"test:{path.name}",
        generator_hotkey=hotkey,
        generator_model="fake-gen" if hotkey else None,
    )


def image_dataset(root: Path, name: str, label: str, n: int, *, seed: int, corrupt: int = 0,
                  hotkeys: tuple[str, ...] = (), bright: float | None = None) -> FakeDataset:
    """``n`` real PNGs of random sizes (plus ``corrupt`` files that are not images).

    ``bright``: the fraction of images drawn bright (mean > 127) instead of dark; None = random noise.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n):
        h, w = int(rng.integers(24, 48)), int(rng.integers(24, 48))
        if bright is None:
            px = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        else:
            lo, hi = (160, 256) if rng.random() < bright else (0, 96)
            px = rng.integers(lo, hi, size=(h, w, 3), dtype=np.uint8)
        path = folder / f"img_{i:03d}.png"
        Image.fromarray(px).save(path, format="PNG")
        hk = hotkeys[i % len(hotkeys)] if hotkeys else None
        samples.append(_sample(path, name, Modality.IMAGE, MediaLabel(label), hk))
    for j in range(corrupt):
        path = folder / f"broken_{j:03d}.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image " + bytes([j]))
        samples.append(_sample(path, name, Modality.IMAGE, MediaLabel(label), None))
    return FakeDataset(name, Modality.IMAGE, samples)


def audio_dataset(root: Path, name: str, label: str, n: int, *, seed: int) -> FakeDataset:
    """``n`` 16 kHz mono WAV files of 1-7 s (so both padding and cropping happen)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n):
        seconds = float(rng.uniform(1.0, 7.0))
        t = np.arange(int(16_000 * seconds)) / 16_000
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 900) * t) + 0.05 * rng.standard_normal(t.size)
        path = folder / f"aud_{i:03d}.wav"
        sf.write(path, wave.astype(np.float32), 16_000, subtype="PCM_16")
        samples.append(_sample(path, name, Modality.AUDIO, MediaLabel(label), None))
    return FakeDataset(name, Modality.AUDIO, samples)


def stand_in_decode(data: bytes, key: PreprocessKey) -> np.ndarray:
    """Decode + resize good enough for tests (not the reference's exact preprocessing)."""
    if key.modality is Modality.AUDIO:
        import soundfile as sf

        wave, _sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        wave = wave.mean(axis=1)
        out = np.zeros(AUDIO_SAMPLES, dtype=np.float32)
        if wave.size >= AUDIO_SAMPLES:
            start = (wave.size - AUDIO_SAMPLES) // 2
            out[:] = wave[start : start + AUDIO_SAMPLES]
        else:
            out[: wave.size] = wave
        return out
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB").resize((key.width, key.height), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    if key.aug:  # a deterministic "augmentation": invert the image
        arr = 255 - arr
    if key.modality is Modality.VIDEO:
        arr = np.repeat(arr[None], key.num_frames, axis=0)
    return np.ascontiguousarray(arr)


class SerialDecodePool:
    """In-order, in-process decode (the runner's decode-pool interface)."""

    instances: list[SerialDecodePool] = []

    def __init__(self, workers=None, prefetch=None, cache=None) -> None:
        self.workers, self.prefetch, self.cache = workers, prefetch, cache
        self.decoded = 0
        SerialDecodePool.instances.append(self)

    def __enter__(self) -> SerialDecodePool:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def imap(self, samples, key):
        import time

        for s in samples:
            t0 = time.perf_counter()
            try:
                out = stand_in_decode(Path(s.path).read_bytes(), key)
            except Exception as exc:
                out = ValueError(f"cannot decode {Path(s.path).name}: {exc}")
            self.decoded += 1
            yield s, out, time.perf_counter() - t0


def serial_pool_factory(*, workers=None, cache=None, prefetch=None) -> SerialDecodePool:
    return SerialDecodePool(workers=workers, prefetch=prefetch, cache=cache)


def shrink_image_package(pkg: Path, size: int = 32) -> Path:
    """Make a template image/video package take ``size`` x ``size`` frames (faster tests)."""
    cfg = pkg / "model_config.yaml"
    cfg.write_text(cfg.read_text().replace("resize: [224, 224]", f"resize: [{size}, {size}]"))
    return pkg


#: forward() answers NaN for bright images (mean pixel > 127), the template CNN's logits otherwise.
NAN_FOR_BRIGHT = textwrap.dedent('''
    import torch
    from safetensors.torch import load_file
    from torch import nn


    class Detector(nn.Module):
        def __init__(self, num_classes=2):
            super().__init__()
            self.head = nn.Linear(3, num_classes)

        def forward(self, x):
            feats = x.to(torch.float32).mean(dim=(2, 3)) / 255.0
            logits = self.head(feats)
            bright = x.to(torch.float32).mean(dim=(1, 2, 3)) > 127.0
            nan = torch.full_like(logits, float("nan"))
            return torch.where(bright.unsqueeze(1), nan, logits)


    def load_model(weights_path, num_classes=2, **kwargs):
        model = Detector(num_classes=num_classes)
        model.load_state_dict(load_file(weights_path))
        return model.eval()
''')


def nan_package(dest: Path) -> Path:
    """An image package whose logits are NaN for bright images."""
    import torch
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    (dest / "model.py").write_text(NAN_FOR_BRIGHT)
    (dest / "model_config.yaml").write_text(
        "name: nan-bright\nmodality: image\npreprocessing:\n  resize: [32, 32]\nmodel:\n  num_classes: 2\n"
    )
    g = torch.Generator().manual_seed(7)
    save_file({"head.weight": torch.randn(2, 3, generator=g), "head.bias": torch.zeros(2)},
              str(dest / "model.safetensors"))
    return dest
