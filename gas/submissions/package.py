"""Detector packages: layout, limits, safe zip extraction and safetensors header checks.

A package is a directory, or a zip of one, holding (file names are exact):

- ``model_config.yaml``: see :mod:`gas.submissions.config`;
- ``model.py``: defines ``load_model(weights_path, num_classes=2, **kwargs) -> torch.nn.Module``;
- one or more ``*.safetensors`` files (``model.weights_file``, default ``model.safetensors``);
- optionally ``config.json`` (for ``AutoModel.from_pretrained``) and documentation files
  (``*.md``, ``*.txt``, ``LICENSE``, ``NOTICE``), which nothing in GAS reads.

Files sit at the zip root (the reference layout); a zip whose files all sit in one top-level folder
(``zip -r m.zip my_model/``) is accepted too and that folder is stripped. Nothing else is accepted:
no sub-directories, no other code, no pickle/ONNX weights. Editor and OS junk (names starting with
``.``, ``__MACOSX/``, ``__pycache__/``) is ignored, never extracted.

:func:`load_package` never trusts a zip's headers: sizes are capped from the central directory and
again while streaming, and each file is written with ``O_EXCL | O_NOFOLLOW`` into a fresh directory,
then made read-only. Every ``.safetensors`` header is parsed (never unpickled) and checked against
the file size. These checks make a package safe to *hand to the sandbox*; they do not make its code
safe to run (see :mod:`gas.submissions.static_check`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gas.submissions.config import CONFIG_FILENAME, ConfigError, ModelConfig, load_config
from gas.types import Modality

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

MODEL_FILENAME = "model.py"
HF_CONFIG_FILENAME = "config.json"
REQUIRED_FILES = (CONFIG_FILENAME, MODEL_FILENAME)

_CHUNK = 1 * MiB
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}$")
_IGNORED_DIRS = frozenset({"__MACOSX", "__pycache__"})
_DOC_NAMES = frozenset({"LICENSE", "LICENCE", "NOTICE", "COPYING"})
_DOC_SUFFIXES = (".md", ".txt")
_PICKLE_SUFFIXES = frozenset(
    {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".onnx", ".joblib", ".npy", ".npz",
     ".h5", ".hdf5", ".keras", ".pb", ".tflite", ".msgpack", ".dill"}
)
_NATIVE_SUFFIXES = frozenset({".so", ".dll", ".dylib", ".pyd", ".pyc", ".pyo", ".exe", ".whl", ".egg"})


class PackageError(ValueError):
    """A package fails a check. ``check`` is a short id, the message names the file.

    Check ids: ``archive`` (not a readable zip / too large / corrupt), ``zip-slip`` (absolute path,
    ``..``, backslash or drive letter), ``bad-name``, ``symlink``, ``special-file``, ``zip-encrypted``,
    ``zip-compression``, ``zip-bomb`` (compression ratio, streamed size over the declared size,
    overlapping entries), ``total-size``, ``file-count``, ``file-size``, ``duplicate-name``,
    ``nested-path``, ``forbidden-file`` (pickle/ONNX/native code), ``unexpected-file``,
    ``missing-file``, ``config``, ``safetensors-header``, ``static-check``, ``changed``.
    """

    def __init__(self, check: str, message: str, *, file: str | None = None) -> None:
        self.check = check
        self.file = file
        super().__init__(message)


@dataclass(frozen=True)
class PackageLimits:
    """Caps applied before anything is extracted, and again while streaming.

    Defaults: zip <= 1 GiB, all files together <= 2 GiB uncompressed, <= 64 files (<= 256 raw zip
    entries, directories and ignored junk included), per-entry compression ratio <= 100 for entries of
    1 MiB or more, ``model.py`` <= 1 MiB, ``model_config.yaml`` <= 64 KiB, ``config.json`` <= 1 MiB,
    documentation files <= 256 KiB each, each ``.safetensors`` <= 2 GiB with a JSON header <= 100 MB.
    """

    max_archive_bytes: int = 1 * GiB
    max_total_bytes: int = 2 * GiB
    max_files: int = 64
    max_entries: int = 256
    max_ratio: float = 100.0
    ratio_min_bytes: int = 1 * MiB
    max_model_py_bytes: int = 1 * MiB
    max_config_yaml_bytes: int = 64 * KiB
    max_config_json_bytes: int = 1 * MiB
    max_doc_bytes: int = 256 * KiB
    max_safetensors_bytes: int = 2 * GiB
    max_safetensors_header_bytes: int = 100_000_000
    max_central_directory_bytes: int = 1 * MiB

    def file_limit(self, kind: str) -> int:
        return {
            "config": self.max_config_yaml_bytes,
            "code": self.max_model_py_bytes,
            "hf_config": self.max_config_json_bytes,
            "weights": self.max_safetensors_bytes,
            "doc": self.max_doc_bytes,
        }[kind]


@dataclass(frozen=True)
class PackageFile:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelPackage:
    """A package that passed every pre-run check.

    ``root`` is the directory holding the files (the extraction directory for a zip, the directory
    itself otherwise). ``sha256`` hashes the package bytes: the zip file as given, or for a directory
    the deterministic zip of :func:`pack_directory`. ``owns_root`` is true when ``root`` is a temporary
    directory made by :func:`load_package`; :meth:`cleanup` (or ``with``) removes it.
    """

    root: Path
    config: ModelConfig
    sha256: str
    files: tuple[PackageFile, ...]
    source: Path
    archive_path: Path | None = None
    owns_root: bool = False

    @property
    def modality(self) -> Modality:
        return self.config.modality

    @property
    def weights_path(self) -> Path:
        return self.root / self.config.model.weights_file

    @property
    def model_path(self) -> Path:
        return self.root / MODEL_FILENAME

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def archive_bytes(self) -> bytes:
        """The bytes ``sha256`` covers. Raises ``PackageError('changed')`` if they changed on disk."""
        if self.archive_path is not None:
            data = self.archive_path.read_bytes()
        else:
            data = pack_directory(self.root)
        if hashlib.sha256(data).hexdigest() != self.sha256:
            where = self.archive_path or self.root
            raise PackageError("changed", f"{where}: package changed on disk since it was validated")
        return data

    def cleanup(self) -> None:
        """Remove ``root`` if :func:`load_package` created it."""
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ModelPackage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


# --------------------------------------------------------------------------------------------------
# file classification


def classify(name: str) -> tuple[str | None, PackageError | None]:
    """The kind of a root-level file (``config``, ``code``, ``hf_config``, ``weights``, ``doc``), or why
    it is not accepted."""
    lower = name.lower()
    suffix = os.path.splitext(lower)[1]
    if name == CONFIG_FILENAME:
        return "config", None
    if name == MODEL_FILENAME:
        return "code", None
    if name == HF_CONFIG_FILENAME:
        return "hf_config", None
    if suffix == ".safetensors" and lower != ".safetensors":
        return "weights", None
    if name in _DOC_NAMES or suffix in _DOC_SUFFIXES:
        return "doc", None
    if suffix in _PICKLE_SUFFIXES:
        return None, PackageError(
            "forbidden-file",
            f"{name}: pickle/onnx weights are not accepted; convert to safetensors "
            "(safetensors.torch.save_file(model.state_dict(), 'model.safetensors'))",
            file=name,
        )
    if suffix in _NATIVE_SUFFIXES:
        return None, PackageError("forbidden-file", f"{name}: native or compiled code is not accepted", file=name)
    if suffix == ".py":
        return None, PackageError(
            "forbidden-file",
            f"{name}: only model.py may hold code; put everything in model.py "
            "(other modules are never analysed)",
            file=name,
        )
    hint = ""
    if lower in ("model_config.yml", "model_config.yaml", "model.py"):
        hint = f" (did you mean {CONFIG_FILENAME if 'config' in lower else MODEL_FILENAME}? names are exact)"
    return None, PackageError(
        "unexpected-file",
        f"{name}: not allowed in a package{hint}; allowed: {CONFIG_FILENAME}, {MODEL_FILENAME}, "
        f"*.safetensors, {HF_CONFIG_FILENAME}, *.md, *.txt, LICENSE",
        file=name,
    )


def _ignored(parts: Iterable[str]) -> bool:
    return any(p in _IGNORED_DIRS or p.startswith(".") for p in parts)


def _name_problem(raw: str) -> PackageError | None:
    """Path-safety of a raw zip member name (before any normalisation)."""
    shown = ascii(raw)
    if "\\" in raw:
        return PackageError("zip-slip", f"{shown}: backslash in a member name", file=raw)
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        return PackageError("zip-slip", f"{shown}: absolute path", file=raw)
    parts = raw.rstrip("/").split("/")
    if ".." in parts:
        return PackageError("zip-slip", f"{shown}: '..' in a member name", file=raw)
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        return PackageError("bad-name", f"{shown}: control character in a member name", file=raw)
    if raw in ("", "/") or any(p in ("", ".") for p in parts):
        return PackageError("bad-name", f"{shown}: empty or '.' path component", file=raw)
    return None


# --------------------------------------------------------------------------------------------------
# safetensors


_ST_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E4M3FN": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}


@dataclass(frozen=True)
class SafetensorsInfo:
    tensors: int
    parameters: int
    data_bytes: int
    dtypes: tuple[str, ...]
    metadata: dict[str, str] = field(default_factory=dict)


def _not_safetensors(head: bytes) -> str | None:
    if head[:1] == b"\x80":
        return "is a Python pickle (starts with the pickle protocol byte 0x80), not safetensors"
    if head[:4] == b"PK\x03\x04":
        return "is a zip archive (the torch.save format, which holds a pickle), not safetensors"
    if head[:6] == b"\x93NUMPY":
        return "is a numpy .npy file (may hold a pickle), not safetensors"
    if head[:4] == b"\x89HDF":
        return "is an HDF5 file, not safetensors"
    return None


def _st_fail(name: str, why: str) -> PackageError:
    return PackageError("safetensors-header", f"{name}: {why}", file=name)


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _bad_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def check_safetensors(
    path: str | os.PathLike[str], *, limits: PackageLimits = PackageLimits(), name: str | None = None
) -> SafetensorsInfo:
    """Parse and check a ``.safetensors`` header without loading any tensor or unpickling anything.

    Checks: 8-byte little-endian header length within bounds and within the file; UTF-8 JSON object
    with no duplicate keys; ``__metadata__`` a string-to-string map; every tensor has exactly
    ``dtype`` (known), ``shape`` (non-negative ints) and ``data_offsets`` ``[begin, end]`` with
    ``end - begin == numel * itemsize``; offsets neither overlap nor leave holes and cover the data
    section exactly. Pickles and ``torch.save`` zips posing as safetensors are named as such.
    """
    path = Path(path)
    name = name or path.name
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _st_fail(name, f"cannot open: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(9)
        n = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else -1
        plausible = len(head) == 9 and 2 <= n <= limits.max_safetensors_header_bytes and 8 + n <= size
        if not plausible or head[8:9] != b"{":
            # Only a file that is not a plausible safetensors file is diagnosed by its magic bytes: a
            # real header length can start with 0x80 or "PK".
            disguised = _not_safetensors(head)
            if disguised:
                raise _st_fail(name, disguised)
        if len(head) < 8:
            raise _st_fail(name, f"file is {size} bytes, too short for a safetensors header")
        if n > limits.max_safetensors_header_bytes:
            raise _st_fail(name, f"header length {n} exceeds {limits.max_safetensors_header_bytes} bytes "
                                 "(not a safetensors file?)")
        if n < 2 or 8 + n > size:
            raise _st_fail(name, f"header length {n} does not fit in the {size}-byte file")
        if head[8:9] != b"{":
            raise _st_fail(name, "header does not start with '{'")
        raw = head[8:] + fh.read(n - 1)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_dupes, parse_constant=_bad_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _st_fail(name, f"header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise _st_fail(name, "header is not a JSON object")

    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _st_fail(name, "__metadata__ must map strings to strings")

    data_len = size - 8 - n
    spans: list[tuple[int, int, str]] = []
    params = 0
    dtypes: set[str] = set()
    for tname, spec in header.items():
        where = f"tensor {tname!r}"
        if not tname:
            raise _st_fail(name, "empty tensor name")
        if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
            raise _st_fail(name, f"{where}: must have exactly dtype, shape and data_offsets")
        dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
        if dtype not in _ST_DTYPES:
            raise _st_fail(name, f"{where}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or len(shape) > 64 or not all(
            type(d) is int and d >= 0 for d in shape
        ):
            raise _st_fail(name, f"{where}: shape must be a list of non-negative integers")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int and o >= 0 for o in offsets)
            or offsets[0] > offsets[1]
        ):
            raise _st_fail(name, f"{where}: data_offsets must be [begin, end] with 0 <= begin <= end")
        numel = 1
        for d in shape:
            numel *= d
        begin, end = offsets
        if end > data_len:
            raise _st_fail(name, f"{where}: data_offsets end {end} is beyond the end of the file "
                                 f"(data section is {data_len} bytes)")
        if end - begin != numel * _ST_DTYPES[dtype]:
            raise _st_fail(name, f"{where}: {end - begin} bytes for shape {shape} of {dtype} "
                                 f"(expected {numel * _ST_DTYPES[dtype]})")
        spans.append((begin, end, tname))
        params += numel
        dtypes.add(dtype)

    expected = 0
    for begin, end, tname in sorted(spans):
        if begin < expected:
            raise _st_fail(name, f"tensor {tname!r}: data_offsets overlap another tensor")
        if begin > expected:
            raise _st_fail(name, f"tensor {tname!r}: hole in the data section before offset {begin}")
        expected = end
    if expected != data_len:
        raise _st_fail(name, f"{data_len - expected} trailing bytes after the last tensor")
    return SafetensorsInfo(len(spans), params, data_len, tuple(sorted(dtypes)), dict(metadata))


# --------------------------------------------------------------------------------------------------
# the staged pipeline (shared by load_package and validate_package)


@dataclass
class _Member:
    name: str
    kind: str | None
    size: int
    info: zipfile.ZipInfo | None = None
    problem: PackageError | None = None  # classification or per-file size problem: not extracted

    @property
    def ok(self) -> bool:
        return self.kind is not None and self.problem is None


def _open_nofollow(path: Path) -> IO[bytes]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    return os.fdopen(fd, "rb")


class _Pipeline:
    """Runs the checks stage by stage; each stage returns its problems (empty list = passed).

    Stages, in order: ``layout`` (zip safety / directory scan, counts, totals, extraction),
    ``files`` (allowed names, per-file limits, required files), ``config``, ``safetensors``,
    ``static``. A ``layout`` problem is fatal: later stages are skipped.
    """

    STAGES = ("layout", "files", "config", "safetensors", "static")

    def __init__(
        self,
        source: str | os.PathLike[str],
        *,
        dest: str | os.PathLike[str] | None,
        limits: PackageLimits,
        modality: Modality | str | None,
        extract: bool = True,
    ) -> None:
        self.source = Path(source)
        self.limits = limits
        self.modality = modality
        self.dest = Path(dest) if dest is not None else None
        self.extract = extract
        self.is_zip = False
        self.members: list[_Member] = []
        self.root: Path | None = None
        self.owns_root = False
        self.created_root = False
        self.config: ModelConfig | None = None
        self.archive_sha256: str | None = None
        self.file_hashes: dict[str, str] = {}
        self.fatal = False
        self.static_findings: list[Any] = []
        self.safetensors_info: dict[str, SafetensorsInfo] = {}

    # -- helpers -------------------------------------------------------------------------------

    def kept(self, kind: str | None = None) -> list[_Member]:
        return [m for m in self.members if m.ok and (kind is None or m.kind == kind)]

    def run(self, stage: str) -> list[PackageError] | None:
        """The stage's problems, or None when it was skipped (an earlier problem left nothing to check)."""
        if self.fatal and stage != "layout":
            return None
        problems = getattr(self, f"_stage_{stage}")()
        if stage == "layout" and problems:
            self.fatal = True
            self.abort()
        return problems

    def abort(self) -> None:
        """Remove whatever this pipeline extracted."""
        if self.root is None or not self.is_zip:
            return
        if self.created_root:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            for m in self.members:
                try:
                    (self.root / m.name).unlink()
                except OSError:
                    pass
        self.root = None

    # -- layout --------------------------------------------------------------------------------

    def _stage_layout(self) -> list[PackageError]:
        src = self.source
        if src.is_dir():
            return self._scan_dir(src)
        if not src.exists():
            return [PackageError("archive", f"{src}: no such file or directory", file=str(src))]
        if not src.is_file():
            return [PackageError("archive", f"{src}: not a zip file or a directory", file=str(src))]
        self.is_zip = True
        return self._scan_zip(src)

    def _check_totals(self, entries: int) -> list[PackageError]:
        problems: list[PackageError] = []
        files = self.members
        if len(files) > self.limits.max_files or entries > self.limits.max_entries:
            problems.append(PackageError(
                "file-count",
                f"{self.source.name}: {len(files)} files in {entries} entries; at most "
                f"{self.limits.max_files} files and {self.limits.max_entries} entries allowed",
            ))
        total = sum(m.size for m in files if m.ok)
        if total > self.limits.max_total_bytes:
            problems.append(PackageError(
                "total-size",
                f"{self.source.name}: {total} bytes uncompressed; at most {self.limits.max_total_bytes} allowed",
            ))
        seen: dict[str, str] = {}
        for m in files:
            key = m.name.lower()
            if key in seen:
                problems.append(PackageError(
                    "duplicate-name", f"{m.name}: duplicate file name (also {seen[key]!r})", file=m.name
                ))
            seen[key] = m.name
        return problems

    def _add_member(self, name: str, size: int, info: zipfile.ZipInfo | None) -> None:
        kind, problem = classify(name)
        if kind is not None and _NAME_RE.match(name) is None:
            kind, problem = None, PackageError(
                "bad-name", f"{ascii(name)}: file names may use only letters, digits and ._+-", file=name
            )
        if kind is not None and size > self.limits.file_limit(kind):
            problem = PackageError(
                "file-size", f"{name}: {size} bytes; at most {self.limits.file_limit(kind)} allowed", file=name
            )
        self.members.append(_Member(name, kind, size, info, problem))

    def _scan_dir(self, root: Path) -> list[PackageError]:
        problems: list[PackageError] = []
        self.root = root.resolve()
        try:
            with os.scandir(self.root) as it:
                entries = sorted((e for e in it if not _ignored([e.name])), key=lambda e: e.name)
        except OSError as exc:
            return [PackageError("archive", f"{root}: cannot list: {exc.strerror or exc}", file=str(root))]
        if len(entries) > self.limits.max_entries:
            return [PackageError("file-count", f"{root}: {len(entries)} entries; at most "
                                               f"{self.limits.max_files} files allowed")]
        for e in entries:
            if any(ord(c) < 32 or ord(c) == 127 for c in e.name):
                problems.append(PackageError("bad-name", f"{ascii(e.name)}: control character in a name"))
                continue
            if e.is_symlink():
                problems.append(PackageError("symlink", f"{e.name}: symbolic links are not allowed", file=e.name))
            elif e.is_dir(follow_symlinks=False):
                problems.append(PackageError(
                    "nested-path", f"{e.name}/: sub-directories are not allowed; all files sit at the root",
                    file=e.name,
                ))
            elif not e.is_file(follow_symlinks=False):
                problems.append(PackageError("special-file", f"{e.name}: not a regular file", file=e.name))
            else:
                self._add_member(e.name, e.stat(follow_symlinks=False).st_size, None)
        return problems + self._check_totals(len(entries))

    def _scan_zip(self, path: Path) -> list[PackageError]:
        lim = self.limits
        try:
            fh = _open_nofollow(path)
        except OSError as exc:
            return [PackageError("archive", f"{path.name}: cannot open: {exc.strerror or exc}", file=path.name)]
        with fh:
            size = os.fstat(fh.fileno()).st_size
            if size > lim.max_archive_bytes:
                return [PackageError("archive", f"{path.name}: {size} bytes; packages are at most "
                                                f"{lim.max_archive_bytes} bytes", file=path.name)]
            digest = hashlib.sha256()
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
            self.archive_sha256 = digest.hexdigest()
            early = self._eocd_check(fh, size, path.name)
            if early:
                return [early]
            fh.seek(0)
            try:
                zf = zipfile.ZipFile(fh)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
                return [PackageError("archive", f"{path.name}: not a readable zip archive: {exc}", file=path.name)]
            with zf:
                problems = self._scan_infos(zf.infolist(), size)
                if problems:
                    return problems
                return self._extract(zf)

    def _eocd_check(self, fh: IO[bytes], size: int, shown: str) -> PackageError | None:
        """Bound the entry count from the end record before zipfile parses the central directory."""
        tail_len = min(size, 22 + 0xFFFF)
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
        i = tail.rfind(b"PK\x05\x06")
        if i < 0 or len(tail) - i < 22:
            return PackageError("archive", f"{shown}: not a zip archive (no end of central directory)", file=shown)
        _, _, _, n_disk, n_total, cd_size, _, _ = struct.unpack("<4s4H2LH", tail[i : i + 22])
        if n_total == 0xFFFF or n_disk == 0xFFFF or max(n_total, n_disk) > self.limits.max_entries:
            return PackageError("file-count", f"{shown}: too many zip entries (at most "
                                              f"{self.limits.max_entries} entries, {self.limits.max_files} files)")
        if cd_size != 0xFFFFFFFF and cd_size > self.limits.max_central_directory_bytes:
            return PackageError("archive", f"{shown}: central directory of {cd_size} bytes is too large")
        return None

    def _scan_infos(self, infos: list[zipfile.ZipInfo], archive_size: int) -> list[PackageError]:
        lim = self.limits
        problems: list[PackageError] = []
        if len(infos) > lim.max_entries:
            return [PackageError("file-count", f"{self.source.name}: {len(infos)} zip entries; at most "
                                               f"{lim.max_entries} allowed")]
        candidates: list[tuple[list[str], zipfile.ZipInfo]] = []
        for info in infos:
            raw = info.orig_filename
            bad = _name_problem(raw)
            if bad:
                problems.append(bad)
                continue
            mode = (info.external_attr >> 16) & 0xFFFF
            ftype = stat.S_IFMT(mode)
            if ftype == stat.S_IFLNK:
                problems.append(PackageError("symlink", f"{raw}: symbolic links are not allowed", file=raw))
                continue
            if ftype not in (0, stat.S_IFREG, stat.S_IFDIR):
                problems.append(PackageError("special-file", f"{raw}: not a regular file", file=raw))
                continue
            if info.flag_bits & 0x1:
                problems.append(PackageError("zip-encrypted", f"{raw}: encrypted entries are not accepted", file=raw))
                continue
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                problems.append(PackageError(
                    "zip-compression", f"{raw}: compression method {info.compress_type} is not accepted "
                                       "(use stored or deflate)", file=raw,
                ))
                continue
            parts = raw.rstrip("/").split("/")
            if _ignored(parts):
                continue
            if info.is_dir():
                candidates.append((parts, info))
                continue
            if info.file_size >= lim.ratio_min_bytes and (
                info.compress_size == 0 or info.file_size / info.compress_size > lim.max_ratio
            ):
                problems.append(PackageError(
                    "zip-bomb", f"{raw}: compression ratio {info.file_size}/{info.compress_size} exceeds "
                                f"{lim.max_ratio:g}", file=raw,
                ))
                continue
            if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
                problems.append(PackageError("archive", f"{raw}: stored entry with inconsistent sizes", file=raw))
                continue
            candidates.append((parts, info))

        problems += self._overlaps(infos, archive_size)

        # One optional top-level folder, no deeper nesting.
        file_parts = [p for p, i in candidates if not i.is_dir()]
        prefix: str | None = None
        if file_parts and all(len(p) == 2 for p in file_parts) and len({p[0] for p in file_parts}) == 1:
            prefix = file_parts[0][0]
        for parts, info in candidates:
            if prefix is not None and parts[0] == prefix:
                parts = parts[1:]
            if info.is_dir():
                if parts:
                    problems.append(PackageError(
                        "nested-path", f"{info.orig_filename}: sub-directories are not allowed", file=info.orig_filename
                    ))
                continue
            if len(parts) != 1:
                problems.append(PackageError(
                    "nested-path",
                    f"{info.orig_filename}: files must sit at the zip root (or in one top-level folder)",
                    file=info.orig_filename,
                ))
                continue
            self._add_member(parts[0], info.file_size, info)
        return problems + self._check_totals(len(infos))

    def _overlaps(self, infos: list[zipfile.ZipInfo], archive_size: int) -> list[PackageError]:
        """Entries whose data overlaps the next local header: the non-recursive zip bomb."""
        ordered = sorted(infos, key=lambda i: i.header_offset)
        for cur, nxt in zip(ordered, [*ordered[1:], None], strict=True):
            end = cur.header_offset + 30 + cur.compress_size
            limit = nxt.header_offset if nxt is not None else archive_size
            if end > limit:
                return [PackageError(
                    "zip-bomb", f"{cur.orig_filename}: entry data overlaps another entry or runs past the "
                                "end of the archive", file=cur.orig_filename,
                )]
        return []

    def _extract(self, zf: zipfile.ZipFile) -> list[PackageError]:
        if not self.extract:
            return []
        if self.dest is None:
            self.root = Path(tempfile.mkdtemp(prefix="gas-pkg-"))
            self.owns_root = self.created_root = True
        else:
            if self.dest.exists():
                if not self.dest.is_dir() or self.dest.is_symlink() or any(self.dest.iterdir()):
                    return [PackageError("archive", f"{self.dest}: extraction target must be an empty directory")]
            else:
                self.dest.mkdir(parents=True)
                self.created_root = True
            self.root = self.dest.resolve()
        total = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        for m in self.kept():
            assert m.info is not None
            limit = self.limits.file_limit(m.kind or "doc")
            digest = hashlib.sha256()
            written = 0
            try:
                fd = os.open(self.root / m.name, flags, 0o600)
                with os.fdopen(fd, "wb") as out, zf.open(m.info) as src:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        total += len(chunk)
                        if written > m.info.file_size or written > limit or total > self.limits.max_total_bytes:
                            return [PackageError(
                                "zip-bomb", f"{m.name}: decompressed data exceeds its declared size or the "
                                            "size limits", file=m.name,
                            )]
                        digest.update(chunk)
                        out.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
                return [PackageError(
                    "archive", f"{m.name}: cannot extract ({exc}); its data does not match the declared size "
                               "or checksum (corrupt archive or zip bomb)", file=m.name,
                )]
            if written != m.info.file_size:
                return [PackageError("archive", f"{m.name}: {written} bytes extracted, "
                                                f"{m.info.file_size} declared", file=m.name)]
            os.chmod(self.root / m.name, 0o444)
            self.file_hashes[m.name] = digest.hexdigest()
        return []

    # -- files ---------------------------------------------------------------------------------

    def _stage_files(self) -> list[PackageError]:
        problems = [m.problem for m in self.members if m.problem is not None]
        names = {m.name for m in self.members}
        for req in REQUIRED_FILES:
            if req not in names:
                problems.append(PackageError("missing-file", f"{req}: required file is missing", file=req))
        if not any(m.kind == "weights" for m in self.members):
            problems.append(PackageError(
                "missing-file", "*.safetensors: the package has no safetensors weights file", file="*.safetensors"
            ))
        return problems

    # -- config --------------------------------------------------------------------------------

    def _stage_config(self) -> list[PackageError] | None:
        if not self.kept("config") or self.root is None:
            return None
        try:
            self.config = load_config(
                self.root / CONFIG_FILENAME, modality=self.modality, max_bytes=self.limits.max_config_yaml_bytes
            )
        except ConfigError as exc:
            err = PackageError("config", str(exc), file=CONFIG_FILENAME)
            err.problems = exc.problems  # type: ignore[attr-defined]
            return [err]
        wf = self.config.model.weights_file
        if wf not in {m.name for m in self.kept("weights")}:
            return [PackageError(
                "missing-file", f"{wf}: named by model.weights_file in {CONFIG_FILENAME} but not in the package",
                file=wf,
            )]
        return []

    # -- safetensors ---------------------------------------------------------------------------

    def _stage_safetensors(self) -> list[PackageError] | None:
        problems: list[PackageError] = []
        if self.root is None or not self.kept("weights"):
            return None
        for m in self.kept("weights"):
            try:
                self.safetensors_info[m.name] = check_safetensors(self.root / m.name, limits=self.limits, name=m.name)
            except PackageError as exc:
                problems.append(exc)
        return problems

    # -- static --------------------------------------------------------------------------------

    def _stage_static(self) -> list[PackageError] | None:
        from gas.submissions.static_check import StaticCheckError, check_model_source

        if self.root is None or not self.kept("code"):
            return None
        with _open_nofollow(self.root / MODEL_FILENAME) as fh:
            data = fh.read(self.limits.max_model_py_bytes + 1)
        try:
            source = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return [PackageError("static-check", f"{MODEL_FILENAME}: not UTF-8 text", file=MODEL_FILENAME)]
        self.static_findings = check_model_source(source, MODEL_FILENAME)
        return [StaticCheckError(self.static_findings, MODEL_FILENAME)] if self.static_findings else []

    # -- result --------------------------------------------------------------------------------

    def build(self) -> ModelPackage:
        assert self.root is not None and self.config is not None and not self.fatal
        kept = self.kept()
        if self.is_zip:
            sha = self.archive_sha256
            assert sha is not None
        else:
            buf = tempfile.SpooledTemporaryFile(max_size=32 * MiB)
            with buf:
                self.file_hashes = _write_zip(self.root, [m.name for m in kept], buf)
                buf.seek(0)
                digest = hashlib.sha256()
                while chunk := buf.read(_CHUNK):
                    digest.update(chunk)
                sha = digest.hexdigest()
        files = tuple(PackageFile(m.name, m.size, self.file_hashes[m.name]) for m in sorted(kept, key=lambda m: m.name))
        return ModelPackage(
            root=self.root,
            config=self.config,
            sha256=sha,
            files=files,
            source=self.source,
            archive_path=self.source.resolve() if self.is_zip else None,
            owns_root=self.owns_root,
        )


