"""Starter packages: ``init_package(modality, dest)`` writes a small, valid detector to train from.

Each template is a tiny CNN (image: per image; video: per frame, then a mean over time; audio: a 1-D
CNN over the waveform) with seeded random weights, so the same seed always gives the same bytes. The
``model.py`` files use only allow-listed imports (``torch``, ``torch.nn``, ``safetensors.torch``) and
load weights with ``safetensors.torch.load_file``, never ``torch.load``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

from gas.submissions.config import AUDIO_SAMPLES, CONFIG_FILENAME, DEFAULT_WEIGHTS_FILE
from gas.types import Modality

_HEADER = '''"""GAS detector template ({modality}): a small CNN with random weights.

Replace the architecture and the weights with your own, keeping load_model's signature.
Input:  {input_doc}
Output: logits [B, num_classes]; with 2 classes the order is [real, synthetic].
"""

import torch
from safetensors.torch import load_file
from torch import nn
'''

_LOAD_MODEL = '''

def load_model(weights_path, num_classes=2, **kwargs):
    """Build the network and load its weights (safetensors only; never torch.load)."""
    model = Detector(num_classes=num_classes)
    model.load_state_dict(load_file(weights_path))
    return model.eval()
'''

_IMAGE_BODY = '''

class Detector(nn.Module):
    def __init__(self, num_classes: int = 2, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Raw pixels arrive; cast to the model's dtype (float32/float16/bfloat16) and scale to [0, 1].
        x = x.to(self.head.weight.dtype) / 255.0
        return self.head(self.features(x).flatten(1))
'''

_VIDEO_BODY = '''

class Detector(nn.Module):
    def __init__(self, num_classes: int = 2, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, T, 3, H, W]; run the CNN on every frame, then average the features over time.
        b, t = x.shape[0], x.shape[1]
        frames = x.reshape(b * t, x.shape[2], x.shape[3], x.shape[4])
        frames = frames.to(self.head.weight.dtype) / 255.0
        feats = self.features(frames).flatten(1).reshape(b, t, -1).mean(dim=1)
        return self.head(feats)
'''

_AUDIO_BODY = '''

class Detector(nn.Module):
    def __init__(self, num_classes: int = 2, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, width, kernel_size=64, stride=16),
            nn.ReLU(),
            nn.Conv1d(width, 2 * width, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv1d(2 * width, 4 * width, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
        )
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: float32 waveform [B, 96000] (16 kHz mono, 6 s, roughly [-1, 1]); it is never cast for you.
        x = x.to(self.head.weight.dtype).unsqueeze(1)
        return self.head(self.features(x).flatten(1))
'''

_INPUT_DOCS = {
    Modality.IMAGE: "uint8 tensor [B, 3, H, W], RGB, 0-255 (H, W = preprocessing.resize).",
    Modality.VIDEO: "uint8 tensor [B, T, 3, H, W], RGB, 0-255 (T = preprocessing.num_frames).",
    Modality.AUDIO: f"float32 tensor [B, {AUDIO_SAMPLES}]: 16 kHz mono PCM, 6 s, roughly [-1, 1].",
}
_BODIES = {Modality.IMAGE: _IMAGE_BODY, Modality.VIDEO: _VIDEO_BODY, Modality.AUDIO: _AUDIO_BODY}

_YAML = """\
# GAS detector package configuration (wire-compatible with the SN34 reference harness).
name: {name}
version: "0.1.0"
modality: {modality}         # image | video | audio (the package is pushed as this modality)
dtype: float32           # float32 | float16 | bfloat16: the model is cast to it before inference
preprocessing:
{preprocessing}model:
  num_classes: 2         # logits order with 2 classes: [real, synthetic]
  weights_file: {weights}
  # Any other key under model: is passed to load_model(weights_path, **kwargs).
"""

_PREPROCESSING = {
    Modality.IMAGE: "  resize: [224, 224]    # [height, width] of the frames forward() receives\n",
    Modality.VIDEO: (
        "  resize: [224, 224]    # [height, width] of every frame\n"
        "  num_frames: 16        # frames per clip, 1..64\n"
        "  # frame_rate: 8       # optional: sample frames at this rate instead of consecutively\n"
    ),
    Modality.AUDIO: (
        "  sample_rate: 16000    # fixed: audio is always 16 kHz mono\n"
        "  duration_seconds: 6.0 # fixed: always 6 s (96000 samples)\n"
    ),
}

_README = """\
# {name}

