"""``run_benchmark``: evaluate one detector package on local datasets, in its sandbox.

Flow (docs/benchmark.md has the long version):

1. load and validate the package (:func:`gas.submissions.package.load_package`, static pre-filter
   included) and refuse it when its modality differs from a dataset's, before anything runs;
2. :func:`gas.bench.plan.build_plan`: a seeded selection, one global shuffle, mixed-label batches;
3. prepare the results directory: continue a checkpoint of the same plan and package, refuse a
   foreign one unless ``fresh``;
4. open the sandbox ONCE, from the calling thread (the child dies with the thread that started it),
   and reuse it for every batch;
5. stream the plan's samples through the decode pool (worker processes decode ahead, bounded, while
   the sandbox infers), stack each batch's tensors, infer, score every row, append the batch's
   records to the checkpoint (fsync'd);
6. write records.parquet and results.json (both atomically) and drop the checkpoint.

Failures, and who they count against:

- a sample that cannot be decoded: a ``decode_error`` record (maximally wrong). Decoding is a pure
  function of the dataset bytes, so every model gets the same rows: no model gains or loses
  relative to another; the per-dataset counts point at the broken media;
- the model raising, or returning a bad shape, for a batch: its samples are ``inference_error``
  records (maximally wrong); the sandbox is reused (or reopened if it closed itself);
- NaN / inf logits: that row is ``invalid_output`` (maximally wrong);
- the sandbox timing out or crashing on a batch: that batch's samples are ``inference_error`` and a
  fresh sandbox is opened for the next batch; after ``max_restarts`` such restarts the run aborts
  (:class:`BenchmarkAborted`, ``infrastructure=False``): the model is too unstable to score;
- the model failing to load at all: :class:`BenchmarkAborted` (``infrastructure=False``);
- OUR side failing (no sandbox isolation available, the decode pool breaking, a caller bug): the run
  aborts with :class:`BenchmarkAborted` (``infrastructure=True``). Such a failure never becomes a
  record and never counts against the miner; an aborted run produces no score at all (no
  results.json), and its checkpoint is kept so the run can be resumed once the cause is fixed.

Wall-clock limit: checked before each batch; when reached the run stops cleanly and writes a
partial result (``complete: false``) plus records.parquet, keeping the checkpoint so a later call
with the same arguments resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gas.bench.plan import Caps, Mode, Plan, PlanError, build_plan
from gas.storage.files import atomic_write
from gas.bench.records import (
    RECORDS_NAME,
    Checkpoint,
    CheckpointError,
    SampleRecord,
    record_key,
    records_to_table,
    write_records_parquet,
)
from gas.bench.results import (
    RESULTS_NAME,
    BenchResults,
    Counts,
    Environment,
    PackageInfo,
    Timings,
    exam_result,
    gas_node_version,
    scores_from_records,
)
from gas.bench.types import PreprocessKey, Sample
from gas.types import Modality

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_AUG_PER_DATASET",
    "DEFAULT_AUG_WEIGHT",
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_MAX_RESTARTS",
    "BenchmarkAborted",
    "BenchmarkError",
    "ProgressEvent",
    "aug_name",
    "default_decode_pool_factory",
    "default_sandbox_opener",
    "run_benchmark",
]

#: Batch sizes the CLI uses when none is given (the reference's per-modality defaults).
DEFAULT_BATCH_SIZES = {"image": 32, "video": 4, "audio": 16}
#: The robustness blend weight the CLI suggests (the reference's default).
DEFAULT_AUG_WEIGHT = 0.2
#: Samples per dataset the robustness pass re-runs with augmentation.
DEFAULT_AUG_PER_DATASET = 32
#: Sandbox restarts after timeouts/crashes before the run is aborted.
DEFAULT_MAX_RESTARTS = 3
MAX_ERRORS_KEPT = 50


class BenchmarkError(RuntimeError):
    """The benchmark could not run (bad package, modality mismatch, no samples, checkpoint conflict)."""


class BenchmarkAborted(BenchmarkError):
    """The run stopped without a score. ``infrastructure``: True when OUR side failed (never the
    miner's fault), False when the model itself made the run impossible (failed to load, crashed or
    timed out too often)."""

    def __init__(self, message: str, *, infrastructure: bool) -> None:
        super().__init__(message)
        self.infrastructure = infrastructure


@dataclass(frozen=True)
class ProgressEvent:
    """Sent to a ``progress`` callable after every completed batch (and once at the start)."""

    phase: str  # "base" | "aug"
    batch_index: int  # -1 for the start event
    done: int  # samples done in this session
    total: int  # samples to do in this session
    elapsed_s: float
    samples_per_s: float
    eta_s: float | None
    statuses: dict[str, int] = field(default_factory=dict)


def aug_name(seed: int) -> str:
    """The ``PreprocessKey.aug`` of the robustness pass of a run with ``seed`` (gas.bench.augment's
    format, ``robust-v<chain version>-s<seed>``)."""
    try:
        from gas.bench.augment import aug_key
    except ImportError:  # pragma: no cover - the augment module ships with the engine
        return f"robust-v1-s{int(seed)}"
    return aug_key(int(seed))


def default_decode_pool_factory(*, workers: int | None, cache: Any, prefetch: int):
    """The real decode pool (worker processes, optional tensor cache)."""
    from gas.bench.decode_pool import DecodePool, default_workers

    n = default_workers() if workers is None else workers
    # keep every worker busy, and at least two batches decoded ahead of the sandbox
    return DecodePool(workers=workers, prefetch=max(prefetch, 4 * n), cache=cache)


def default_sandbox_opener(spec: Any, *, limits: Any, allow_unsandboxed: bool, device: str):
    from gas.submissions.sandbox import open_sandbox

    return open_sandbox(spec, limits=limits, allow_unsandboxed=allow_unsandboxed, device=device)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _short(text: str, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# progress


class _Progress:
    def __init__(self, progress: bool | Callable[[ProgressEvent], Any], title: str) -> None:
        self.callback = progress if callable(progress) else None
        self.bar = None
        self.task = None
        self.title = title
        self.enabled = progress is True

    def start(self, total: int) -> None:
        if self.enabled and total:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.title, total=total, rate="")

    def update(self, ev: ProgressEvent) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(
                self.task,
                completed=ev.done,
                description=f"{self.title} [{ev.phase}]",
                rate=f"{ev.samples_per_s:.1f} samples/s",
            )
        if self.callback is not None:
            self.callback(ev)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


# --------------------------------------------------------------------------------------------------
# the run


@dataclass
class _Work:
    pass_name: str  # base | aug
    aug: str | None
    key: PreprocessKey
    batches: list[tuple[int, list[tuple[int, Sample]]]]  # (batch_index, [(plan_index, sample)])


class _Session:
    """One call of run_benchmark: the sandbox, its restarts and the running totals."""

    def __init__(self, *, package: Any, spec: Any, opener: Callable, limits: Any, allow_unsandboxed: bool,
                 device: str, max_restarts: int) -> None:
        self.package = package
        self.spec = spec
        self.opener = opener
        self.limits = limits
        self.allow_unsandboxed = allow_unsandboxed
        self.device = device
        self.max_restarts = max_restarts
        self.box: Any = None
        self.restarts = 0
        self.startup_s = 0.0
        self.isolation = ""
        self.device_used = ""
        self.torch_version: str | None = None
        self.sandbox_details: dict[str, Any] = {}
        self.errors: list[str] = []
        self.num_classes = int(package.config.model.num_classes)

    def note(self, message: str) -> None:
        log.warning("%s", message)
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(_short(message))

    # ---- sandbox lifecycle (always from the calling thread)
    def open(self, *, first: bool) -> None:
        from gas.submissions.sandbox import SandboxError, SandboxUnavailable

        t0 = time.monotonic()
        try:
            box = self.opener(self.spec, limits=self.limits, allow_unsandboxed=self.allow_unsandboxed,
                              device=self.device)
        except SandboxUnavailable as exc:
            raise BenchmarkAborted(f"no sandbox available on this machine: {exc}", infrastructure=True) from exc
        except SandboxError as exc:
            what = "failed to start" if first else "failed to restart after a crash"
            raise BenchmarkAborted(
                f"the model {what} in the sandbox ({type(exc).__name__}): {_short(str(exc), 1500)}",
                infrastructure=False,
            ) from exc
        self.box = box
        startup = getattr(box, "startup_s", None)
        self.startup_s += float(startup) if isinstance(startup, (int, float)) and startup == startup else (
            time.monotonic() - t0
        )
        iso = getattr(box, "isolation", "")
        self.isolation = str(getattr(iso, "value", iso))
        self.device_used = str(getattr(box, "device", "") or self.device)
        info = getattr(box, "info", {}) or {}
        self.torch_version = info.get("torch") or self.torch_version
        details = getattr(box, "details", None)
        if isinstance(details, dict):
            self.sandbox_details = {k: v for k, v in details.items() if isinstance(v, (str, int, float, bool, list))}

    def close(self) -> None:
        if self.box is not None:
            try:
                self.box.close()
            except Exception as exc:  # closing never decides a result
                log.debug("closing the sandbox: %s", exc)
            self.box = None

    def restart(self, why: str) -> None:
        self.close()
        self.restarts += 1
        if self.restarts > self.max_restarts:
            raise BenchmarkAborted(
                f"the sandbox failed {self.restarts} times (last: {why}); more than max_restarts="
                f"{self.max_restarts}, so the run is aborted without a score",
                infrastructure=False,
            )
        log.warning("restarting the sandbox (%d/%d) after: %s", self.restarts, self.max_restarts, why)
        self.open(first=False)

    # ---- one batch
    def infer(self, batch: Any) -> tuple[Any | None, str | None, float]:
        """``(logits, error, seconds)``: logits or the reason the whole batch failed."""
        from gas.submissions.sandbox import (
            SandboxClosed,
            SandboxCrashed,
            SandboxError,
            SandboxInferenceError,
            SandboxInputError,
            SandboxOutputError,
            SandboxTimeout,
        )

        if self.box is None or getattr(self.box, "closed", False):
            self.restart("the sandbox was closed")
        t0 = time.perf_counter()
        try:
            logits = self.box.infer(batch)
            return logits, None, time.perf_counter() - t0
        except SandboxInputError as exc:  # our bug, never the miner's
            raise BenchmarkAborted(f"internal error: the batch does not match the sandbox spec: {exc}",
                                   infrastructure=True) from exc
        except (SandboxInferenceError, SandboxOutputError) as exc:
            dt = time.perf_counter() - t0
            msg = f"{type(exc).__name__}: {exc}"
            if getattr(self.box, "closed", False):  # a protocol violation closes the handle
                self.restart(msg)
            return None, msg, dt
        except (SandboxTimeout, SandboxCrashed, SandboxClosed, SandboxError) as exc:
            dt = time.perf_counter() - t0
            msg = f"{type(exc).__name__}: {exc}"
            self.restart(msg)
            return None, msg, dt


def _p_synthetic(logits: Any, num_classes: int, labels: list[int]):
    import numpy as np

    from gas.scoring import maximally_wrong, p_synthetic_from_logits
    from gas.submissions.sandbox import finite_rows

    arr = np.asarray(logits)
    width = arr.shape[1]
    # The sandbox admits C in {1, 2, 3, num_classes}; anything else is invalid for every row.
    p, valid = p_synthetic_from_logits(arr, num_classes=width if width in {1, 2, 3, num_classes} else num_classes)
    valid = valid & finite_rows(arr)
    return maximally_wrong(p, valid, np.asarray(labels, dtype=np.int8)), valid


def _label_str(sample: Sample) -> str:
    return getattr(sample.label, "value", str(sample.label))


def _record(sample: Sample, *, status: str, error: str | None, logits: list[float], p: float,
            decode_s: float, infer_s: float, batch_index: int, plan_index: int, aug: str | None) -> SampleRecord:
    y = int(sample.y)
    predicted = 1 if p > 0.5 else 0
    return SampleRecord(
        sample_id=sample.sample_id,
        dataset=sample.dataset,
        modality=getattr(sample.modality, "value", str(sample.modality)),
        label=_label_str(sample),
        y=y,
        sha256=sample.sha256,
        source=sample.source or "",
        generator_hotkey=sample.generator_hotkey,
        generator_model=sample.generator_model,
        status=status,  # type: ignore[arg-type]
        error=_short(error) if error else None,
        logits=logits,
        p_synthetic=float(p),
        predicted=predicted,
        correct=predicted == y,
        decode_s=float(decode_s),
        infer_s=float(infer_s),
        batch_index=batch_index,
        plan_index=plan_index,
        aug=aug,
    )


def _run_batch(session: _Session, work: _Work, batch_index: int, items: list[tuple[int, Sample]],
               decoded: list[tuple[Any, Any, float]]) -> list[SampleRecord]:
    import numpy as np

    key = work.key
    shape, dtype = tuple(key.shape), np.dtype(key.dtype)
    records: dict[int, SampleRecord] = {}
    ok: list[tuple[int, Sample, Any, float]] = []
    for (plan_index, sample), (got, result, dt) in zip(items, decoded, strict=True):
        if getattr(got, "sample_id", None) != sample.sample_id or getattr(got, "dataset", None) != sample.dataset:
            raise BenchmarkAborted(
                f"internal error: the decode pool returned {getattr(got, 'sample_id', got)!r} where "
                f"{sample.sample_id!r} was expected (results must come in order)", infrastructure=True)
        err = None
        if isinstance(result, BaseException):
            err = f"{type(result).__name__}: {result}"
        elif not isinstance(result, np.ndarray):
            err = f"decode produced {type(result).__name__}, not an array"
        elif tuple(result.shape) != shape or result.dtype != dtype:
            err = f"decode produced {result.dtype}{list(result.shape)}, expected {dtype}{list(shape)}"
        if err is not None:
            records[plan_index] = _record(sample, status="decode_error", error=err, logits=[],
                                          p=1.0 - sample.y, decode_s=dt or 0.0, infer_s=0.0,
                                          batch_index=batch_index, plan_index=plan_index, aug=work.aug)
        else:
            ok.append((plan_index, sample, result, dt or 0.0))

    if ok:
        batch = np.stack([arr for _, _, arr, _ in ok]).astype(dtype, copy=False)
        logits, error, seconds = session.infer(batch)
        per = seconds / len(ok)
        labels = [int(s.y) for _, s, _, _ in ok]
        if logits is None:
            session.note(f"{work.pass_name} batch {batch_index}: {error}")
            for plan_index, sample, _, dt in ok:
                records[plan_index] = _record(sample, status="inference_error", error=error, logits=[],
                                              p=1.0 - sample.y, decode_s=dt, infer_s=per,
                                              batch_index=batch_index, plan_index=plan_index, aug=work.aug)
        else:
            p, valid = _p_synthetic(logits, session.num_classes, labels)
            for row, (plan_index, sample, _, dt) in enumerate(ok):
                good = bool(valid[row])
                records[plan_index] = _record(
                    sample,
                    status="ok" if good else "invalid_output",
                    error=None if good else "non-finite or unusable logits",
                    logits=[float(v) for v in logits[row]],
                    p=float(p[row]),
                    decode_s=dt,
                    infer_s=per,
                    batch_index=batch_index,
                    plan_index=plan_index,
                    aug=work.aug,
                )
    return [records[pi] for pi, _ in items]


def _prepare_dir(results_dir: Path, plan: Plan, package: Any, *, resume: bool, fresh: bool):
    """Returns (checkpoint, header | None, prior records, prior sessions)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    ckpt = Checkpoint(results_dir)
    res_path = results_dir / RESULTS_NAME
    if fresh:
        ckpt.remove()
        for name in (RESULTS_NAME, RECORDS_NAME, "plan.json"):
            (results_dir / name).unlink(missing_ok=True)
        return ckpt, None, [], 0
    if ckpt.exists():
        try:
            header, prior, sessions = ckpt.read()
        except CheckpointError as exc:
            raise BenchmarkError(f"{exc}; pass fresh=True (--fresh) to discard it") from exc
        assert header is not None
        if header.get("plan_hash") != plan.plan_hash or header.get("package_sha256") != package.sha256:
            raise BenchmarkError(
                f"{results_dir} holds an unfinished run of another plan or package "
                f"(plan {str(header.get('plan_hash'))[:12]}, package {str(header.get('package_sha256'))[:12]}; "
                f"this run: plan {plan.plan_hash[:12]}, package {package.sha256[:12]}); pass fresh=True "
                "(--fresh) to discard it, or pick another results directory"
            )
        if not resume:
            raise BenchmarkError(
                f"{results_dir} holds an unfinished run of this plan and package; resume it (resume=True) "
                "or discard it with fresh=True (--fresh)"
            )
        wanted = {(e[1], e[0]) for e in plan.entries}
        prior = [r for r in prior if (r.get("dataset"), r.get("sample_id")) in wanted]
        return ckpt, header, prior, sessions
    if res_path.exists():
        raise BenchmarkError(
            f"{results_dir} already holds results ({RESULTS_NAME}); pass fresh=True (--fresh) to overwrite "
            "them, or pick another results directory"
        )
    return ckpt, None, [], 0