# --------------------------------------------------------------------------------------------------
# public API


def load_package(
    path: str | os.PathLike[str],
    *,
    dest: str | os.PathLike[str] | None = None,
    limits: PackageLimits = PackageLimits(),
    modality: Modality | str | None = None,
    static_check: bool = True,
) -> ModelPackage:
    """Validate a package (a ``.zip`` or a directory) and return it; raise the first ``PackageError``.

    A zip is extracted into ``dest`` (which must be missing or empty; default: a new temporary
    directory the package owns, see :meth:`ModelPackage.cleanup`) and its files made read-only. A
    directory is checked in place and hashed as :func:`pack_directory` would zip it; it can change
    afterwards, so the validator only ever runs packages it extracted itself.

    ``modality`` is what the package is submitted as; it fills a missing ``modality:`` key and must
    match a present one. ``static_check=False`` skips the AST pre-filter of ``model.py``.
    """
    pipe = _Pipeline(path, dest=dest, limits=limits, modality=modality)
    try:
        for stage in _Pipeline.STAGES:
            if stage == "static" and not static_check:
                continue
            problems = pipe.run(stage)
            if problems:
                raise problems[0]
        return pipe.build()
    except BaseException:
        pipe.abort()
        raise


def _write_zip(root: Path, names: Iterable[str], out: IO[bytes]) -> dict[str, str]:
    """Write ``names`` from ``root`` as a deterministic zip; return each file's sha256.

    Entries are sorted, stored uncompressed (identical bytes whatever the zlib build), dated
    1980-01-01 00:00:00, mode 0644, Unix creator, no extra fields.
    """
    hashes: dict[str, str] = {}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in sorted(names):
            path = root / name
            with _open_nofollow(path) as src:
                size = os.fstat(src.fileno()).st_size
                info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
                info.compress_type = zipfile.ZIP_STORED
                info.create_system = 3
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                info.file_size = size
                digest = hashlib.sha256()
                copied = 0
                with zf.open(info, "w") as dst:
                    while chunk := src.read(_CHUNK):
                        copied += len(chunk)
                        digest.update(chunk)
                        dst.write(chunk)
                if copied != size:
                    raise PackageError("changed", f"{name}: changed while being packed", file=name)
                hashes[name] = digest.hexdigest()
    return hashes


