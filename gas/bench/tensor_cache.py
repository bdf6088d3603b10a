"""A disk cache of preprocessed tensors, keyed by (sample sha256, preprocessing key id).

Layout: ``<root>/<key_id>/<sha[:2]>/<sha>.npy``, one plain ``.npy`` file per tensor (no pickle:
files are read with ``allow_pickle=False``). ``key_id`` is ``PreprocessKey.id``, which carries the
preprocessing version, so a change of semantics never reads stale tensors. The runner puts the
cache at ``<GAS_CACHE_DIR>/tensors`` (:func:`default_root`).

Concurrency: any number of processes may share a root.
- Writes go to a unique temp file in the target folder, then ``os.replace`` it into place: a
  reader sees the old file, the new file or none, never a partial one.
- A file that does not load (torn by a crash, truncated, not an ``.npy``, or not the expected
  shape or dtype) is a miss and is deleted.
- Reads are one ``read()`` of the file plus a byte compare of the expected ``.npy`` header when the
  caller gives shape and dtype (``np.load`` otherwise). ``mmap=True`` memory-maps instead; it
  measured 2-3x slower for 150 KB image tensors (mapping and page faults cost more than the copy),
  but a mapped file that another process deletes or replaces stays valid for the reader (POSIX).
  Arrays returned are read-only either way.

Eviction is least-recently-used by modification time: a hit touches the file's mtime (atime is
unreliable under ``noatime``/``relatime``). Each instance keeps an estimate of the bytes under
its root (a scan at first use, plus its own writes); when a write takes it over ``max_bytes`` it
rescans and deletes the oldest files down to ``low_water * max_bytes``. Other processes' writes
are only seen at the next scan, so the root can overshoot ``max_bytes`` by what other processes
wrote since; each process's own writes never make it exceed the cap unnoticed.
"""

from __future__ import annotations

import functools
import io
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_TMP_MARK = ".tmp."
_STALE_TMP_S = 3600.0  # temp files older than this are leftovers of a crashed writer


