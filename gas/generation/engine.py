"""The generative miner's task engine: durable queue, concurrent workers, timeouts, webhooks, resume.

Lifecycle of a task (see docs/task-engine.md)::

    submit ──► pending ──► processing ──► completed ──► webhook delivered | failed
                              │  ▲
                              │  └── crash / stop: resumed on the next start (with its checkpoint)
                              └────► failed (service error, timeout, no service, 3 interrupted runs)
                                        └──► failure webhook delivered | failed

Every transition is committed to the :class:`~gas.generation.task_store.TaskStore` before the engine
acts on it, so a process killed at any point resumes where it was: pending and processing tasks
run (again), finished tasks whose webhook was not yet delivered get it delivered. Delivery is
at-least-once: a webhook the validator received in the instant before a crash, before the store
recorded it, is sent again (with identical bytes) after the restart.

Concurrency: ``max_concurrent`` asyncio workers take task ids from a queue, so up to that many
``service.generate`` calls run at once (services do blocking work in threads). Webhook deliveries
run in their own asyncio tasks, so a slow or unreachable validator never holds a generation slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from gas.generation.services.base import (
    MODALITIES,
    GenerationRequest,
    GenerationResult,
    GenerationService,
    ServiceError,
)
from gas.generation.task_store import (
    TaskNotFound,
    TaskRecord,
    TaskStatus,
    TaskStore,
    WebhookStatus,
    default_db_path,
)
from gas.protocol.media_types import extension_for, sniff_mime
from gas.storage.files import atomic_write

log = logging.getLogger(__name__)


class ServiceSelector(Protocol):
    """Picks the service for a modality (``gas.generation.services.registry.ServiceSet`` fits)."""

    def for_modality(self, modality: str) -> GenerationService | None: ...


class WebhookDelivery(Protocol):
    """Sends webhooks (``gas.protocol.webhooks.WebhookSender`` fits)."""

    async def send_success(self, task: Any, data: bytes, metadata: Mapping[str, Any] | None = None) -> Any: ...

    async def send_failure(self, task: Any, error_message: str) -> Any: ...


class _TimedOut(Exception):
    pass


async def _settle(task: asyncio.Future, grace: float, what: str) -> None:
    """Wait (briefly) for a cancelled task to finish, so its thread-free cleanup runs before we move on."""
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        log.warning("%s ignored cancellation for %.1f s; leaving it behind", what, grace)
        return
    if not task.cancelled():
        task.exception()  # retrieve it, so asyncio does not log "exception was never retrieved"


async def _run_with_timeout(coro: Any, timeout: float, what: str) -> Any:
    """``await coro`` for at most ``timeout`` seconds; raises _TimedOut (never confused with a
    TimeoutError that the service itself raises). Cancelling the caller cancels ``coro``."""
    inner = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait({inner}, timeout=timeout)
    except asyncio.CancelledError:
        inner.cancel()
        await _settle(inner, 5.0, what)
        raise
    if inner in done:
        return inner.result()
    inner.cancel()
    await _settle(inner, 5.0, what)
    raise _TimedOut


class TaskEngine:
    """Runs generation tasks from a :class:`TaskStore` and delivers their webhooks.

    ``max_attempts``: a task whose generation was interrupted (crash) this many times fails with a
    failure webhook instead of being run again (so one poison task cannot crash-loop the miner).
    ``save_dir``: when set, each delivered result is kept as ``<save_dir>/<modality>/<task_id><ext>``
    with a ``<task_id>.json`` sidecar; otherwise the media file is deleted after delivery.
    ``stop_grace_s``: how long :meth:`stop` lets in-flight webhook deliveries finish.
    """

    def __init__(
        self,
        store: TaskStore,
        services: ServiceSelector,
        webhooks: WebhookDelivery,
        *,
        max_concurrent: int = 5,
        task_timeout: float = 300.0,
        max_task_age_s: float = 24 * 3600.0,
        cleanup_interval: float = 3600.0,
        save_dir: Path | None = None,
        max_attempts: int = 3,
        stop_grace_s: float = 5.0,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if task_timeout <= 0 or max_task_age_s <= 0 or cleanup_interval <= 0:
            raise ValueError("task_timeout, max_task_age_s and cleanup_interval must be positive")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.store = store
        self.services = services
        self.webhooks = webhooks
        self.max_concurrent = max_concurrent
        self.task_timeout = task_timeout
        self.max_task_age_s = max_task_age_s
        self.cleanup_interval = cleanup_interval
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.max_attempts = max_attempts
        self.stop_grace_s = stop_grace_s

        self._queue: asyncio.Queue[str] | None = None
        self._queued: set[str] = set()
        self._running: dict[str, float] = {}  # task id -> monotonic start
        self._deliveries: dict[str, asyncio.Task] = {}
        self._workers: list[asyncio.Task] = []
        self._cleanup_task: asyncio.Task | None = None
        self._started = False
        self._stopping = False
        self.peak_running = 0
        self._counters = {"generated": 0, "failed": 0, "timed_out": 0, "resumed": 0, "redelivered": 0}

    @classmethod
    def from_settings(cls, settings: Any, services: ServiceSelector, keypair: Any) -> TaskEngine:
        """The miner's engine: store at ``<generator_dir>/tasks.db``, webhooks signed by ``keypair``
        (the miner's hotkey), limits from :class:`gas.config.GeneratorSettings`; with ``save_media``
        delivered files are kept under ``<generator_dir>/media``."""
        from gas.protocol.webhooks import WebhookSender

        store = TaskStore(default_db_path(settings.generator_dir))
        sender = WebhookSender(
            keypair,
            max_retries=settings.webhook_max_retries,
            retry_delay=settings.webhook_retry_delay,
            timeout=settings.webhook_timeout,
            stats=store,
        )
        return cls(
            store,
            services,
            sender,
            max_concurrent=settings.max_concurrent_tasks,
            task_timeout=settings.task_timeout,
            max_task_age_s=settings.max_task_age_hours * 3600.0,
            cleanup_interval=settings.cleanup_interval,
            save_dir=settings.generator_dir / "media" if settings.save_media else None,
        )

    # ------------------------------------------------------------------------------- lifecycle
    @property
    def running(self) -> bool:
        return self._started and not self._stopping

    async def start(self) -> None:
        """Resume pending and processing tasks, redeliver undelivered webhooks, start the workers."""
        if self._started:
            raise RuntimeError("the task engine is already started")
        self._started = True
        self._stopping = False
        self._queue = asyncio.Queue()
        resumable = await asyncio.to_thread(self.store.list_resumable)
        undelivered = await asyncio.to_thread(self.store.list_undelivered)
        for rec in resumable:
            if rec.status == TaskStatus.PROCESSING:
                self._counters["resumed"] += 1
                log.info("task %s: resuming (attempt %d, checkpoint %s)",
                         rec.task_id, rec.attempts + 1, "yes" if rec.checkpoint else "no")
            self._enqueue(rec.task_id)
        for rec in undelivered:
            self._counters["redelivered"] += 1
            self._schedule_delivery(rec.task_id)
        self._workers = [
            asyncio.create_task(self._worker(i), name=f"gen-worker-{i}") for i in range(self.max_concurrent)
        ]
        self._cleanup_task = asyncio.create_task(self._cleanup_loop(), name="gen-cleanup")
        log.info(
            "task engine started: %d worker(s), timeout %.0f s; %d task(s) to resume, %d webhook(s) to redeliver",
            self.max_concurrent, self.task_timeout, len(resumable), len(undelivered),
        )

    async def stop(self) -> None:
        """Stop gracefully: running tasks are interrupted and left resumable (pending, with their
        checkpoint, the attempt not counted); deliveries get ``stop_grace_s`` to finish, the rest
        are redelivered on the next start."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        tasks = list(self._workers)
        if self._cleanup_task is not None:
            tasks.append(self._cleanup_task)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        deliveries = list(self._deliveries.values())
        if deliveries:
            _, pending = await asyncio.wait(deliveries, timeout=self.stop_grace_s)
            for t in pending:
                t.cancel()
            await asyncio.gather(*deliveries, return_exceptions=True)
        self._workers = []
        self._cleanup_task = None
        self._queued.clear()
        self._queue = None
        self._started = False
        log.info("task engine stopped")

    async def aclose(self) -> None:
        """Stop, then close the webhook client and the store (the engine cannot be started again)."""
        await self.stop()
        close = getattr(self.webhooks, "aclose", None)
        if close is not None:
            await close()
        self.store.close()

    async def wait_idle(self, timeout: float | None = None, poll: float = 0.01) -> None:
        """Wait until nothing is queued, running or being delivered (for tests and orderly shutdowns)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queued or self._running or self._deliveries:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"engine not idle after {timeout} s: {len(self._queued)} queued, "
                    f"{len(self._running)} running, {len(self._deliveries)} delivering"
                )
            await asyncio.sleep(poll)

    # ---------------------------------------------------------------------------------- intake
    def submit(
        self,
        modality: str,
        prompt: str,
        parameters: Mapping[str, Any] | None,
        webhook_url: str,
        signed_by: str | None,
    ) -> TaskRecord:
        """Accept a task: durable when this returns (call it on the loop thread). Queued at once
        when the engine runs; otherwise picked up by the next :meth:`start`."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, not {modality!r}")
        rec = self.store.create(modality, prompt, parameters, webhook_url, signed_by)
        if self.running:
            self._enqueue(rec.task_id)
        return rec

    def get(self, task_id: str) -> TaskRecord | None:
        return self.store.get(task_id)

    def stats(self) -> dict[str, Any]:
        """The store's counts plus what the engine is doing right now."""
        stats = self.store.stats()
        stats["engine"] = {
            "running": len(self._running),
            "queued": len(self._queued),
            "delivering": len(self._deliveries),
            "max_concurrent": self.max_concurrent,
            "task_timeout": self.task_timeout,
            "peak_running": self.peak_running,
            **self._counters,
        }
        return stats

    def _enqueue(self, task_id: str) -> None:
        if task_id in self._queued or task_id in self._running or self._queue is None:
            return
        self._queued.add(task_id)
        self._queue.put_nowait(task_id)

    # --------------------------------------------------------------------------------- workers
    async def _worker(self, index: int) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            task_id = await queue.get()
            self._queued.discard(task_id)
            try:
                await self._run(task_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # _run handles its own errors; this is a bug guard
                log.exception("task %s: unexpected error in worker %d", task_id, index)

    def _fail(self, rec: TaskRecord, message: str) -> None:
        self._counters["failed"] += 1
        log.warning("task %s (%s from %s): failed: %s", rec.task_id, rec.modality, rec.signed_by, message)
        self.store.mark_failed(rec.task_id, message)
        self._schedule_delivery(rec.task_id)

    async def _run(self, task_id: str) -> None:
        rec = self.store.get(task_id)
        if rec is None or rec.finished:
            return
        if rec.attempts >= self.max_attempts:
            self._fail(rec, f"gave up after {rec.attempts} interrupted attempts (the miner stopped while "
                            "generating this task)")
            return
        try:
            service = self.services.for_modality(rec.modality)
            reason = None if service is None else service.unavailable_reason()
        except Exception:
            log.exception("task %s: selecting the %s service failed", task_id, rec.modality)
            self._fail(rec, "internal error")
            return
        if service is None:
            self._fail(rec, f"no {rec.modality} generation service is configured on this miner")
            return
        if reason:
            self._fail(rec, f"{service.name} service is unavailable: {reason}")
            return

        rec = self.store.mark_processing(task_id, service.name)
        self._running[task_id] = time.monotonic()
        self.peak_running = max(self.peak_running, len(self._running))

        async def checkpoint(state: Mapping[str, Any] | None) -> None:
            self.store.set_checkpoint(task_id, state)

        request = GenerationRequest(
            task_id=task_id,
            modality=rec.modality,
            prompt=rec.prompt,
            parameters=rec.parameters,
            checkpoint=rec.checkpoint,
        )
        log.info("task %s (%s from %s): generating with %s (attempt %d%s)", task_id, rec.modality,
                 rec.signed_by, service.name, rec.attempts, ", from checkpoint" if rec.checkpoint else "")
        try:
            result = await _run_with_timeout(
                service.generate(request, checkpoint), self.task_timeout, f"task {task_id} ({service.name})"
            )
            if not isinstance(result, GenerationResult):
                raise TypeError(f"{service.name}.generate returned {type(result).__name__}, not GenerationResult")
            data = bytes(result.data) if isinstance(result.data, (bytes, bytearray, memoryview)) else b""
            if not data:
                raise ServiceError(f"{service.name} returned no media")
            mime = result.mime or sniff_mime(data)
            await self._save_result(task_id, data, mime, dict(result.metadata))
        except _TimedOut:
            self._counters["timed_out"] += 1
            self._fail(rec, f"timed out after {self.task_timeout:g} s")
            return
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                self.store.release(task_id)
            log.info("task %s: interrupted; left pending for the next start", task_id)
            raise
        except ServiceError as exc:
            self._fail(rec, str(exc) or type(exc).__name__)
            return
        except Exception:
            log.exception("task %s (%s): unexpected error from %s", task_id, rec.modality, service.name)
            self._fail(rec, "internal error")
            return
        finally:
            self._running.pop(task_id, None)
        self._counters["generated"] += 1
        log.info("task %s: completed by %s (%s, %d bytes)", task_id, service.name, mime, len(data))
        self._schedule_delivery(task_id)

    async def _save_result(self, task_id: str, data: bytes, mime: str | None, metadata: dict[str, Any]) -> None:
        """Store the result in a thread; a stop() arriving meanwhile waits for the write to finish, so
        the result is never half-recorded nor written after the store is closed."""
        write = asyncio.ensure_future(asyncio.to_thread(self.store.save_result, task_id, data, mime, metadata))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await write
            raise

    # ------------------------------------------------------------------------------- webhooks
    def _schedule_delivery(self, task_id: str) -> None:
        if self._stopping or not self._started or task_id in self._deliveries:
            return
        task = asyncio.create_task(self._deliver(task_id), name=f"webhook-{task_id}")
        self._deliveries[task_id] = task
        task.add_done_callback(lambda _t: self._deliveries.pop(task_id, None))

    async def _deliver(self, task_id: str) -> None:
        rec = self.store.get(task_id)
        if rec is None or rec.webhook_status != WebhookStatus.PENDING:
            return
        data: bytes | None = None
        try:
            if rec.status == TaskStatus.COMPLETED:
                try:
                    data = await asyncio.to_thread(self.store.read_media, task_id)
                except FileNotFoundError:
                    log.error("task %s: media file missing before delivery; reporting a failure", task_id)
                    result = await self.webhooks.send_failure(rec, "the generated media was lost before delivery")
                else:
                    result = await self.webhooks.send_success(rec, data, rec.result_metadata)
            else:
                result = await self.webhooks.send_failure(rec, rec.error or "generation failed")
            ok, attempts, error = bool(result.ok), int(result.attempts), result.error
            if not ok and getattr(result, "rejected", False):
                error = f"rejected: {error}"
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task %s: webhook delivery crashed", task_id)
            ok, attempts, error = False, 0, "internal error while delivering"
        if self.save_dir is not None and data is not None:
            try:
                await asyncio.to_thread(self._save_copy, rec, data, ok, error)
            except OSError:
                log.exception("task %s: could not save a copy under %s", task_id, self.save_dir)
        try:
            self.store.mark_webhook(task_id, delivered=ok, attempts=attempts, error=error)
        except TaskNotFound:  # deleted meanwhile (by hand): nothing left to record
            log.warning("task %s vanished from the store during its webhook delivery", task_id)
        await asyncio.to_thread(self.store.drop_media, task_id)

    def _save_copy(self, rec: TaskRecord, data: bytes, delivered: bool, error: str | None) -> None:
        folder = self.save_dir / rec.modality  # type: ignore[operator]
        folder.mkdir(parents=True, exist_ok=True)
        mime = rec.result_mime or sniff_mime(data)
        atomic_write(folder / f"{rec.task_id}{extension_for(mime)}", data)
        sidecar = {
            **rec.public_dict(),
            "sha256": hashlib.sha256(data).hexdigest(),
            "webhook_delivered": delivered,
            "webhook_error": error,
        }
        atomic_write(folder / f"{rec.task_id}.json", json.dumps(sidecar, indent=2, default=str).encode())

    # -------------------------------------------------------------------------------- cleanup
    async def cleanup_once(self) -> int:
        """Delete tasks older than ``max_task_age_s`` (not those queued, running or delivering)."""
        keep = set(self._queued) | set(self._running) | set(self._deliveries)
        removed = await asyncio.to_thread(self.store.cleanup, self.max_task_age_s, keep=keep)
        await asyncio.to_thread(self.store.checkpoint_wal)
        return removed

    async def _cleanup_loop(self) -> None:
        # once right after start (old rows, files orphaned by a crash), then every cleanup_interval
        while True:
            try:
                await self.cleanup_once()
            except Exception:
                log.exception("task cleanup failed; retrying in %.0f s", self.cleanup_interval)
            await asyncio.sleep(self.cleanup_interval)