def _packable(src: str | os.PathLike[str], limits: PackageLimits) -> tuple[Path, list[str]]:
    pipe = _Pipeline(src, dest=None, limits=limits, modality=None, extract=False)
    if not Path(src).is_dir():
        raise PackageError("archive", f"{src}: not a directory")
    for stage in ("layout", "files"):
        problems = pipe.run(stage)
        if problems:
            raise problems[0]
    assert pipe.root is not None
    return pipe.root, [m.name for m in pipe.kept()]


def pack_directory(src: str | os.PathLike[str], *, limits: PackageLimits = PackageLimits()) -> bytes:
    """A deterministic zip of a package directory: the same files always give the same bytes.

    Only the package's files are included (ignored junk such as ``.git`` or ``__pycache__`` is left
    out); a directory with a forbidden or unexpected file raises ``PackageError``.
    """
    root, names = _packable(src, limits)
    buf = io.BytesIO()
    _write_zip(root, names, buf)
    return buf.getvalue()


def pack_directory_to(
    src: str | os.PathLike[str], dest: str | os.PathLike[str], *, limits: PackageLimits = PackageLimits()
) -> str:
    """Write :func:`pack_directory`'s zip to ``dest`` without holding it in memory; return its sha256."""
    root, names = _packable(src, limits)
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".partial")
    with open(tmp, "w+b") as fh:
        _write_zip(root, names, fh)
        fh.seek(0)
        digest = hashlib.sha256()
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    os.replace(tmp, dest)
    return digest.hexdigest()