A GAS (Bittensor subnet 34) {modality} detector starter package.
It holds a tiny CNN with **random weights**: it validates and runs, but it detects nothing yet.

## Files

| file | what it is |
|---|---|
| `model_config.yaml` | name, modality, dtype, preprocessing and `model:` arguments |
| `model.py` | `load_model(weights_path, num_classes=2, **kwargs)` returns a `torch.nn.Module` |
| `model.safetensors` | the weights (safetensors only: pickles, `.pt`/`.bin`/`.onnx` are rejected) |

`forward` receives {input_doc}
It returns logits `[B, num_classes]`; with 2 classes the order is `[real, synthetic]`.

## Train and replace the weights

1. Change `Detector` in `model.py` as you like (or replace it), keeping `load_model`'s signature.
   Imports are limited to an allow-list (torch, timm, transformers, einops, safetensors, numpy, ...);
   no file, network or process access. See docs/detector-packages.md.
2. Train it on your data, with inputs shaped and typed exactly as above.
3. Save the weights with safetensors:

   ```python
   from safetensors.torch import save_file
   save_file({{k: v.contiguous() for k, v in model.state_dict().items()}}, "model.safetensors")
   ```

   A different file name goes in `model.weights_file` in `model_config.yaml`.

## Validate and push

```bash
gascli d validate <package-dir>                      # every check the validator runs, before you upload
gascli d push --{modality}-model <package-dir> ...   # upload and commit it on chain
```
"""


def _render_model_py(modality: Modality) -> str:
    return (
        _HEADER.format(modality=modality.value, input_doc=_INPUT_DOCS[modality])
        + _BODIES[modality]
        + _LOAD_MODEL
    )


def model_source(modality: Modality | str) -> str:
    """The template ``model.py`` for ``modality``."""
    return _render_model_py(Modality(modality))


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _random_weights(model_py: Path, seed: int) -> dict:
    import torch

    spec = importlib.util.spec_from_file_location(f"_gas_template_{os.getpid()}", model_py)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in the package
    try:
        spec.loader.exec_module(module)  # our own template, written a moment ago
    finally:
        sys.dont_write_bytecode = saved
    net = module.Detector(num_classes=2)
    gen = torch.Generator().manual_seed(seed)
    weights = {}
    for name, tensor in sorted(net.state_dict().items()):
        if tensor.dim() > 1:
            fan_in = tensor[0].numel()
            value = torch.randn(tuple(tensor.shape), generator=gen, dtype=torch.float32) * (2.0 / fan_in) ** 0.5
        else:
            value = torch.zeros(tuple(tensor.shape), dtype=torch.float32)
        weights[name] = value.contiguous()
    return weights


def init_package(
    modality: Modality | str,
    dest_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    name: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a starter package for ``modality`` into ``dest_dir`` and return the directory.

    Writes ``model_config.yaml``, ``model.py``, ``model.safetensors`` (seeded random weights: the same
    seed, name and torch version give the same bytes, so the same package hash) and ``README.md``. A non-empty ``dest_dir`` is refused unless
    ``overwrite`` (which replaces those four files and leaves anything else alone).
    """
    from safetensors.torch import save_file

    modality = Modality(modality)
    dest = Path(dest_dir)
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(f"{dest} exists and is not a directory")
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise FileExistsError(f"{dest} is not empty; pick an empty directory or pass overwrite=True")
    dest.mkdir(parents=True, exist_ok=True)
    name = name or f"my-{modality.value}-detector"

    model_py = dest / "model.py"
    _write(model_py, _render_model_py(modality).encode())
    _write(
        dest / CONFIG_FILENAME,
        _YAML.format(
            name=json.dumps(name),
            modality=modality.value,
            preprocessing=_PREPROCESSING[modality],
            weights=DEFAULT_WEIGHTS_FILE,
        ).encode(),
    )
    _write(
        dest / "README.md",
        _README.format(
            name=name, modality=modality.value, input_doc=_INPUT_DOCS[modality]
        ).encode(),
    )
    weights = _random_weights(model_py, seed)
    tmp = dest / (DEFAULT_WEIGHTS_FILE + ".tmp")
    save_file(weights, str(tmp), metadata={"format": "pt"})
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest / DEFAULT_WEIGHTS_FILE)
    return dest
