"""Local datasets: a folder of original media bytes plus a validated parquet manifest; the registry.

A dataset is a directory ``<root>`` holding media files (any layout, usually ``samples/...``) and
``<root>/manifest.parquet``, one row per file:

=================  ==========================================================================
column             meaning
=================  ==========================================================================
sample_id          stable id, ``"<dataset name>:<sha256[:16]>"`` (content-addressed, so two
                   copies of one file are one sample and re-imports keep their ids)
path               POSIX path of the file relative to ``<root>`` (no ``..``, not absolute)
sha256             hex sha256 of the file's bytes, exactly as stored (never re-encoded)
label              ``real`` | ``synthetic`` | ``semisynthetic``
modality           ``image`` | ``video`` | ``audio`` (one per dataset)
source             provenance: ``hf://org/repo@commit/path``, ``folder:/src/a.jpg``, ``synth:...``
generator_hotkey   nullable: the miner hotkey that produced a synthetic sample
generator_model    nullable: the model that produced it
=================  ==========================================================================

The parquet schema metadata (key ``gas.dataset``) records the name, modality and format version.
Rows are validated with :class:`ManifestRow` on read; a problem names the file, the row and the
column. :func:`write_dataset` builds a dataset in a sibling staging directory and renames it into
place, so a crash never leaves a half-written dataset behind a valid manifest.

The registry (``configs/datasets/*.yaml``) names datasets and where they come from; see
:class:`DatasetEntry`, :func:`load_registry` and :func:`resolve`, and ``docs/datasets.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from gas.bench.types import Sample
from gas.types import MediaLabel, Modality

MANIFEST_NAME = "manifest.parquet"
MANIFEST_VERSION = 1
METADATA_KEY = b"gas.dataset"
COLUMNS = (
    "sample_id",
    "path",
    "sha256",
    "label",
    "modality",
    "source",
    "generator_hotkey",
    "generator_model",
)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_NAME_RE = re.compile(NAME_PATTERN)
_HF_RE = re.compile(r"^hf://(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)$")

#: File extensions taken for each modality (lower case, with the dot).
MEDIA_EXTENSIONS: dict[Modality, frozenset[str]] = {
    Modality.IMAGE: frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}),
    Modality.VIDEO: frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm"}),
    Modality.AUDIO: frozenset({".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac"}),
}


class DatasetError(ValueError):
    """A dataset or registry problem, with a message a user can act on."""


class RegistryError(DatasetError):
    """One or more invalid registry files or entries; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid dataset registry:\n  " + "\n  ".join(problems))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def make_sample_id(name: str, sha256: str) -> str:
    """The stable id of a sample: dataset name plus the first 16 hex digits of its sha256."""
    return f"{name}:{sha256[:16]}"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise DatasetError(
            f"invalid dataset name {name!r}: use letters, digits, '_', '.', '-' (up to 128, not starting "
            "with a symbol)"
        )
    return name


def _check_relpath(value: str) -> str:
    p = PurePosixPath(value)
    if (
        not value
        or "\\" in value
        or p.is_absolute()
        or any(part in ("..", "") for part in value.split("/"))
        or value.startswith("./")
    ):
        raise ValueError(f"must be a relative POSIX path inside the dataset without '..' (got {value!r})")
    if value == MANIFEST_NAME:
        raise ValueError(f"{MANIFEST_NAME!r} is reserved")
    return value


# --------------------------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------------------------
class ManifestRow(BaseModel):
    """One manifest row. ``extra`` columns are ignored (newer writers may add some)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sample_id: str = Field(min_length=1)
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    label: MediaLabel
    modality: Modality
    source: str = ""
    generator_hotkey: str | None = None
    generator_model: str | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _check_relpath(v)

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, v: Any) -> Any:
        return "" if v is None else v


def _row_problem(manifest: Path, index: int, row: dict[str, Any], err: ValidationError) -> str:
    first = err.errors()[0]
    column = ".".join(str(p) for p in first["loc"]) or "(row)"
    sid = row.get("sample_id")
    who = f" (sample_id {sid!r})" if isinstance(sid, str) and sid else ""
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"manifest {manifest}: row {index}{who}, column {column!r}: {first['msg']}{shown}"


def read_manifest(path: Path) -> tuple[list[ManifestRow], dict[str, Any]]:
    """Read and validate a manifest. Returns the rows and the ``gas.dataset`` metadata (may be {})."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DatasetError(f"no dataset manifest at {path}")
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise DatasetError(f"manifest {path} is not a readable parquet file: {e}") from None
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise DatasetError(f"manifest {path}: missing column(s) {', '.join(repr(c) for c in missing)}")
    meta: dict[str, Any] = {}
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw:
        try:
            meta = json.loads(raw)
        except ValueError:
            raise DatasetError(f"manifest {path}: metadata {METADATA_KEY.decode()!r} is not JSON") from None
    rows: list[ManifestRow] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(table.select(list(COLUMNS)).to_pylist()):
        try:
            r = ManifestRow.model_validate(row)
        except ValidationError as e:
            raise DatasetError(_row_problem(path, i, row, e)) from None
        if r.sample_id in seen:
            raise DatasetError(
                f"manifest {path}: row {i}, column 'sample_id': duplicate {r.sample_id!r} (first at row {seen[r.sample_id]})"
            )
        seen[r.sample_id] = i
        rows.append(r)
    return rows, meta


