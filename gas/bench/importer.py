"""Import media into local datasets: from a folder, or from a Hugging Face dataset repo.

Bytes are copied exactly as found (never decoded and re-saved, unlike the reference harness's
JPEG-q75 cache, W1). Each file is sniffed by its magic bytes so that a mislabelled or truncated
file (an HTML error page named ``.jpg``, an empty file) is skipped and counted, not imported.

Hugging Face imports pin the revision to a commit first (``repo_info``), list the repo tree at
that commit, take the media files of the modality (``include``/``exclude`` substring filters,
an optional ``media_type`` extension) and, when a repo has no loose media files, the media bytes
of its parquet shards (``image``/``audio``/``video`` columns, HF ``{bytes, path}`` structs included).
``max_samples`` picks a seeded random subset, not the first N in listing order (W6). A file the
listing gives an LFS sha256 for is checked against it after download.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from gas.bench.dataset import (
    MEDIA_EXTENSIONS,
    DatasetError,
    DatasetItem,
    LocalDataset,
    check_name,
    sha256_bytes,
    write_dataset,
)
from gas.types import MediaLabel, Modality

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]  # (done, total or None)


@dataclass
class ImportReport:
    """What an import did. ``warnings`` has one line per skipped file."""

    dataset: LocalDataset | None = None
    imported: int = 0
    skipped_unreadable: int = 0
    skipped_invalid: int = 0
    skipped_duplicate: int = 0
    revision: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.skipped_unreadable + self.skipped_invalid + self.skipped_duplicate

    def skip(self, kind: str, where: str, reason: str) -> None:
        """Count one skipped file (``kind``: unreadable or invalid) and say why in ``warnings``."""
        setattr(self, f"skipped_{kind}", getattr(self, f"skipped_{kind}") + 1)
        self.warnings.append(f"{where}: {reason}")


def sniff_media(data: bytes) -> tuple[Modality, str] | None:
    """``(modality, extension)`` from a file's magic bytes, or None when it is no known media type.

    mp4/mov containers (``ftyp``) are reported as video unless the brand is an audio one (M4A/M4B).
    """
    head = bytes(data[:32])
    if head.startswith(b"\xff\xd8\xff"):
        return Modality.IMAGE, ".jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Modality.IMAGE, ".png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Modality.IMAGE, ".gif"
    if head.startswith(b"BM") and len(data) > 26:
        return Modality.IMAGE, ".bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return Modality.IMAGE, ".tif"
    if head.startswith(b"RIFF") and len(head) >= 12:
        kind = head[8:12]
        if kind == b"WEBP":
            return Modality.IMAGE, ".webp"
        if kind == b"WAVE":
            return Modality.AUDIO, ".wav"
        if kind == b"AVI ":
            return Modality.VIDEO, ".avi"
        return None
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            return Modality.AUDIO, ".m4a"
        return Modality.VIDEO, (".mov" if brand == b"qt  " else ".mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Modality.VIDEO, (".webm" if b"webm" in bytes(data[:64]) else ".mkv")
    if head.startswith(b"fLaC"):
        return Modality.AUDIO, ".flac"
    if head.startswith(b"OggS"):
        return Modality.AUDIO, (".opus" if b"OpusHead" in bytes(data[:64]) else ".ogg")
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        # MPEG audio frame sync (mp3) or ADTS AAC (0xFFF1/0xFFF9)
        return Modality.AUDIO, (".aac" if head[0] == 0xFF and head[1] & 0xF6 == 0xF0 else ".mp3")
    return None


def _exts(modality: Modality, media_type: str | None) -> frozenset[str]:
    if media_type and media_type != "parquet":
        ext = "." + media_type.lower().lstrip(".")
        return frozenset({".jpg", ".jpeg"} if ext in (".jpg", ".jpeg") else {ext})
    return MEDIA_EXTENSIONS[modality]


def _check_media(data: bytes, modality: Modality) -> str | None:
    """None when ``data`` sniffs as the modality; else why not."""
    if not data:
        return "empty file"
    found = sniff_media(data)
    if found is None:
        return "not a recognised media file"
    if found[0] is not modality:
        # mp4-family containers hold either; let audio datasets take .mp4/.m4a audio-only files
        if not (modality is Modality.AUDIO and found[1] in (".mp4", ".mov")):
            return f"looks like {found[0].value} ({found[1]}), not {modality.value}"
    return None


def _order(items: list, max_samples: int | None, seed: int) -> list:
    """All items in listing order, or, with a cap, every item in a seeded random order: the import
    takes them in that order until ``max_samples`` were imported, so a skipped file is replaced by
    the next one instead of leaving the dataset short (and the subset is not the first N, W6)."""
    if max_samples is None:
        return items
    if max_samples < 1:
        raise DatasetError("max_samples must be at least 1")
    out = list(items)
    random.Random(seed).shuffle(out)
    return out


def _check_dest(dest_root: Path | str, name: str, overwrite: bool) -> None:
    target = Path(dest_root).expanduser() / check_name(name)
    if target.exists() and not overwrite:
        raise DatasetError(f"{target} already exists (pass overwrite=True / --overwrite to replace it)")


def _finish(
    report: ImportReport,
    dest_root: Path,
    name: str,
    modality: Modality,
    items: Iterable[DatasetItem],
    overwrite: bool,
    max_samples: int | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    shas: set[str] = set()

    def counted() -> Iterator[DatasetItem]:
        for it in items:
            digest = sha256_bytes(it.data)
            if digest in shas:
                report.skipped_duplicate += 1
                continue
            shas.add(digest)
            report.imported += 1
            yield it
            if progress:
                progress(report.imported, max_samples)
            if max_samples is not None and report.imported >= max_samples:
                return  # stop consuming: nothing more is read or downloaded

    try:
        report.dataset = write_dataset(Path(dest_root) / name, name, counted(), modality, overwrite=overwrite)
    except DatasetError as e:
        if report.imported == 0:
            detail = f" ({report.skipped} file(s) skipped; first: {report.warnings[0]})" if report.warnings else ""
            raise DatasetError(f"import of {name!r}: no usable {modality.value} files{detail}") from e
        raise
    for w in report.warnings:
        log.warning("import %s: %s", name, w)
    return report


# --------------------------------------------------------------------------------------------
# folder
# --------------------------------------------------------------------------------------------
def import_folder(
    src_dir: Path | str,
    dest_root: Path | str,
    name: str,
    modality: Modality | str,
    label: MediaLabel | str,
    source: str | None = None,
    *,
    max_samples: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Copy the media files of ``src_dir`` (recursively, by extension) into ``dest_root/name``.

    ``source`` prefixes each row's provenance (default ``folder:<src_dir>``; the row gets
    ``<source>/<relative path>``). Unreadable and non-media files are skipped and counted.
    """
    src = Path(src_dir).expanduser().resolve()
    _check_dest(dest_root, name, overwrite)
    modality, label = Modality(modality), MediaLabel(label)
    if not src.is_dir():
        raise DatasetError(f"import: {src} is not a directory")
    exts = MEDIA_EXTENSIONS[modality]
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if not fn.startswith(".") and os.path.splitext(fn)[1].lower() in exts:
                files.append(Path(dirpath) / fn)
    if not files:
        raise DatasetError(f"import: no {modality.value} files ({', '.join(sorted(exts))}) under {src}")
    files = _order(files, max_samples, seed)
    prefix = source or f"folder:{src}"
    report = ImportReport()

    def items() -> Iterator[DatasetItem]:
        for f in files:
            rel = f.relative_to(src).as_posix()
            try:
                data = f.read_bytes()
            except OSError as e:
                report.skip("unreadable", rel, f"unreadable ({e.strerror or e})")
                continue
            problem = _check_media(data, modality)
            if problem:
                report.skip("invalid", rel, problem)
                continue
            yield DatasetItem(f"samples/{rel}", data, label, f"{prefix}/{rel}")

    cap = max_samples if max_samples is not None else len(files)
    return _finish(report, Path(dest_root), name, modality, items(), overwrite, max_samples, _total(progress, cap))