def run_benchmark(
    package_path: Path,
    *,
    datasets: Sequence[Any],
    mode: Mode = "small",
    seed: int = 0,
    batch_size: int = 32,
    results_dir: Path,
    cache: Any = None,
    workers: int | None = None,
    device: str = "auto",
    allow_unsandboxed: bool = False,
    wall_limit_s: float | None = None,
    aug_weight: float = 0.0,
    aug_per_dataset: int = DEFAULT_AUG_PER_DATASET,
    caps: Caps = None,
    progress: bool | Callable[[ProgressEvent], Any] = False,
    resume: bool = True,
    fresh: bool = False,
    decode_pool_factory: Callable[..., Any] | None = None,
    sandbox_opener: Callable[..., Any] | None = None,
    limits: Any = None,
    max_restarts: int = DEFAULT_MAX_RESTARTS,
    prefetch: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> BenchResults:
    """Benchmark the detector package at ``package_path`` on ``datasets`` and write the results.

    ``datasets``: objects with ``name``, ``modality`` and ``samples()`` (gas.bench.dataset.LocalDataset).
    ``aug_weight`` > 0 runs the seeded robustness pass on ``aug_per_dataset`` samples per dataset
    (image and video only) and blends: ``score = (1 - w) * base_sn34 + w * aug_sn34``.
    ``decode_pool_factory(workers=, cache=, prefetch=)`` must return a context manager with
    ``imap(samples, key)`` yielding ``(sample, array | exception, seconds)`` in order;
    ``sandbox_opener(spec, limits=, allow_unsandboxed=, device=)`` returns a sandbox handle.
    ``clock`` measures the wall-clock limit (tests inject one).

    Raises :class:`BenchmarkError` when the run cannot start and :class:`BenchmarkAborted` when it
    stops without a score; any other exception leaves the checkpoint for a later resume.
    """
    t_start = clock()
    t_perf = time.perf_counter()
    session_started = _now()
    if mode not in ("small", "full"):
        raise BenchmarkError(f"mode must be 'small' or 'full', got {mode!r}")
    if not 0.0 <= float(aug_weight) <= 1.0:
        raise BenchmarkError(f"aug_weight must be in [0, 1], got {aug_weight!r}")
    if wall_limit_s is not None and not wall_limit_s >= 0:
        raise BenchmarkError(f"wall_limit_s must be >= 0, got {wall_limit_s!r}")
    datasets = list(datasets)
    if not datasets:
        raise BenchmarkError("no datasets to benchmark on")

    from gas.submissions.package import PackageError, load_package

    try:
        package = load_package(package_path)
    except PackageError as exc:
        raise BenchmarkError(f"invalid package {package_path}: [{exc.check}] {exc}") from exc
    except OSError as exc:
        raise BenchmarkError(f"cannot read package {package_path}: {exc}") from exc
    try:
        return _run(
            package, package_path=Path(package_path), datasets=datasets, mode=mode, seed=seed,
            batch_size=batch_size, results_dir=Path(results_dir), cache=cache, workers=workers,
            device=device, allow_unsandboxed=allow_unsandboxed, wall_limit_s=wall_limit_s,
            aug_weight=float(aug_weight), aug_per_dataset=aug_per_dataset, caps=caps, progress=progress,
            resume=resume, fresh=fresh, decode_pool_factory=decode_pool_factory or default_decode_pool_factory,
            sandbox_opener=sandbox_opener or default_sandbox_opener, limits=limits, max_restarts=max_restarts,
            prefetch=prefetch, clock=clock, t_start=t_start, t_perf=t_perf, session_started=session_started,
        )
    finally:
        package.cleanup()


def _run(package: Any, *, package_path: Path, datasets: list[Any], mode: Mode, seed: int, batch_size: int,
         results_dir: Path, cache: Any, workers: int | None, device: str, allow_unsandboxed: bool,
         wall_limit_s: float | None, aug_weight: float, aug_per_dataset: int, caps: Caps,
         progress: bool | Callable, resume: bool, fresh: bool, decode_pool_factory: Callable,
         sandbox_opener: Callable, limits: Any, max_restarts: int, prefetch: int | None,
         clock: Callable[[], float], t_start: float, t_perf: float, session_started: str) -> BenchResults:
    cfg = package.config
    modality: Modality = cfg.modality
    wrong = [(ds.name, getattr(ds.modality, "value", ds.modality)) for ds in datasets
             if Modality(getattr(ds.modality, "value", ds.modality)) is not modality]
    if wrong:
        listed = ", ".join(f"{n} ({m})" for n, m in wrong)
        raise BenchmarkError(
            f"package {cfg.name!r} is a {modality.value} detector, but these datasets are not "
            f"{modality.value}: {listed}"
        )

    do_aug = aug_weight > 0 and aug_per_dataset > 0
    if do_aug and modality is Modality.AUDIO:
        log.warning("the robustness pass exists for image and video only; skipped for audio")
        do_aug = False
    if do_aug and seed < 0:
        raise BenchmarkError(f"the robustness pass needs a seed >= 0, got {seed}")
    try:
        plan = build_plan(datasets, mode=mode, caps=caps, seed=seed, batch_size=batch_size,
                          aug_per_dataset=aug_per_dataset if do_aug else 0)
    except PlanError as exc:
        raise BenchmarkError(str(exc)) from exc
    if not plan.entries:
        raise BenchmarkError("the datasets hold no samples: " + ", ".join(ds.name for ds in datasets))

    ckpt, header, prior, prior_sessions = _prepare_dir(results_dir, plan, package, resume=resume, fresh=fresh)
    atomic_write(results_dir / "plan.json", (plan.model_dump_json(indent=1) + "\n").encode())
    started_at = str(header.get("created_at")) if header else session_started
    if header is None:
        ckpt.start({
            "plan_hash": plan.plan_hash,
            "package_sha256": package.sha256,
            "modality": modality.value,
            "mode": mode,
            "seed": seed,
            "batch_size": batch_size,
            "created_at": started_at,
        })
    ckpt.append_session({"started_at": session_started, "resumed_records": len(prior)})

    base_key = PreprocessKey.from_config(cfg)
    work = [_Work("base", None, base_key, [])]
    if do_aug:
        name = aug_name(seed)
        work.append(_Work("aug", name, PreprocessKey.from_config(cfg, aug=name), []))
    done = {record_key(r) for r in prior}
    for w in work:
        batches = plan.batches(aug=w.aug is not None)
        pi = 0
        for bi, batch in enumerate(batches):
            items = []
            for s in batch:
                if (s.dataset, s.sample_id, w.aug) not in done:
                    items.append((pi, s))
                pi += 1
            if items:
                w.batches.append((bi, items))
    total_todo = sum(len(items) for w in work for _, items in w.batches)

    from gas.submissions.smoke import sandbox_spec

    spec = sandbox_spec(package)
    all_cached = _all_cached(cache, work)
    session = _Session(package=package, spec=spec, opener=sandbox_opener, limits=limits, allow_unsandboxed=
                       allow_unsandboxed, device=device, max_restarts=max_restarts)
    new_records: list[SampleRecord] = []
    statuses = {"ok": 0, "decode_error": 0, "inference_error": 0, "invalid_output": 0}
    hit_limit = False
    bar = _Progress(progress, f"{cfg.name} ({modality.value}, {mode})")
    prefetch = prefetch if prefetch is not None else max(2 * batch_size, 8)
    t_loop = time.perf_counter()
    loop_s = 0.0

    def over_limit() -> bool:
        return wall_limit_s is not None and clock() - t_start >= wall_limit_s

    try:
        if total_todo and over_limit():
            hit_limit = True
        elif total_todo:
            with contextlib.ExitStack() as stack:
                # the decode workers start in the background while the sandbox starts here: the
                # sandbox must be opened from this (the calling) thread, its child dies with it
                pool, warm, warm_errors = _open_pool(stack, decode_pool_factory, workers, cache, prefetch,
                                                     warm=not all_cached)
                session.open(first=True)
                ckpt.append_sandbox({"isolation": session.isolation, "device": session.device_used,
                                     "torch": session.torch_version, "details": session.sandbox_details})
                if warm is not None:
                    warm.join()
                    if warm_errors:
                        exc = warm_errors[0]
                        raise BenchmarkAborted(f"could not start the decode workers: {type(exc).__name__}: "
                                               f"{exc}", infrastructure=True) from exc
                bar.start(total_todo)
                t_loop = time.perf_counter()
                try:
                    hit_limit = _loop(session, work, pool, ckpt, new_records, statuses, bar, over_limit,
                                      total_todo, t_loop)
                finally:
                    loop_s = time.perf_counter() - t_loop
    finally:
        session.close()
        bar.stop()

    wall = time.perf_counter() - t_perf
    if not session.isolation and ckpt.last_sandbox:  # nothing ran now: report the session that did
        session.isolation = str(ckpt.last_sandbox.get("isolation") or "")
        session.device_used = str(ckpt.last_sandbox.get("device") or "")
        session.torch_version = ckpt.last_sandbox.get("torch") or session.torch_version
        details = ckpt.last_sandbox.get("details")
        if isinstance(details, dict):
            session.sandbox_details = details
    all_records = [*prior, *(r.to_dict() for r in new_records)]
    table = records_to_table(all_records)
    ran_aug = any(r.get("aug") is not None for r in all_records)
    scores = scores_from_records(table, aug_weight=aug_weight if ran_aug else 0.0)
    recorded_base = sum(1 for r in all_records if r.get("aug") is None)
    recorded_aug = len(all_records) - recorded_base
    planned_aug = len(plan.aug_entries) if do_aug else 0
    complete = not hit_limit and recorded_base == len(plan.entries) and recorded_aug == planned_aug
    by_status = dict.fromkeys(statuses, 0)
    for r in all_records:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    processed = len(new_records)
    results = BenchResults(
        gas_node_version=gas_node_version(),
        complete=complete,
        mode=mode,
        modality=modality.value,
        seed=seed,
        batch_size=batch_size,
        plan_hash=plan.plan_hash,
        package=PackageInfo(name=cfg.name, version=getattr(cfg, "version", None), sha256=package.sha256,
                            modality=modality.value, source=str(package_path)),
        environment=Environment(
            isolation=session.isolation or "not started",
            device=session.device_used or "not started",
            torch_version=session.torch_version or _torch_version(),
            sandbox={**session.sandbox_details, "python": platform.python_version()},
        ),
        datasets=[ds.name for ds in datasets],
        overall=scores.overall,
        per_dataset=scores.per_dataset,
        per_generator=scores.per_generator,
        robustness=scores.robustness,
        score=scores.score,
        exam=exam_result(scores.overall, complete=complete) if mode == "small" else None,
        counts=Counts(
            planned=len(plan.entries),
            planned_aug=planned_aug,
            recorded=recorded_base,
            recorded_aug=recorded_aug,
            remaining=len(plan.entries) + planned_aug - len(all_records),
            ok=by_status.get("ok", 0),
            decode_error=by_status.get("decode_error", 0),
            inference_error=by_status.get("inference_error", 0),
            invalid_output=by_status.get("invalid_output", 0),
            sandbox_restarts=session.restarts,
        ),
        timings=Timings(
            startup_s=session.startup_s,
            decode_s=float(sum(float(r.get("decode_s") or 0.0) for r in all_records)),
            infer_s=float(sum(float(r.get("infer_s") or 0.0) for r in all_records)),
            wall_s=wall,
            loop_s=loop_s,
            samples_per_s=processed / wall if wall > 0 else 0.0,
            samples_this_session=processed,
            sessions=prior_sessions + 1,
        ),
        started_at=started_at,
        finished_at=_now(),
        wall_limit_s=wall_limit_s,
        wall_limit_hit=hit_limit,
        resumed=bool(prior) or prior_sessions > 0,
        errors=session.errors,
    )
    write_records_parquet(table, results_dir / RECORDS_NAME)
    results.write(results_dir / RESULTS_NAME)
    if complete:
        ckpt.remove()
    return results


def _all_cached(cache: Any, work: list[_Work]) -> bool:
    """Whether the tensor cache already holds every tensor this run needs (one stat per sample)."""
    if cache is None:
        return False
    try:
        return all((s.sha256, w.key.id) in cache for w in work for _, items in w.batches for _, s in items)
    except (TypeError, ValueError):
        return False


def _open_pool(stack: contextlib.ExitStack, decode_pool_factory: Callable, workers: int | None, cache: Any,
               prefetch: int, *, warm: bool = True) -> tuple[Any, threading.Thread | None, list[BaseException]]:
    """Enter the decode pool and start its workers in the background (overlapping the sandbox's
    start-up); returns the pool, the warm-up thread and where that thread puts its error. With
    ``warm=False`` (every tensor is cached) the workers are not started: the pool starts them
    lazily on a miss, and the sandbox starts without competing for the cores."""
    try:
        pool = stack.enter_context(decode_pool_factory(workers=workers, cache=cache, prefetch=prefetch))
    except Exception as exc:
        raise BenchmarkAborted(f"could not start the decode pool: {type(exc).__name__}: {exc}",
                               infrastructure=True) from exc
    warmup = getattr(pool, "warmup", None)
    errors: list[BaseException] = []
    if not warm or not callable(warmup):
        return pool, None, errors

    def run() -> None:
        try:
            warmup()
        except BaseException as exc:  # reported by the caller, in its own thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="gas-bench-decode-warmup", daemon=True)
    thread.start()
    return pool, thread, errors


def _loop(session: _Session, work: list[_Work], pool: Any, ckpt: Checkpoint, new_records: list[SampleRecord],
          statuses: dict[str, int], bar: _Progress, over_limit: Callable[[], bool], total_todo: int,
          t_loop: float) -> bool:
    """Run every remaining batch; returns True when the wall-clock limit stopped the run."""
    done = 0
    bar.update(ProgressEvent("base", -1, 0, total_todo, 0.0, 0.0, None, dict(statuses)))
    for w in work:
        if not w.batches:
            continue
        flat = [s for _, items in w.batches for _, s in items]
        try:
            stream: Iterator = iter(pool.imap(flat, w.key))
        except Exception as exc:
            raise BenchmarkAborted(f"the decode pool failed: {type(exc).__name__}: {exc}",
                                   infrastructure=True) from exc
        try:
            for batch_index, items in w.batches:
                if over_limit():
                    return True
                try:
                    decoded = [next(stream) for _ in items]
                except StopIteration as exc:
                    raise BenchmarkAborted("internal error: the decode pool ended early",
                                           infrastructure=True) from exc
                except BenchmarkError:
                    raise
                except Exception as exc:
                    raise BenchmarkAborted(f"the decode pool failed: {type(exc).__name__}: {exc}",
                                           infrastructure=True) from exc
                recs = _run_batch(session, w, batch_index, items, decoded)
                ckpt.append_batch(w.pass_name, batch_index, recs)
                new_records.extend(recs)
                for r in recs:
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                done += len(recs)
                elapsed = time.perf_counter() - t_loop
                rate = done / elapsed if elapsed > 0 else 0.0
                eta = (total_todo - done) / rate if rate > 0 else None
                bar.update(ProgressEvent(w.pass_name, batch_index, done, total_todo, elapsed, rate, eta,
                                         dict(statuses)))
        finally:
            close = getattr(stream, "close", None)
            if callable(close):
                close()
    return False


def _torch_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return None

