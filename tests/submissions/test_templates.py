"""Starter packages: they validate, load, produce [B, 2] logits and are byte-deterministic per seed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from gas.submissions.config import input_dtype, input_shape
from gas.submissions.package import load_package, pack_directory
from gas.submissions.templates import init_package
from gas.submissions.validate import validate_package
from gas.types import Modality


def _import_model_py(path: Path, tag: str):
    # Fine in tests: these are our own templates. Real packages only ever run in the sandbox.
    spec = importlib.util.spec_from_file_location(f"_tpl_{tag}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    return module


@pytest.mark.parametrize("modality", list(Modality))
def test_template_validates_loads_and_runs(tmp_path: Path, modality: Modality) -> None:
    d = init_package(modality, tmp_path / "pkg")
    assert sorted(p.name for p in d.iterdir()) == ["README.md", "model.py", "model.safetensors", "model_config.yaml"]
    report = validate_package(d)
    assert report.ok, report.to_dict()
    pkg = load_package(d)
    cfg = pkg.config
    assert cfg.modality is modality and cfg.model.num_classes == 2

    module = _import_model_py(pkg.model_path, modality.value)
    model = module.load_model(str(pkg.weights_path), **cfg.load_kwargs())
    assert isinstance(model, torch.nn.Module) and not model.training

    shape = input_shape(cfg, 2)
    if modality is Modality.VIDEO:  # keep the test quick: fewer, smaller frames than the default 16x224
        shape = (2, 4, 3, 64, 64)
    dtype = getattr(torch, input_dtype(cfg))
    gen = torch.Generator().manual_seed(0)
    if dtype == torch.uint8:
        x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
    else:
        x = torch.rand(shape, generator=gen) * 2 - 1
    with torch.no_grad():
        logits = model(x)
        assert logits.shape == (2, 2) and logits.dtype == torch.float32
        assert torch.isfinite(logits).all()
        half = model.to(torch.bfloat16)(x)  # the harness casts the model to cfg.dtype; inputs stay as sent
        assert half.shape == (2, 2)


def test_template_bytes_are_deterministic_per_seed(tmp_path: Path) -> None:
    a = init_package("image", tmp_path / "a", seed=7)
    b = init_package("image", tmp_path / "b", seed=7)
    c = init_package("image", tmp_path / "c", seed=8)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    assert pack_directory(a) == pack_directory(b)
    assert load_package(a).sha256 == load_package(b).sha256


def test_refuses_non_empty_directory_unless_overwrite(tmp_path: Path) -> None:
    d = tmp_path / "pkg"
    d.mkdir()
    (d / "notes.md").write_text("mine")
    with pytest.raises(FileExistsError):
        init_package("audio", d)
    init_package("audio", d, overwrite=True, name="custom name: with colon")
    assert (d / "notes.md").read_text() == "mine"
    pkg = load_package(d)
    assert pkg.config.name == "custom name: with colon" and pkg.config.modality is Modality.AUDIO
    with pytest.raises(FileExistsError):
        init_package("image", d / "model.py")


def test_readme_explains_validate_and_push(tmp_path: Path) -> None:
    d = init_package("video", tmp_path / "vid")
    text = (d / "README.md").read_text()
    assert "gascli d validate" in text and "gascli d push --video-model" in text
    assert "save_file" in text and "torch.load" in (d / "model.py").read_text()  # the docstring warns
