"""``model_config.yaml``: the schema of a detector package's configuration.

Wire-compatible with the reference harness (gasbench): a reference package's yaml loads here and
means the same thing. Differences, all stricter or more explicit:

- ``modality`` is **required** here (``image``, ``video`` or ``audio``). The reference reads the
  modality from the CLI flag and ignores this key. A package without it can still be loaded when the
  caller supplies the modality (``load_config(path, modality=...)``), as the reference does.
- Values are range-checked: ``preprocessing.resize`` is ``[H, W]`` with each side in 16..1024,
  ``preprocessing.num_frames`` in 1..64 (the reference silently clamps to 64),
  ``model.num_classes`` in 1..16.
- ``model.weights_file`` must be a plain file name ending in ``.safetensors`` (the reference joins
  any string to the model directory, path traversal included).
- ``preprocessing.num_frames`` is honoured even without ``resize`` (the reference then uses 16).
- ``preprocessing.sample_rate`` / ``duration_seconds`` are accepted but, as in the reference, audio
  is always 16 kHz mono, 6.0 s (96000 samples); other values only produce a warning.
- ``preprocessing.normalize`` is accepted and ignored, as in the reference: ``forward`` normalises.
- Every other key under ``model:`` is passed to ``load_model`` as a keyword argument
  (``ModelSection.extra_kwargs``); values must be plain YAML scalars, lists or mappings.

Errors are :class:`ConfigError`; each line names the field path and the reason, e.g.
``model_config.yaml: model.num_classes: must be >= 1``.
"""

from __future__ import annotations

import keyword
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gas.types import Modality

CONFIG_FILENAME = "model_config.yaml"
DEFAULT_WEIGHTS_FILE = "model.safetensors"

#: Largest accepted ``model_config.yaml``.
MAX_CONFIG_BYTES = 64 * 1024
#: Bounds on the parsed YAML document (they defeat alias "billion laughs" documents).
MAX_CONFIG_NODES = 10_000
MAX_CONFIG_DEPTH = 32

MIN_RESIZE, MAX_RESIZE = 16, 1024
DEFAULT_RESIZE = (224, 224)
DEFAULT_NUM_FRAMES = 16
MAX_NUM_FRAMES = 64
MAX_NUM_CLASSES = 16

#: Audio input, fixed whatever the config says (as in the reference harness).
AUDIO_SAMPLE_RATE = 16_000
AUDIO_DURATION_S = 6.0
AUDIO_SAMPLES = 96_000

DType = Literal["float32", "float16", "bfloat16"]
_DTYPE_ALIASES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}

_TOP_KEYS = ("name", "version", "modality", "dtype", "preprocessing", "model")
_PRE_KEYS = ("resize", "num_frames", "max_frames", "frame_rate", "sample_rate", "duration_seconds")
_RESERVED_KWARGS = ("weights_path", "num_classes", "weights_file")

_StrictInt = Annotated[int, Field(strict=True)]
_Side = Annotated[int, Field(strict=True, ge=MIN_RESIZE, le=MAX_RESIZE)]


class ConfigError(ValueError):
    """``model_config.yaml`` is unreadable or has bad values.

    ``problems`` holds one ``"<field.path>: <reason>"`` string per problem; ``str(err)`` prefixes each
    with the file name.
    """

    check = "config"

    def __init__(self, problems: list[str] | str, source: str = CONFIG_FILENAME) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))


