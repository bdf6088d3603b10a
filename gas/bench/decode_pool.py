"""Decode + preprocess samples in worker processes, in order, with a bounded prefetch window.

Design (docs/preprocessing.md has the longer version):

- **Processes, never threads.** PIL and the Python glue around cv2/PyAV hold the GIL part of the
  time, so threads stop scaling past a few cores (shared/PERFORMANCE.md, 16 cores: 8 threads
  599 img/s, 16 threads 512, 16 processes 2,228). Workers come from ``concurrent.futures.ProcessPoolExecutor`` with the
  ``spawn`` start method (never ``fork``: the parent may hold torch, CUDA or threads). Each worker
  runs cv2 single-threaded and ignores SIGINT (the parent owns shutdown).
- **Paths, not bytes, cross the process boundary.** A worker reads the file itself, checks its
  sha256 against the manifest (mismatch -> ``DecodeError("sha256 mismatch")``), decodes,
  preprocesses, writes the tensor to the cache and hands it back through a slot of a shared
  result file (:class:`_ResultSlots`; a pickle through the executor's pipe cost ~0.3 ms per
  150 KB tensor here). Workers also raise glibc's malloc thresholds (:func:`_tune_malloc`).
- **Cache first, in the parent.** Before a sample is submitted, the parent looks its
  ``(sha256, key.id)`` up in the :class:`TensorCache`; a hit never reaches a worker.
- **In order, bounded.** At most ``prefetch`` samples are in flight (cache hits included); results
  are yielded in input order as ``(sample, array | DecodeError, seconds)``.
- **Hostile files cannot stall the run.** Decoders check a soft deadline between packets
  (``timeout_s``). A decode that blocks inside C code anyway is cut by a hard timeout: once the
  sample is the oldest outstanding one, it gets ``timeout_s + HARD_TIMEOUT_GRACE_S`` seconds, then
  it becomes ``DecodeError("decode timeout")``, the pool's processes are killed and replaced and
  the other in-flight samples are resubmitted. A worker that dies (a crashing codec) breaks the
  whole executor; the samples that were in flight are then retried one at a time, so only the one
  that crashes a worker alone becomes ``DecodeError("decoder process crashed")``.
- ``workers=0`` decodes inline in the calling process (tests, one-core machines); the soft
  deadline still applies there, the hard timeout does not.

One ``imap`` at a time per pool; the pool may be reused for several calls (and keys).
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gas.bench.preprocess import DecodeError, decode_and_preprocess
from gas.bench.tensor_cache import TensorCache
from gas.bench.types import PreprocessKey, Sample

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0
HARD_TIMEOUT_GRACE_S = 2.0
MAX_FILE_BYTES = 4 << 30  # a sample file larger than this is not read into memory
MALLOC_MMAP_THRESHOLD = 32 << 20  # worker processes only, see _tune_malloc
MALLOC_TRIM_THRESHOLD = 128 << 20

Decoder = Callable[[bytes, PreprocessKey], np.ndarray]
STARTUP_CHECK_TIMEOUT_S = 120.0


class DecodeWorkersUnavailable(RuntimeError):
    """Decode worker processes cannot start at all (a missing module, no memory, a broken install).

    This is a failure on our side, never a sample's fault: it aborts the run instead of turning every
    sample into a "decoder process crashed" error that would count against the miner.
    """
Result = tuple[Sample, "np.ndarray | DecodeError", float]


def default_workers() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ---- worker side ----------------------------------------------------------------------------------

_worker_caches: dict[tuple[str, int], TensorCache] = {}


def _tune_malloc() -> None:
    """Keep freed decode buffers in the heap instead of returning them to the OS after each sample.

    A decoded 0.8 MP image and its intermediates are several MB: glibc serves them with mmap and
    unmaps them on free, so every sample pays fresh page faults (and, with several workers, TLB
    shootdowns). Raising the mmap and trim thresholds made 2 workers 2.5x faster here (see
    docs/preprocessing.md). glibc only; elsewhere this does nothing.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, MALLOC_MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, MALLOC_TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _tune_malloc()
    _import_codecs()


def _import_codecs() -> None:
    """Import the decoders now (start-up), so their cost is not paid on the first sample."""
    import cv2

    cv2.setNumThreads(1)  # parallelism is across processes
    import av  # noqa: F401  (import cost paid at start-up, not on the first sample)
    import PIL.Image  # noqa: F401


def _warm() -> int:
    return os.getpid()


