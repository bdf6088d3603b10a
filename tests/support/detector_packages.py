"""Builders for detector packages in tests: valid files, zips (good and hostile), raw safetensors."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save as st_save

from gas.submissions.templates import model_source

GOOD_YAML = {
    "image": b"name: t\nmodality: image\npreprocessing:\n  resize: [32, 32]\nmodel:\n  num_classes: 2\n",
    "video": b"name: t\nmodality: video\npreprocessing:\n  resize: [32, 32]\n  num_frames: 4\n",
    "audio": b"name: t\nmodality: audio\n",
}


def tiny_safetensors() -> bytes:
    return st_save({"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(2, dtype=np.float16)})


def raw_safetensors(header: dict | bytes, data: bytes = b"", *, length: int | None = None) -> bytes:
    """A safetensors file with an arbitrary (possibly broken) header."""
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(blob) if length is None else length
    return struct.pack("<Q", n) + blob + data


def package_files(modality: str = "image") -> dict[str, bytes]:
    """A small valid package (weights are not the template's; fine for format checks)."""
    return {
        "model_config.yaml": GOOD_YAML[modality],
        "model.py": model_source(modality).encode(),
        "model.safetensors": tiny_safetensors(),
    }


def write_dir(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def write_zip(
    path: Path,
    files: dict[str, bytes] | list[tuple[str | zipfile.ZipInfo, bytes]],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    items = list(files.items()) if isinstance(files, dict) else files
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in items:
            zf.writestr(name, data)
    return path


def central_entries(data: bytes) -> list[int]:
    """Offsets of every central directory file header."""
    out, i = [], data.find(b"PK\x01\x02")
    while i >= 0:
        out.append(i)
        i = data.find(b"PK\x01\x02", i + 4)
    return out


def patch_central(data: bytes, index: int, **fields: int) -> bytes:
    """Rewrite fields of the index-th central directory header (the headers zipfile trusts).

    Fields: flag_bits (@8, H), method (@10, H), compress_size (@20, L), file_size (@24, L),
    external_attr (@38, L), header_offset (@42, L).
    """
    layout = {"flag_bits": (8, "<H"), "method": (10, "<H"), "compress_size": (20, "<L"),
              "file_size": (24, "<L"), "external_attr": (38, "<L"), "header_offset": (42, "<L")}
    buf = bytearray(data)
    at = central_entries(data)[index]
    for key, value in fields.items():
        off, fmt = layout[key]
        struct.pack_into(fmt, buf, at + off, value)
    return bytes(buf)