def _write_manifest(path: Path, rows: Sequence[ManifestRow], meta: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("sample_id", pa.string()),
            ("path", pa.string()),
            ("sha256", pa.string()),
            ("label", pa.string()),
            ("modality", pa.string()),
            ("source", pa.string()),
            ("generator_hotkey", pa.string()),
            ("generator_model", pa.string()),
        ],
        metadata={METADATA_KEY: json.dumps(meta, sort_keys=True).encode()},
    )
    data = {c: [] for c in COLUMNS}
    for r in rows:
        for c in COLUMNS:
            v = getattr(r, c)
            data[c].append(v.value if isinstance(v, MediaLabel | Modality) else v)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(pa.table(data, schema=schema), tmp)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# a local dataset
# --------------------------------------------------------------------------------------------
class LocalDataset:
    """A dataset on disk. The manifest is read and validated on construction."""

    def __init__(self, root: Path | str, name: str | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise DatasetError(f"dataset directory {self.root} does not exist")
        manifest = self.root / MANIFEST_NAME
        if not manifest.is_file():
            raise DatasetError(
                f"{self.root} is not a dataset: it has no {MANIFEST_NAME} (create one with `gascli data import` "
                "or `gascli data synth`)"
            )
        self.manifest_path = manifest
        self.rows, self.meta = read_manifest(manifest)
        self.name = check_name(name or self.meta.get("name") or self.root.name)
        modalities = {r.modality for r in self.rows}
        declared = self.meta.get("modality")
        if declared is not None:
            try:
                modalities.add(Modality(declared))
            except ValueError:
                raise DatasetError(f"manifest {manifest}: metadata modality {declared!r} is not a modality") from None
        if len(modalities) > 1:
            first = self.rows[0].modality if self.rows else Modality(declared)
            bad = next(i for i, r in enumerate(self.rows) if r.modality is not first)
            raise DatasetError(
                f"manifest {manifest}: row {bad}, column 'modality': {self.rows[bad].modality.value!r} differs from "
                f"{first.value!r} (a dataset has one modality)"
            )
        if not modalities:
            raise DatasetError(f"manifest {manifest} has no rows and no modality")
        self.modality: Modality = modalities.pop()

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"LocalDataset(name={self.name!r}, modality={self.modality.value!r}, n={len(self)}, root={str(self.root)!r})"

    @property
    def labels(self) -> set[MediaLabel]:
        return {r.label for r in self.rows}

    def samples(self) -> list[Sample]:
        """Every sample, in manifest order, with absolute paths."""
        return [
            Sample(
                sample_id=r.sample_id,
                dataset=self.name,
                modality=r.modality,
                label=r.label,
                path=self.root / r.path,
                sha256=r.sha256,
                source=r.source,
                generator_hotkey=r.generator_hotkey,
                generator_model=r.generator_model,
            )
            for r in self.rows
        ]

    def verify(self, sample: Sample) -> bool:
        """True when the file exists and its sha256 is the manifest's."""
        try:
            return sha256_file(Path(sample.path)) == sample.sha256
        except OSError:
            return False

    def missing(self) -> list[Sample]:
        """Samples whose file is absent (a cheap check: no hashing)."""
        return [s for s in self.samples() if not s.path.is_file()]

    def size_bytes(self) -> int:
        total = 0
        for r in self.rows:
            try:
                total += (self.root / r.path).stat().st_size
            except OSError:
                pass
        return total


class DatasetItem(NamedTuple):
    """One file for :func:`write_dataset` (a plain 6-tuple works the same)."""

    rel_path: str
    data: bytes
    label: MediaLabel | str
    source: str = ""
    generator_hotkey: str | None = None
    generator_model: str | None = None


def write_dataset(
    root: Path | str,
    name: str,
    items: Iterable[tuple],
    modality: Modality | str,
    *,
    overwrite: bool = False,
) -> LocalDataset:
    """Write a dataset at ``root`` (the dataset's own directory) from ``(rel_path, bytes, label, source,
    generator_hotkey, generator_model)`` items. Bytes are written exactly as given.

    A file whose bytes equal an earlier item's is skipped (its ``sample_id`` would repeat).
    Everything goes to a staging directory next to ``root`` first, the manifest last; the staging
    directory then replaces ``root`` (only when ``overwrite``; otherwise an existing ``root`` is an error).
    """
    root = Path(root).expanduser().resolve()
    check_name(name)
    modality = Modality(modality)
    if root.exists() and not overwrite:
        raise DatasetError(f"{root} already exists (pass overwrite=True / --overwrite to replace it)")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.parent / f".{root.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        rows: list[ManifestRow] = []
        shas: set[str] = set()
        paths: set[str] = set()
        for n, item in enumerate(items):
            it = DatasetItem(*item)
            try:
                rel = _check_relpath(it.rel_path)
            except ValueError as e:
                raise DatasetError(f"item {n}: path {e}") from None
            if rel in paths:
                raise DatasetError(f"item {n}: path {rel!r} given twice")
            if not isinstance(it.data, bytes | bytearray | memoryview):
                raise DatasetError(f"item {n} ({rel}): data must be bytes, got {type(it.data).__name__}")
            digest = sha256_bytes(it.data)
            if digest in shas:
                continue
            try:
                row = ManifestRow(
                    sample_id=make_sample_id(name, digest),
                    path=rel,
                    sha256=digest,
                    label=it.label,
                    modality=modality,
                    source=it.source or "",
                    generator_hotkey=it.generator_hotkey,
                    generator_model=it.generator_model,
                )
            except ValidationError as e:
                raise DatasetError(_row_problem(Path(f"<item {n}>"), n, {"sample_id": rel}, e)) from None
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(bytes(it.data))
            shas.add(digest)
            paths.add(rel)
            rows.append(row)
        if not rows:
            raise DatasetError(f"dataset {name!r}: no samples to write")
        meta = {"name": name, "modality": modality.value, "version": MANIFEST_VERSION}
        _write_manifest(staging / MANIFEST_NAME, rows, meta)
        if root.exists():
            old = root.parent / f".{root.name}.old-{os.getpid()}"
            os.replace(root, old)
            os.replace(staging, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return LocalDataset(root, name=name)


def datasets_dir(cache_dir: Path | str) -> Path:
    """Where datasets live under the GAS cache: ``<cache>/datasets``."""
    return Path(cache_dir).expanduser() / "datasets"


def find_local(root: Path | str) -> Iterator[Path]:
    """Dataset directories (those holding a manifest) directly under ``root``, sorted by name."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith(".") and (child / MANIFEST_NAME).is_file():
            yield child


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------
_ALL_EXTS = {e.lstrip(".") for exts in MEDIA_EXTENSIONS.values() for e in exts}


class Caps(BaseModel):
    """How many samples a mode takes from the dataset: ``small`` and ``full`` (None = all)."""

    model_config = ConfigDict(extra="forbid")

    small: int = Field(default=100, ge=1)
    full: int | None = Field(default=None, ge=1)


class DatasetEntry(BaseModel):
    """One registry entry.

    ``source`` is ``hf://org/repo`` (a Hugging Face *dataset* repo), ``local:<path>`` or a bare path;
    relative local paths resolve against ``<cache>/datasets``. ``media_type`` optionally restricts
    which files an import takes (a file extension such as ``mp4``/``png``, or ``parquet``);
    ``include_paths``/``exclude_paths`` are substring filters on repo paths; ``revision`` pins a
    branch, tag or commit of an hf source.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    modality: Modality
    label: MediaLabel
    source: str = Field(min_length=1)
    media_type: str | None = None
    include_paths: list[str] = Field(default_factory=list)
    exclude_paths: list[str] = Field(default_factory=list)
    revision: str | None = None
    caps: Caps = Field(default_factory=Caps)
    notes: str = ""

    _origin: str = PrivateAttr(default="")

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        v = v.strip()
        if v.startswith("hf://"):
            if not _HF_RE.match(v):
                raise ValueError(f"hf source must look like hf://org/repo (got {v!r})")
        elif "://" in v:
            raise ValueError(f"unsupported source scheme in {v!r}: use hf://org/repo, local:<path> or a path")
        elif v.startswith("local:") and not v[len("local:") :].strip():
            raise ValueError("local: source needs a path")
        return v

    @field_validator("media_type")
    @classmethod
    def _media_type(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip().lower().lstrip(".")
        if v in {m.value for m in MediaLabel}:
            raise ValueError(
                f"media_type is the file type to take (e.g. mp4, png, parquet), not the label; use label: {v}"
            )
        if v != "parquet" and v not in _ALL_EXTS:
            raise ValueError(f"unknown media_type {v!r}: one of parquet, {', '.join(sorted(_ALL_EXTS))}")
        return v

    @model_validator(mode="after")
    def _media_type_fits(self) -> DatasetEntry:
        if self.media_type and self.media_type != "parquet":
            if "." + self.media_type not in MEDIA_EXTENSIONS[self.modality]:
                raise ValueError(f"media_type {self.media_type!r} is not a {self.modality.value} file type")
        return self

    @property
    def origin(self) -> str:
        """``file:entry N`` where the entry was loaded from ('' if built in code)."""
        return self._origin

    @property
    def is_hf(self) -> bool:
        return self.source.startswith("hf://")

    @property
    def hf_repo(self) -> str | None:
        return self.source[len("hf://") :] if self.is_hf else None

    def path_under(self, root: Path | str) -> Path:
        """Where the dataset lives given the datasets directory ``root``: ``root/<name>`` for hf
        sources, the local path (relative ones against ``root``) otherwise."""
        root = Path(root).expanduser()
        if self.is_hf:
            return root / self.name
        raw = self.source[len("local:") :] if self.source.startswith("local:") else self.source
        p = Path(os.path.expandvars(raw.strip())).expanduser()
        return p if p.is_absolute() else root / p

    def local_path(self, cache_dir: Path | str) -> Path:
        """Where the dataset lives under the GAS cache (``<cache>/datasets``)."""
        return self.path_under(datasets_dir(cache_dir))


def default_registry_paths() -> list[Path]:
    from gas.config import project_root

    return sorted((project_root() / "configs" / "datasets").glob("*.yaml"))


def load_registry(paths: Iterable[Path | str] | None = None) -> dict[str, DatasetEntry]:
    """Load registry YAML files (``{datasets: [entry, ...]}``); directories contribute their ``*.yaml``.

    Entries keep file order, files are read in the given (default: sorted) order. Every problem,
    including a name defined twice, is collected and raised as one :class:`RegistryError` naming
    the file and the entry.
    """
    import yaml

    files: list[Path] = []
    for p in default_registry_paths() if paths is None else paths:
        p = Path(p).expanduser()
        files.extend(sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml")) if p.is_dir() else [p])
    problems: list[str] = []
    out: dict[str, DatasetEntry] = {}
    for f in files:
        try:
            doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        except OSError as e:
            problems.append(f"{f}: cannot read: {e.strerror or e}")
            continue
        except yaml.YAMLError as e:
            problems.append(f"{f}: not valid YAML: {' '.join(str(e).split())}")
            continue
        if doc is None:
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("datasets"), list):
            problems.append(f"{f}: expected a mapping with a 'datasets:' list")
            continue
        for i, raw in enumerate(doc["datasets"]):
            label = raw.get("name") if isinstance(raw, dict) else None
            where = f"{f}: entry {i}" + (f" ({label!r})" if label else "")
            if not isinstance(raw, dict):
                problems.append(f"{where}: expected a mapping, got {type(raw).__name__}")
                continue
            try:
                entry = DatasetEntry.model_validate(raw)
            except ValidationError as e:
                for err in e.errors():
                    field = ".".join(str(p) for p in err["loc"]) or "(entry)"
                    msg = err["msg"].removeprefix("Value error, ")
                    problems.append(f"{where}: {field}: {msg}")
                continue
            entry._origin = f"{f}:entry {i}"
            if entry.name in out:
                problems.append(f"{where}: duplicate dataset name {entry.name!r} (first defined at {out[entry.name].origin})")
                continue
            out[entry.name] = entry
    if problems:
        raise RegistryError(problems)
    return out


def resolve(entry: DatasetEntry, cache_dir: Path | str) -> LocalDataset:
    """The on-disk dataset of a registry entry, checked against the entry (modality and label).

    Raises :class:`DatasetError` saying what to run when it is not there yet.
    """
    path = entry.local_path(cache_dir)
    where = f" (registry {entry.origin})" if entry.origin else ""
    if not (path / MANIFEST_NAME).is_file():
        if entry.is_hf:
            raise DatasetError(
                f"dataset {entry.name!r} ({entry.source}) is not imported yet{where}: "
                f"run `gascli data import {entry.name}`"
            )
        hint = "`gascli data synth`" if entry.name.startswith("synth-") else f"`gascli data import FOLDER --name {entry.name}`"
        raise DatasetError(f"dataset {entry.name!r}: no dataset at {path}{where}; create it with {hint}")
    ds = LocalDataset(path, name=entry.name)
    if ds.modality is not entry.modality:
        raise DatasetError(
            f"dataset {entry.name!r} at {path} holds {ds.modality.value} but the registry{where} says "
            f"{entry.modality.value}"
        )
    stale = {lb.value for lb in ds.labels} - {entry.label.value}
    if stale:
        raise DatasetError(
            f"dataset {entry.name!r} at {path} has label(s) {sorted(stale)} but the registry{where} says "
            f"{entry.label.value!r}: re-import it (labels are never silently rewritten)"
        )
    return ds
