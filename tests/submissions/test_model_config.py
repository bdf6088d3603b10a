"""model_config.yaml schema: defaults, wire compatibility with the reference, field-named errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gas.submissions.config import (
    AUDIO_SAMPLES,
    ConfigError,
    ModelConfig,
    input_dtype,
    input_shape,
    load_config,
    parse_config,
)
from gas.types import Modality


def _load(tmp_path: Path, text: str, **kw) -> ModelConfig:
    p = tmp_path / "model_config.yaml"
    p.write_text(text)
    return load_config(p, **kw)


def test_defaults_match_the_reference() -> None:
    cfg = parse_config({"modality": "image"})
    assert cfg.name == "unnamed" and cfg.version is None
    assert cfg.dtype == "float32"
    assert cfg.preprocessing.resize == (224, 224)
    assert cfg.preprocessing.num_frames == 16
    assert cfg.model.num_classes == 2 and cfg.model.weights_file == "model.safetensors"
    assert cfg.load_kwargs() == {"num_classes": 2}
    assert cfg.warnings == ()


def test_reference_style_file_loads(tmp_path: Path) -> None:
    text = """
name: "my-detector"
version: 1.0
dtype: BF16
preprocessing:
  resize: [256, 192]
  max_frames: 8
  normalize: {mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
model:
  num_classes: 3
  weights_file: weights-v2.safetensors
  backbone: vit_small
  dropout: 0.1
  layers: [1, 2, {a: null}]
"""
    cfg = _load(tmp_path, text, modality="video")  # the reference takes modality from the CLI flag
    assert cfg.modality is Modality.VIDEO
    assert cfg.version == "1.0"
    assert cfg.dtype == "bfloat16"
    assert cfg.preprocessing.resize == (256, 192)
    assert cfg.preprocessing.num_frames == 8  # max_frames fallback
    assert cfg.model.weights_file == "weights-v2.safetensors"
    assert cfg.load_kwargs() == {
        "num_classes": 3, "backbone": "vit_small", "dropout": 0.1, "layers": [1, 2, {"a": None}]
    }
    assert any("normalize" in w for w in cfg.warnings)
    assert input_shape(cfg, 4) == (4, 8, 3, 256, 192)
    assert input_dtype(cfg) == "uint8"


@pytest.mark.parametrize("alias,canon", [
    ("float32", "float32"), ("FP32", "float32"), ("fp16", "float16"), ("Float16", "float16"),
    ("bf16", "bfloat16"), ("BFLOAT16", "bfloat16"),
])
def test_dtype_aliases(alias: str, canon: str) -> None:
    assert parse_config({"modality": "image", "dtype": alias}).dtype == canon


@pytest.mark.parametrize("doc,needle", [
    ({"modality": "image", "model": {"num_classes": 0}}, "model.num_classes: must be >= 1"),
    ({"modality": "image", "model": {"num_classes": 17}}, "model.num_classes: must be <= 16"),
    ({"modality": "image", "model": {"num_classes": "2"}}, "model.num_classes: must be an integer"),
    ({"modality": "image", "model": {"num_classes": True}}, "model.num_classes: must be an integer"),
    ({"modality": "image", "preprocessing": {"resize": [8, 224]}}, "preprocessing.resize[0]: must be >= 16"),
    ({"modality": "image", "preprocessing": {"resize": [224, 4096]}}, "preprocessing.resize[1]: must be <= 1024"),
    ({"modality": "image", "preprocessing": {"resize": [224]}}, "preprocessing.resize: must be a list of exactly 2"),
    ({"modality": "image", "preprocessing": {"resize": 224}}, "preprocessing.resize: must be a list"),
    ({"modality": "video", "preprocessing": {"num_frames": 65}}, "preprocessing.num_frames: must be <= 64"),
    ({"modality": "video", "preprocessing": {"num_frames": 0}}, "preprocessing.num_frames: must be >= 1"),
    ({"modality": "video", "preprocessing": {"frame_rate": 0}}, "preprocessing.frame_rate: must be > 0"),
    ({"modality": "video", "preprocessing": {"frame_rate": ".nan"}}, "preprocessing.frame_rate: must be a number"),
    ({"modality": "image", "dtype": "int8"}, "dtype: must be one of"),
    ({"modality": "picture"}, "modality: must be one of image, video, audio"),
    ({}, "modality: required"),
    ({"modality": "image", "model": {"weights_file": "../x.safetensors"}}, "model.weights_file: must be a plain"),
    ({"modality": "image", "model": {"weights_file": "sub/x.safetensors"}}, "model.weights_file: must be a plain"),
    ({"modality": "image", "model": {"weights_file": "/abs/x.safetensors"}}, "model.weights_file: must be a plain"),
    ({"modality": "image", "model": {"weights_file": "model.pt"}}, "model.weights_file: must be a file name ending"),
    ({"modality": "image", "model": {"weights_file": 3}}, "model.weights_file: must be a string"),
    ({"modality": "image", "model": {"not-an-id": 1}}, "model.not-an-id: key must be a Python identifier"),
    ({"modality": "image", "model": {"weights_path": "x"}}, "model.weights_path: reserved name"),
    ({"modality": "image", "model": {"blob": b"\x00"}}, "model.blob: must be a plain YAML scalar"),
    ({"modality": "image", "model": {"s": {1, 2}}}, "model.s: must be a plain YAML scalar"),
    ({"modality": "image", "model": [1, 2]}, "model: must be a mapping"),
    ({"modality": "image", "preprocessing": "x"}, "preprocessing: must be a mapping"),
])
def test_errors_name_the_field(doc: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(doc)
    assert needle in str(exc.value)
    assert str(exc.value).startswith("model_config.yaml: ")
    assert exc.value.check == "config"


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"modality": "image", "dtype": "x", "model": {"num_classes": 0}})
    assert len(exc.value.problems) == 2


def test_modality_argument_fills_or_must_match() -> None:
    assert parse_config({}, modality="audio").modality is Modality.AUDIO
    assert parse_config({"modality": "Image"}, modality=Modality.IMAGE).modality is Modality.IMAGE
    with pytest.raises(ConfigError, match="modality: is 'video' but the package was submitted as 'image'"):
        parse_config({"modality": "video"}, modality="image")


def test_audio_settings_are_accepted_but_only_16k_6s_honoured() -> None:
    cfg = parse_config({"modality": "audio", "preprocessing": {"sample_rate": 44100, "duration_seconds": 10}})
    assert len(cfg.warnings) == 2 and all("not honoured" in w for w in cfg.warnings)
    assert input_shape(cfg, 3) == (3, AUDIO_SAMPLES)
    assert input_dtype(cfg) == "float32"
    ok = parse_config({"modality": "audio", "preprocessing": {"sample_rate": 16000, "duration_seconds": 6.0}})
    assert ok.warnings == ()


def test_unknown_keys_are_ignored_with_a_warning() -> None:
    cfg = parse_config({"modality": "image", "author": "me", "preprocessing": {"crop": 1}})
    assert "author: unknown key, ignored" in cfg.warnings
    assert "preprocessing.crop: unknown key, ignored" in cfg.warnings


def test_num_frames_without_resize_warns_about_the_reference_quirk() -> None:
    cfg = parse_config({"modality": "video", "preprocessing": {"num_frames": 8}})
    assert cfg.preprocessing.num_frames == 8
    assert any("ignores it unless" in w for w in cfg.warnings)


def test_input_shapes() -> None:
    img = parse_config({"modality": "image", "preprocessing": {"resize": [64, 48]}})
    assert input_shape(img, 2) == (2, 3, 64, 48)
    with pytest.raises(ValueError):
        input_shape(img, 0)


def test_config_is_frozen() -> None:
    cfg = parse_config({"modality": "image"})
    with pytest.raises(ValidationError):
        cfg.dtype = "float16"  # type: ignore[misc]


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid YAML: line 3"):
        _load(tmp_path, "modality: image\nmodel: [unclosed\n")
    with pytest.raises(ConfigError, match="top level must be a mapping, got list"):
        _load(tmp_path, "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="the file is empty"):
        _load(tmp_path, "")
    with pytest.raises(ConfigError, match="larger than"):
        _load(tmp_path, "modality: image\n" + "#" * 70_000 + "\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(p)


def test_python_tags_are_not_constructed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        _load(tmp_path, "modality: !!python/object/apply:os.system ['true']\n")


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["modality: image", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    with pytest.raises(ConfigError, match="more than"):
        _load(tmp_path, "\n".join(lines) + "\n")


_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_docs = st.recursive(_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                     max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["name", "modality", "dtype", "preprocessing", "model", "x"]), _docs))
def test_arbitrary_documents_only_raise_config_error(doc: dict) -> None:
    try:
        parse_config(doc)
    except ConfigError:
        pass