# --------------------------------------------------------------------------------------------
# Hugging Face
# --------------------------------------------------------------------------------------------
_PARQUET_COLUMNS = {
    Modality.IMAGE: ("image", "img", "jpg", "png", "picture"),
    Modality.VIDEO: ("video", "mp4", "bytes", "content"),
    Modality.AUDIO: ("audio", "wav", "flac", "mp3", "speech"),
}


def _cell_bytes(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, dict):  # HF Image/Audio/Video features: {"bytes": ..., "path": ...}
        b = value.get("bytes")
        return bytes(b) if isinstance(b, bytes | bytearray) else None
    return None


def _media_columns(schema, modality: Modality) -> list[str]:
    """Columns that can hold media bytes, best match first: exact names, then substrings."""
    import pyarrow as pa

    def holds_bytes(t) -> bool:
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            return True
        return pa.types.is_struct(t) and any(
            t.field(i).name == "bytes" and (pa.types.is_binary(t.field(i).type) or pa.types.is_large_binary(t.field(i).type))
            for i in range(t.num_fields)
        )

    candidates = [f.name for f in schema if holds_bytes(f.type)]
    keys = _PARQUET_COLUMNS[modality]
    exact = [c for c in candidates if c.lower() in keys]
    fuzzy = [c for c in candidates if c not in exact and any(k in c.lower() for k in keys) and "_id" not in c.lower()]
    return exact + fuzzy