def _load_and_decode(
    path: str,
    sha256: str,
    key: PreprocessKey,
    decoder: Decoder | None,
    timeout_s: float,
) -> np.ndarray | DecodeError:
    try:
        size = os.stat(path).st_size
        if size > MAX_FILE_BYTES:
            return DecodeError(f"file too large ({size} bytes)")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return DecodeError(f"cannot read sample file ({type(e).__name__})")
    if hashlib.sha256(data).hexdigest() != sha256.lower():
        return DecodeError("sha256 mismatch")
    try:
        if decoder is None:
            return decode_and_preprocess(data, key, timeout_s=timeout_s)
        return decoder(data, key)
    except DecodeError as e:
        return e
    except MemoryError:
        return DecodeError("out of memory while decoding")


_IN_SLOT = "in-slot"  # the result was written to the task's slot of the result file
_worker_slots: dict[str, np.memmap] = {}


def _write_slot(slot: tuple[str, int, int], out: np.ndarray) -> bool:
    """Copy ``out`` into slot ``index`` of the result file ``path``; False if it does not fit there.

    The mapping of the current file is kept; a new file (the next ``imap``) replaces it.
    """
    path, n, index = slot
    try:
        mm = _worker_slots.get(path)
        if mm is None:
            _worker_slots.clear()
            if os.stat(path).st_size != n * out.nbytes:
                return False
            mm = _worker_slots[path] = np.memmap(path, dtype=out.dtype, mode="r+", shape=(n, *out.shape))
        if mm.shape[1:] != out.shape or mm.dtype != out.dtype:
            return False
        mm[index] = out
        return True
    except (OSError, ValueError):  # the file is gone (an abandoned imap), or a shape problem
        return False


def _decode_task(
    path: str,
    sha256: str,
    key: PreprocessKey,
    cache_spec: tuple[str, int] | None,
    decoder: Decoder | None,
    timeout_s: float,
    slot: tuple[str, int, int] | None = None,
) -> tuple[np.ndarray | DecodeError | str, float]:
    """One sample in a worker: read, verify, decode, cache, hand back. Never raises for bad input.

    With ``slot`` the tensor goes into the shared result file and only a marker is returned.
    """
    t0 = time.perf_counter()
    out = _load_and_decode(path, sha256, key, decoder, timeout_s)
    dt = time.perf_counter() - t0
    if isinstance(out, np.ndarray):
        if cache_spec is not None:
            cache = _worker_caches.get(cache_spec)
            if cache is None:
                cache = _worker_caches[cache_spec] = TensorCache(Path(cache_spec[0]), cache_spec[1])
            try:
                cache.put(sha256, key.id, out)
            except Exception:  # a cache problem never fails a sample
                log.warning("tensor cache write failed", exc_info=True)
        if slot is not None and _write_slot(slot, out):
            return _IN_SLOT, dt
    return out, dt