class Preprocessing(BaseModel):
    """The ``preprocessing:`` section. Unknown keys are ignored (see ``ModelConfig.warnings``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    resize: tuple[_Side, _Side] = DEFAULT_RESIZE
    num_frames: _StrictInt = Field(DEFAULT_NUM_FRAMES, ge=1, le=MAX_NUM_FRAMES)
    frame_rate: float | None = Field(None, strict=True, gt=0)
    sample_rate: float | None = Field(None, strict=True, gt=0)
    duration_seconds: float | None = Field(None, strict=True, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _max_frames_fallback(cls, data: Any) -> Any:
        # The reference reads ``num_frames``, then ``max_frames``, then 16.
        if isinstance(data, Mapping) and "num_frames" not in data and "max_frames" in data:
            data = dict(data)
            data["num_frames"] = data.pop("max_frames")
        return data

    @field_validator("frame_rate", "sample_rate", "duration_seconds")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class ModelSection(BaseModel):
    """The ``model:`` section. Keys other than these two become ``extra_kwargs``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_classes: _StrictInt = Field(2, ge=1, le=MAX_NUM_CLASSES)
    weights_file: str = DEFAULT_WEIGHTS_FILE
    extra_kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split_extras(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        known = {k: data[k] for k in ("num_classes", "weights_file") if k in data}
        known["extra_kwargs"] = {k: v for k, v in data.items() if k not in ("num_classes", "weights_file")}
        return known

    @field_validator("weights_file", mode="before")
    @classmethod
    def _weights_file(cls, v: Any) -> Any:
        if not isinstance(v, str):
            raise ValueError("must be a string")
        problem = weights_file_problem(v)
        if problem:
            raise ValueError(problem)
        return v


class ModelConfig(BaseModel):
    """A parsed ``model_config.yaml``.

    ``dtype`` is normalised to ``float32``/``float16``/``bfloat16`` (``getattr(torch, cfg.dtype)``
    gives the torch dtype). ``warnings`` lists accepted-but-ignored settings; it is not a YAML key.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    name: str = "unnamed"
    version: str | None = None
    modality: Modality
    dtype: DType = "float32"
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    model: ModelSection = Field(default_factory=ModelSection)
    warnings: tuple[str, ...] = Field(default=(), exclude=True)

    @field_validator("name", "version", mode="before")
    @classmethod
    def _scalar_to_str(cls, v: Any) -> Any:
        # Informational only; accept `version: 1.0` the way YAML writes it.
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("modality", mode="before")
    @classmethod
    def _modality(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip().lower()
            if v not in {m.value for m in Modality}:
                raise ValueError("must be one of image, video, audio")
        return v

    @field_validator("dtype", mode="before")
    @classmethod
    def _dtype(cls, v: Any) -> Any:
        if not isinstance(v, str) or v.strip().lower() not in _DTYPE_ALIASES:
            raise ValueError("must be one of " + ", ".join(_DTYPE_ALIASES))
        return _DTYPE_ALIASES[v.strip().lower()]

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def weights_file(self) -> str:
        return self.model.weights_file

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``load_model(weights_path, **kwargs)``, as the reference passes them."""
        return {"num_classes": self.model.num_classes, **self.model.extra_kwargs}


def weights_file_problem(name: str) -> str | None:
    """Why ``name`` is not an acceptable ``model.weights_file`` (None when it is)."""
    if not name.endswith(".safetensors") or name == ".safetensors":
        return "must be a file name ending in .safetensors"
    if "/" in name or "\\" in name or name in (".", "..") or ".." in name.split("."):
        return "must be a plain file name in the package root (no directories or '..')"
    if name.startswith(".") or any(ord(c) < 32 or c == "\x7f" for c in name) or ":" in name:
        return "must be a plain file name (no leading dot, control characters or ':')"
    return None


# --------------------------------------------------------------------------------------------------
# parsing


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _friendly(err: dict[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "missing":
        return "required"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        op = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}
        bound = next(iter(ctx.values()), "?")
        return f"must be {op[kind]} {bound}"
    if kind.startswith("int_"):
        return "must be an integer"
    if kind.startswith("float_"):
        return "must be a number"
    if kind.startswith("string_"):
        return "must be a string"
    if kind in ("tuple_type", "list_type"):
        return "must be a list"
    if kind in ("too_short", "too_long"):
        return "must be a list of exactly 2 integers [height, width]"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a mapping"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(err["msg"])


def _walk_budget(data: Any) -> str | None:
    """Refuse documents that are too large or too deep once YAML aliases are expanded."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_CONFIG_NODES:
            return f"document has more than {MAX_CONFIG_NODES} values (YAML alias expansion?)"
        if depth > MAX_CONFIG_DEPTH:
            return f"document is nested deeper than {MAX_CONFIG_DEPTH} levels"
        if isinstance(node, Mapping):
            for k, v in node.items():
                stack.append((k, depth + 1))
                stack.append((v, depth + 1))
        elif isinstance(node, (list, tuple)):
            stack.extend((v, depth + 1) for v in node)
    return None


def _plain_value_problem(value: Any) -> str | None:
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be a finite number"
    if isinstance(value, list):
        for item in value:
            p = _plain_value_problem(item)
            if p:
                return p
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return "mapping keys must be strings"
            p = _plain_value_problem(v)
            if p:
                return p
        return None
    return f"must be a plain YAML scalar, list or mapping (got {type(value).__name__})"


def parse_config(
    data: Any, *, modality: Modality | str | None = None, source: str = CONFIG_FILENAME
) -> ModelConfig:
    """Validate an already-parsed YAML document.

    ``modality`` is what the package was submitted as (the reference harness's CLI flag). It fills a
    missing ``modality:`` key; a different value in the file is an error.
    """
    if data is None:
        raise ConfigError("the file is empty", source)
    if not isinstance(data, Mapping):
        raise ConfigError(f"the top level must be a mapping, got {type(data).__name__}", source)
    budget = _walk_budget(data)
    if budget:
        raise ConfigError(budget, source)
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError(f"top-level keys must be strings, got {bad_keys[0]!r}", source)

    problems: list[str] = []
    warnings: list[str] = []
    doc = {k: v for k, v in data.items() if k in _TOP_KEYS}
    warnings += [f"{k}: unknown key, ignored" for k in data if k not in _TOP_KEYS]

    if modality is not None:
        want = Modality(modality)
        if "modality" not in doc or doc["modality"] is None:
            doc["modality"] = want.value
        elif isinstance(doc["modality"], str) and doc["modality"].strip().lower() != want.value:
            problems.append(
                f"modality: is {doc['modality']!r} but the package was submitted as {want.value!r}"
            )

    pre = doc.get("preprocessing")
    if pre is None and "preprocessing" in doc:
        doc.pop("preprocessing")
    elif isinstance(pre, Mapping):
        for k in pre:
            if k == "normalize":
                warnings.append("preprocessing.normalize: ignored (as in the reference); normalise in forward()")
            elif k not in _PRE_KEYS:
                warnings.append(f"preprocessing.{k}: unknown key, ignored")

    section = doc.get("model")
    if section is None and "model" in doc:
        doc.pop("model")
    elif isinstance(section, Mapping):
        for k, v in section.items():
            if k in ("num_classes", "weights_file"):
                continue
            path = f"model.{k}"
            if not isinstance(k, str) or not k.isidentifier() or keyword.iskeyword(k):
                problems.append(f"{path}: key must be a Python identifier (it becomes a load_model argument)")
            elif k in _RESERVED_KWARGS:
                problems.append(f"{path}: reserved name")
            else:
                p = _plain_value_problem(v)
                if p:
                    problems.append(f"{path}: {p}")

    try:
        cfg = ModelConfig.model_validate(doc)
    except ValidationError as exc:
        seen: set[str] = set()
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if p != "extra_kwargs")
            if loc[:2] == ("preprocessing", "resize") and err["type"] in ("missing", "too_short", "too_long"):
                loc, msg = loc[:2], "must be a list of exactly 2 integers [height, width]"
            elif loc == ("modality",) and err["type"] == "missing":
                msg = (
                    "required (image, video or audio); the reference harness takes it from the CLI "
                    "flag, GAS needs it in the file"
                )
            else:
                msg = _friendly(err)
            line = f"{_loc(loc)}: {msg}"
            if line not in seen:
                seen.add(line)
                problems.append(line)
        cfg = None
    if problems or cfg is None:
        raise ConfigError(problems, source)

    pp = cfg.preprocessing
    if pp.sample_rate is not None and pp.sample_rate != AUDIO_SAMPLE_RATE:
        warnings.append(
            f"preprocessing.sample_rate: {pp.sample_rate:g} is not honoured; audio is always "
            f"{AUDIO_SAMPLE_RATE} Hz mono, {AUDIO_DURATION_S} s ({AUDIO_SAMPLES} samples)"
        )
    if pp.duration_seconds is not None and pp.duration_seconds != AUDIO_DURATION_S:
        warnings.append(
            f"preprocessing.duration_seconds: {pp.duration_seconds:g} is not honoured; audio is always "
            f"{AUDIO_DURATION_S} s at {AUDIO_SAMPLE_RATE} Hz ({AUDIO_SAMPLES} samples)"
        )
    if (
        cfg.modality is Modality.VIDEO
        and "num_frames" in pp.model_fields_set
        and "resize" not in pp.model_fields_set
        and pp.num_frames != DEFAULT_NUM_FRAMES
    ):
        warnings.append(
            "preprocessing.num_frames: honoured here, but the reference harness ignores it unless "
            "preprocessing.resize is also set (it would use 16 frames)"
        )
    return cfg.model_copy(update={"warnings": tuple(warnings)})


def load_config(
    path: str | os.PathLike[str],
    *,
    modality: Modality | str | None = None,
    max_bytes: int = MAX_CONFIG_BYTES,
) -> ModelConfig:
    """Read and validate a ``model_config.yaml`` (``yaml.safe_load``, at most ``max_bytes``)."""
    path = Path(path)
    source = path.name or CONFIG_FILENAME
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source) from exc
    if len(raw) > max_bytes:
        raise ConfigError(f"larger than {max_bytes} bytes", source)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", source) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(f"invalid YAML: {where}{exc.problem or exc}", source) from exc
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"invalid YAML: {type(exc).__name__}", source) from exc
    return parse_config(data, modality=modality, source=source)


# --------------------------------------------------------------------------------------------------
# model inputs


def input_shape(cfg: ModelConfig, batch: int) -> tuple[int, ...]:
    """The tensor shape ``forward`` receives for a batch of ``batch`` samples.

    image ``[B, 3, H, W]``, video ``[B, T, 3, H, W]``, audio ``[B, 96000]``.
    """
    if batch < 1:
        raise ValueError("batch must be >= 1")
    h, w = cfg.preprocessing.resize
    if cfg.modality is Modality.IMAGE:
        return (batch, 3, h, w)
    if cfg.modality is Modality.VIDEO:
        return (batch, cfg.preprocessing.num_frames, 3, h, w)
    return (batch, AUDIO_SAMPLES)


def input_dtype(cfg: ModelConfig) -> str:
    """The input dtype's name, valid for both numpy and torch: ``uint8`` (image, video) or ``float32``.

    Inputs are never cast to ``cfg.dtype``; the model casts them itself.
    """
    return "float32" if cfg.modality is Modality.AUDIO else "uint8"