def _parquet_items(path: Path, modality: Modality) -> Iterator[tuple[int, bytes]]:
    """``(row, bytes)`` of the first media column of a parquet shard, read one row group at a time."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    cols = _media_columns(pf.schema_arrow, modality)
    if not cols:
        return
    row = 0
    for g in range(pf.num_row_groups):
        for value in pf.read_row_group(g, columns=[cols[0]]).column(0).to_pylist():
            data = _cell_bytes(value)
            if data:
                yield row, data
            row += 1


def _hf_error(repo_id: str, revision: str | None, e: Exception) -> DatasetError:
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(e, GatedRepoError):
        return DatasetError(f"hf://{repo_id} is gated: accept its terms on the Hub and set HF_TOKEN")
    if isinstance(e, RepositoryNotFoundError):
        return DatasetError(f"hf://{repo_id}: no such dataset repo (or it is private: set HF_TOKEN)")
    if isinstance(e, RevisionNotFoundError):
        return DatasetError(f"hf://{repo_id}: revision {revision!r} not found")
    if isinstance(e, HfHubHTTPError):
        return DatasetError(f"hf://{repo_id}: {' '.join(str(e).split())[:300]}")
    detail = " ".join(str(e).split())[:200] or type(e).__name__
    return DatasetError(f"hf://{repo_id}: cannot reach the Hugging Face Hub ({type(e).__name__}: {detail})")


def import_hf(
    repo_id: str,
    dest_root: Path | str,
    name: str,
    modality: Modality | str,
    label: MediaLabel | str,
    *,
    revision: str | None = None,
    max_samples: int | None = None,
    api: Any | None = None,
    token: str | None = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    media_type: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import media files (or parquet media columns) of the HF dataset repo ``repo_id``.

    ``api`` is an ``huggingface_hub.HfApi`` (tests pass one aimed at a fake endpoint); ``token``
    defaults to the environment's ``HF_TOKEN``. Rows get ``source = hf://repo@commit/path[#row]``.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    repo_id = repo_id.removeprefix("hf://")
    _check_dest(dest_root, name, overwrite)
    modality, label = Modality(modality), MediaLabel(label)
    api = api or HfApi(token=token)
    include, exclude = [s for s in include if s], [s for s in exclude if s]
    try:
        info = api.repo_info(repo_id, repo_type="dataset", revision=revision)
        commit = info.sha or revision or "main"
        tree = [
            f
            for f in api.list_repo_tree(repo_id, repo_type="dataset", revision=commit, recursive=True)
            if isinstance(f, RepoFile)
        ]
    except Exception as e:  # HTTP errors, and httpx2 transport errors when the Hub is unreachable
        raise _hf_error(repo_id, revision, e) from None

    def wanted(path: str) -> bool:
        return (not include or any(s in path for s in include)) and not any(s in path for s in exclude)

    exts = _exts(modality, media_type)
    media = [] if media_type == "parquet" else [f for f in tree if wanted(f.path) and PurePosixPath(f.path).suffix.lower() in exts]
    shards = [f for f in tree if wanted(f.path) and f.path.lower().endswith(".parquet")] if not media else []
    if not media and not shards:
        raise DatasetError(
            f"hf://{repo_id}@{commit[:12]}: no {modality.value} files ({', '.join(sorted(exts))}) or parquet "
            f"shards{' matching the include/exclude filters' if include or exclude else ''}"
        )
    report = ImportReport(revision=commit)
    base = f"hf://{repo_id}@{commit}"

    def expected_sha(f) -> str | None:
        lfs = getattr(f, "lfs", None)
        if lfs is None:
            return None
        return lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)

    def items(tmp: Path) -> Iterator[DatasetItem]:
        if media:
            for f in _order(media, max_samples, seed):
                try:
                    local = Path(
                        api.hf_hub_download(
                            repo_id, f.path, repo_type="dataset", revision=commit, cache_dir=tmp, token=token
                        )
                    )
                    data = local.read_bytes()
                except Exception as e:  # one failed download skips the file, not the import
                    report.skip("unreadable", f.path, f"download failed ({' '.join(str(e).split())[:160]})")
                    continue
                want = expected_sha(f)
                if want and sha256_bytes(data) != want:
                    report.skip("invalid", f.path, "sha256 differs from the Hub's LFS oid")
                    continue
                problem = _check_media(data, modality)
                if problem:
                    report.skip("invalid", f.path, problem)
                    continue
                yield DatasetItem(f"samples/{f.path}", data, label, f"{base}/{f.path}")
            return
        for f in _order(shards, max_samples, seed):
            local = Path(api.hf_hub_download(repo_id, f.path, repo_type="dataset", revision=commit, cache_dir=tmp, token=token))
            rows = list(_parquet_items(local, modality))
            if not rows:
                report.warnings.append(f"{f.path}: no {modality.value} bytes column")
                continue
            stem = PurePosixPath(f.path).with_suffix("").as_posix()
            for row, data in _order(rows, max_samples, seed):
                problem = _check_media(data, modality)
                if problem:
                    report.skip("invalid", f"{f.path}#{row}", problem)
                    continue
                ext = sniff_media(data)[1]  # type: ignore[index]  # checked above
                yield DatasetItem(f"samples/{stem}/{row:06d}{ext}", data, label, f"{base}/{f.path}#{row}")
            local.unlink(missing_ok=True)

    with tempfile.TemporaryDirectory(prefix=".hf-import-", dir=_tmp_parent(Path(dest_root))) as tmp:
        try:
            cap = max_samples if max_samples is not None else (len(media) if media else None)
            return _finish(
                report, Path(dest_root), name, modality, items(Path(tmp)), overwrite, max_samples, _total(progress, cap)
            )
        except DatasetError:
            raise
        except Exception as e:  # a parquet shard that cannot be fetched
            raise _hf_error(repo_id, revision, e) from None


def _total(progress: Progress | None, total: int | None) -> Progress | None:
    """``progress`` with the total filled in (the import knows it; :func:`_finish` does not)."""
    if progress is None:
        return None
    return lambda done, _cap: progress(done, total)


def _tmp_parent(dest_root: Path) -> Path:
    dest_root = dest_root.expanduser()
    dest_root.mkdir(parents=True, exist_ok=True)
    return dest_root