class _ResultSlots:
    """``n`` tensor-sized slots in one file in shared memory, written by workers, read by the parent.

    Returning a 150 KB tensor through the executor's pipe (pickle, 64 KB pipe writes, unpickle)
    cost about 0.3 ms per sample here, more than the rest of the pool's bookkeeping; a slot costs
    one copy on each side. Sample ``i`` of an ``imap`` uses slot ``i % n``: the window never holds
    more than ``n`` consecutive samples, and the parent copies a slot out before it is reused.
    A new file per ``imap`` call, so workers left running by an abandoned call cannot write into
    the next call's slots.
    """

    def __init__(self, n: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.n = n
        nbytes = n * int(np.prod(shape)) * dtype.itemsize
        fd, self.path = tempfile.mkstemp(prefix="gas-decode-", suffix=".slots", dir=_shm_dir(nbytes))
        try:
            try:
                os.posix_fallocate(fd, 0, nbytes)  # ENOSPC now rather than SIGBUS on a full tmpfs later
            finally:
                os.close(fd)
            self.view = np.memmap(self.path, dtype=dtype, mode="r+", shape=(n, *shape))
        except BaseException:
            _unlink_quiet(self.path)
            raise

    def spec(self, index: int) -> tuple[str, int, int]:
        return self.path, self.n, index % self.n

    def read(self, index: int) -> np.ndarray:
        return np.array(self.view[index % self.n])  # a private copy: the slot will be reused

    def close(self) -> None:
        self.view = None
        _unlink_quiet(self.path)


def _shm_dir(nbytes: int) -> str | None:
    """/dev/shm when it has room for ``nbytes`` (plus slack), else the default temp dir."""
    try:
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize > 2 * nbytes + (64 << 20):
            return "/dev/shm"
    except (OSError, AttributeError):
        pass
    return None


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# ---- parent side ----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Slot:
    sample: Sample
    seq: int = 0  # position in the imap call (picks the result slot)
    future: Future | None = None
    result: np.ndarray | DecodeError | str | None = None
    seconds: float = 0.0
    isolated: bool = False  # running alone in a fresh pool after a crash
    head_since: float | None = None


class DecodePool:
    """In-order, cache-aware decode of samples in worker processes (see the module docstring)."""

    def __init__(
        self,
        workers: int | None = None,
        prefetch: int | None = None,
        cache: TensorCache | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        decoder: Decoder | None = None,
        mp_context: str = "spawn",
        initializer: Callable[[], None] | None = None,
    ) -> None:
        self.workers = default_workers() if workers is None else int(workers)
        if self.workers < 0:
            raise ValueError("workers must be >= 0")
        self.prefetch = max(1, int(prefetch) if prefetch is not None else 4 * max(1, self.workers))
        self.cache = cache
        self.timeout_s = float(timeout_s)
        self.decoder = decoder  # test hook: a picklable module-level function (bytes, key) -> array
        self.initializer = initializer or _worker_init  # test hook: picklable, module-level
        if mp_context not in ("spawn", "forkserver"):
            raise ValueError("decode workers start with 'spawn' or 'forkserver', never 'fork'")
        self._ctx = mp.get_context(mp_context)
        self._executor: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._suspects: set[int] = set()
        self._slots: _ResultSlots | None = None
        self.use_slots = True  # False: tensors come back pickled through the executor's pipe
        self.restarts = 0  # pools replaced after a timeout or a crash

    # -- lifecycle ----------------------------------------------------------------------------------

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self, grace_s: float = 10.0) -> None:
        """Stop the workers: queued work is dropped, running work gets ``grace_s``, then SIGKILL."""
        with self._pool_lock:
            ex, self._executor = self._executor, None
        if ex is None:
            return
        procs = list((getattr(ex, "_processes", None) or {}).values())
        ex.shutdown(wait=False, cancel_futures=True)
        t_end = time.monotonic() + grace_s
        for p in procs:
            p.join(timeout=max(0.0, t_end - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(timeout=5)

    def warmup(self) -> None:
        """Start every worker now (spawn + imports) instead of on the first samples.

        Safe to call from another thread while ``imap`` runs (the runner overlaps it with the
        sandbox's start-up); a pool replaced meanwhile just ends the warm-up early.
        """
        if self.workers == 0:
            return
        try:
            futures = [self._pool().submit(_warm) for _ in range(self.workers)]
            for f in futures:
                f.result()
        except (BrokenProcessPool, CancelledError, RuntimeError):
            pass

    def _pool(self) -> ProcessPoolExecutor:
        with self._pool_lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=self._ctx, initializer=self.initializer
                )
            return self._executor

    def _kill_pool(self) -> None:
        """Kill the workers (one may be hung in C code) and drop the executor."""
        with self._pool_lock:
            ex, self._executor = self._executor, None
        if ex is None:
            return
        self.restarts += 1
        procs = list((getattr(ex, "_processes", None) or {}).values())
        for p in procs:
            try:
                p.kill()
            except Exception:  # pragma: no cover - already gone
                pass
        ex.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            p.join(timeout=5)

    # -- decoding -----------------------------------------------------------------------------------

    def _cache_spec(self) -> tuple[str, int] | None:
        return None if self.cache is None else (str(self.cache.root), self.cache.max_bytes)

    def _from_cache(self, sample: Sample, key: PreprocessKey) -> tuple[np.ndarray, float] | None:
        if self.cache is None:
            return None
        t0 = time.perf_counter()
        try:
            arr = self.cache.get(sample.sha256, key.id, shape=key.shape, dtype=key.dtype)
        except ValueError:  # a malformed sha in the manifest: let the worker report it
            return None
        return None if arr is None else (arr, time.perf_counter() - t0)

    def _decode_inline(self, sample: Sample, key: PreprocessKey) -> tuple[np.ndarray | DecodeError, float]:
        out, dt = _decode_task(str(sample.path), sample.sha256, key, None, self.decoder, self.timeout_s)
        if self.cache is not None and isinstance(out, np.ndarray):
            try:
                self.cache.put(sample.sha256, key.id, out)
            except Exception:
                log.warning("tensor cache write failed", exc_info=True)
        return out, dt

    def imap(self, samples: Sequence[Sample], key: PreprocessKey) -> Iterator[Result]:
        """Yield ``(sample, array | DecodeError, decode_seconds)`` for every sample, in order."""
        if self.workers == 0:
            for s in samples:
                hit = self._from_cache(s, key)
                out, dt = hit if hit is not None else self._decode_inline(s, key)
                yield s, out, dt
            return
        yield from self._imap_pool(samples, key)

    def _submit(self, slot: _Slot, key: PreprocessKey) -> None:
        s = slot.sample
        rs = None if self._slots is None else self._slots.spec(slot.seq)
        slot.future = self._pool().submit(
            _decode_task, str(s.path), s.sha256, key, self._cache_spec(), self.decoder, self.timeout_s, rs
        )

    def _pump(self, window: deque[_Slot], key: PreprocessKey) -> None:
        """Submit what may run now: everything, or only the head while crash suspects remain."""
        if self._suspects:
            head = window[0]
            if head.result is None and head.future is None:
                head.isolated = id(head) in self._suspects
                self._submit(head, key)
            return
        for slot in window:
            if slot.result is None and slot.future is None:
                self._submit(slot, key)

    def _restart(self, window: deque[_Slot]) -> None:
        """After killing the pool: keep finished results, forget futures of unfinished slots."""
        for slot in window:
            f = slot.future
            if slot.result is None and f is not None:
                if f.done() and not f.cancelled() and f.exception() is None:
                    slot.result, slot.seconds = f.result()
                slot.future = None

    def _check_workers_start(self) -> None:
        """After a crash: can a fresh worker start at all? If not, the environment is broken (ours)."""
        try:
            self._pool().submit(_warm).result(timeout=STARTUP_CHECK_TIMEOUT_S)
            return
        except (BrokenProcessPool, CancelledError, FutureTimeout) as exc:
            self._kill_pool()
            cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.initializer is _worker_init:
            try:
                _import_codecs()  # the usual reason: a decoder module that does not import
            except Exception as exc:  # reported, not swallowed
                cause = f"{type(exc).__name__}: {exc}"
        raise DecodeWorkersUnavailable(
            f"decode worker processes cannot start ({cause}); this is a problem with this machine's "
            "installation, not with the samples: fix it and run again"
        )

    def _on_crash(self, window: deque[_Slot], head: _Slot) -> None:
        """A worker died: the pool is broken and every unfinished future with it."""
        self._kill_pool()
        self._check_workers_start()
        if head.isolated:
            log.warning("decoder process crashed on %s", head.sample.sample_id)
            head.result = DecodeError("decoder process crashed")
            head.future = None
            self._restart(window)
        else:
            # One of the samples in flight killed a worker: retry the unfinished ones one at a time.
            self._restart(window)
            self._suspects = {id(s) for s in window if s.result is None}
            head.head_since = None

    def _await_head(self, window: deque[_Slot], key: PreprocessKey) -> None:
        head = window[0]
        limit = self.timeout_s + HARD_TIMEOUT_GRACE_S
        while head.result is None:
            try:
                self._pump(window, key)
            except BrokenProcessPool:
                self._on_crash(window, head)
                continue
            if head.result is not None:
                break
            if head.head_since is None:
                head.head_since = time.monotonic()
            remaining = head.head_since + limit - time.monotonic()
            assert head.future is not None
            try:
                head.result, head.seconds = head.future.result(timeout=max(0.0, remaining))
            except FutureTimeout:
                log.warning("decode of %s timed out after %.0f s: replacing workers", head.sample.sample_id, limit)
                head.result, head.seconds = DecodeError("decode timeout"), limit
                head.future = None
                self._kill_pool()
                self._restart(window)
            except (BrokenProcessPool, CancelledError):
                self._on_crash(window, head)
        self._suspects.discard(id(head))

    def _imap_pool(self, samples: Sequence[Sample], key: PreprocessKey) -> Iterator[Result]:
        window: deque[_Slot] = deque()
        it = iter(samples)
        exhausted = False
        seq = 0
        self._suspects = set()
        self._slots = None
        if self.use_slots:
            try:
                self._slots = _ResultSlots(self.prefetch, key.shape, np.dtype(key.dtype))
            except OSError:
                log.warning("no room for shared result slots: tensors come back through the pipe")
        try:
            while True:
                while not exhausted and len(window) < self.prefetch:
                    try:
                        s = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    slot = _Slot(s, seq)
                    seq += 1
                    hit = self._from_cache(s, key)
                    if hit is not None:
                        slot.result, slot.seconds = hit
                    window.append(slot)
                if not window:
                    return
                self._await_head(window, key)
                head = window.popleft()
                out = head.result
                if isinstance(out, str):  # _IN_SLOT
                    assert self._slots is not None
                    out = self._slots.read(head.seq)
                assert out is not None
                yield head.sample, out, head.seconds
        finally:
            for slot in window:  # the consumer stopped early: drop what has not started
                if slot.future is not None:
                    slot.future.cancel()
            self._suspects = set()
            if self._slots is not None:
                self._slots.close()
                self._slots = None


def decode_all(
    samples: Sequence[Sample], key: PreprocessKey, pool: DecodePool
) -> dict[str, np.ndarray | DecodeError]:
    """``{sample_id: array | DecodeError}`` for every sample (in input order)."""
    return {s.sample_id: out for s, out, _dt in pool.imap(samples, key)}