def default_root(cache_dir: Path) -> Path:
    """The tensor cache under a GAS cache dir (``GAS_CACHE_DIR``)."""
    return Path(cache_dir) / "tensors"


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    puts: int = 0
    evictions: int = 0
    corrupt: int = 0
    bytes: int = 0  # this instance's estimate of the bytes under the root

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class TensorCache:
    """Preprocessed tensors on disk; see the module docstring for layout, LRU and concurrency."""

    def __init__(self, root: Path, max_bytes: int, *, mmap: bool = False, low_water: float = 0.9) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if not 0.0 < low_water <= 1.0:
            raise ValueError("low_water must be in (0, 1]")
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.mmap = mmap
        self.low_water = low_water
        self._stats = CacheStats()
        self._bytes: int | None = None  # lazily scanned
        self._lock = threading.Lock()
        self._root_s = os.fspath(self.root)
        self._good_keys: set[str] = set()
        self._dirs: set[str] = set()

    # -- paths --------------------------------------------------------------------------------------

    def path(self, sha256: str, key_id: str) -> Path:
        """Where the tensor of ``(sha256, key_id)`` lives (validated: no path tricks)."""
        return Path(self._fspath(sha256, key_id))

    def _fspath(self, sha256: str, key_id: str) -> str:
        if not _SHA_RE.match(sha256):
            raise ValueError(f"not a lowercase hex sha256: {sha256!r}")
        if key_id not in self._good_keys:
            if not _KEY_RE.match(key_id) or ".." in key_id:
                raise ValueError(f"bad preprocessing key id {key_id!r}")
            self._good_keys.add(key_id)
        return f"{self._root_s}/{key_id}/{sha256[:2]}/{sha256}.npy"

    # -- reads --------------------------------------------------------------------------------------

    def get(
        self,
        sha256: str,
        key_id: str,
        *,
        shape: tuple[int, ...] | None = None,
        dtype: str | np.dtype | None = None,
    ) -> np.ndarray | None:
        """The cached tensor (read-only) or None. With ``shape``/``dtype``, a mismatch is corrupt."""
        p = self._fspath(sha256, key_id)
        try:
            if shape is not None and dtype is not None and not self.mmap:
                arr = self._read_exact(p, tuple(shape), np.dtype(dtype))
            else:
                arr = np.load(p, mmap_mode="r" if self.mmap else None, allow_pickle=False)
        except FileNotFoundError:
            self._count(misses=1)
            return None
        except Exception:  # torn, truncated, not an .npy, a pickle, ...
            self._drop_corrupt(p)
            return None
        if (shape is not None and tuple(arr.shape) != tuple(shape)) or (
            dtype is not None and arr.dtype != np.dtype(dtype)
        ):
            del arr
            self._drop_corrupt(p)
            return None
        if arr.flags.writeable:
            arr.flags.writeable = False
        try:
            os.utime(p)  # LRU: a hit makes the entry the newest
        except OSError:
            pass
        self._count(hits=1)
        return arr

    @staticmethod
    def _read_exact(p: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Read a file this cache wrote for (shape, dtype): one read, a byte compare of the header.

        ``np.load`` parses the header with ``ast.literal_eval``, which costs more than reading a
        150 KB tensor; the expected header is known, so compare bytes instead.
        """
        header = _npy_header(shape, dtype.str)
        with open(p, "rb") as f:
            buf = f.read()
        n = int(np.prod(shape)) * dtype.itemsize
        if len(buf) != len(header) + n or not buf.startswith(header):
            raise ValueError("unexpected .npy header or size")
        return np.frombuffer(buf, dtype=dtype, offset=len(header)).reshape(shape)

    def __contains__(self, item: tuple[str, str]) -> bool:
        return self.path(*item).is_file()

    # -- writes -------------------------------------------------------------------------------------

    def put(self, sha256: str, key_id: str, array: np.ndarray) -> bool:
        """Store ``array`` atomically; False when it was not stored (too big, disk error)."""
        p = self.path(sha256, key_id)
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise ValueError("object arrays cannot be cached")
        size = int(array.nbytes) + 128  # .npy header
        if size > self.max_bytes:
            return False
        with self._lock:
            self._scan_total_locked()  # the estimate must predate this write
        tmp = p.with_name(f"{p.name}{_TMP_MARK}{os.getpid()}.{uuid.uuid4().hex[:8]}")
        parent = os.path.dirname(p)
        try:
            for attempt in (0, 1):
                if parent not in self._dirs:  # mkdir of an existing dir is not free on every filesystem
                    os.makedirs(parent, exist_ok=True)
                    self._dirs.add(parent)
                try:
                    f = open(tmp, "wb")
                    break
                except FileNotFoundError:  # the folder was removed under us: make it again
                    self._dirs.discard(parent)
                    if attempt:
                        raise
            with f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
            old = _size_or_zero(p)
            os.replace(tmp, p)
        except OSError:
            _unlink(tmp)
            return False
        with self._lock:
            self._stats.puts += 1
            total = self._scan_total_locked() + _size_or_zero(p) - old
            self._bytes = max(0, total)
            over = total > self.max_bytes
        if over:
            self.evict()
        return True

    # -- eviction -----------------------------------------------------------------------------------

    def evict(self, target_bytes: int | None = None) -> int:
        """Delete least-recently-used files until the root holds at most ``target_bytes``.

        Default target: ``low_water * max_bytes``. Returns the number of files deleted.
        """
        target = int(self.max_bytes * self.low_water) if target_bytes is None else int(target_bytes)
        entries, total = self._scan()
        deleted = 0
        if total > target:
            entries.sort(key=lambda e: e[0])  # oldest mtime first
            for _mtime, size, path in entries:
                if total <= target:
                    break
                if _unlink(path):
                    deleted += 1
                total -= size
        with self._lock:
            self._bytes = total
            self._stats.evictions += deleted
        return deleted

    def _scan(self) -> tuple[list[tuple[float, int, Path]], int]:
        """(mtime, size, path) of every entry, and their total; removes stale temp files."""
        entries: list[tuple[float, int, Path]] = []
        total = 0
        now = time.time()
        if not self.root.is_dir():
            return entries, 0
        for key_dir in _scandir(self.root):
            if not key_dir.is_dir(follow_symlinks=False):
                continue
            for shard in _scandir(Path(key_dir.path)):
                if not shard.is_dir(follow_symlinks=False):
                    continue
                for f in _scandir(Path(shard.path)):
                    try:
                        st = f.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if _TMP_MARK in f.name:
                        if now - st.st_mtime > _STALE_TMP_S:
                            _unlink(Path(f.path))
                        continue
                    if not f.name.endswith(".npy"):
                        continue
                    entries.append((st.st_mtime, st.st_size, Path(f.path)))
                    total += st.st_size
        return entries, total

    def _scan_total_locked(self) -> int:
        if self._bytes is None:
            self._bytes = self._scan()[1]
        return self._bytes

    # -- bookkeeping --------------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """A snapshot: hits, misses, puts, evictions, corrupt files dropped, bytes (estimate)."""
        with self._lock:
            self._scan_total_locked()
            s = CacheStats(**self._stats.as_dict())
            s.bytes = self._bytes or 0
            return s

    def _count(self, hits: int = 0, misses: int = 0) -> None:
        with self._lock:
            self._stats.hits += hits
            self._stats.misses += misses

    def _drop_corrupt(self, p: str | Path) -> None:
        _unlink(p)
        with self._lock:
            self._stats.corrupt += 1
            self._stats.misses += 1
            self._bytes = None  # rescan on next use

    def __repr__(self) -> str:
        return f"TensorCache({str(self.root)!r}, max_bytes={self.max_bytes})"


@functools.lru_cache(maxsize=64)
def _npy_header(shape: tuple[int, ...], descr: str) -> bytes:
    """The exact header ``np.save`` writes for a C-ordered array of ``shape`` and ``descr``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _scandir(path: Path):
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError:
        return []


def _size_or_zero(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _unlink(p: str | Path) -> bool:
    try:
        os.unlink(p)
        return True
    except OSError:
        return False
