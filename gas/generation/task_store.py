"""Durable store of the generative miner's tasks: SQLite (WAL) plus one media file per finished task.

Why a database and not the reference's JSON file per task: a validator sends many small requests,
and every accepted request must be durable before the miner answers 201. One ``INSERT`` in WAL
mode costs tens of microseconds; the reference's write-a-file-and-rename costs a syscall storm
and gives no way to count, list or clean up without reading every file.

Layout (``path`` is the database file, e.g. ``<cache>/generator/tasks.db``)::

    tasks.db, tasks.db-wal, tasks.db-shm     the task rows and webhook counters
    outbox/<task_id><ext>                     result bytes waiting for webhook delivery

Durability:

* ``journal_mode=WAL`` with ``synchronous=NORMAL`` (the default here): a transaction is in the
  WAL file (the OS page cache) when ``commit`` returns. That survives the death of the process
  (``kill -9``, OOM kill, a crash), which is the failure this store is built for. An OS crash or
  power loss may lose the transactions committed since the WAL was last synced (the database stays
  consistent). Pass ``synchronous="FULL"`` to fsync the WAL on every commit (survives power loss;
  costs one fsync, ~0.1-10 ms depending on the disk, per accepted request).
* Media is written to a temporary file, fsync'd, renamed into place and the directory fsync'd
  *before* the task is marked completed, so a completed row always has its bytes on disk.

All methods are thread-safe (one connection behind a lock); blocking file I/O (``save_result``,
``read_media``, ``cleanup``) should be called from a worker thread by async code.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gas.protocol.media_types import extension_for
from gas.storage.files import atomic_write

log = logging.getLogger(__name__)

DB_FILENAME = "tasks.db"
MEDIA_DIRNAME = "outbox"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000

#: Webhook attempt categories counted per validator.
ATTEMPT_CATEGORIES = (
    "delivered",
    "http_4xx",
    "http_5xx",
    "http_other",
    "timeout",
    "connection_error",
    "invalid_url",
    "unknown_task",
)
#: Final outcomes of one delivery (all attempts of one webhook).
DELIVERY_OUTCOMES = ("delivered", "rejected", "failed")


class TaskStatus(str, enum.Enum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


class WebhookStatus(str, enum.Enum):
    NONE = "none"  # the task has not finished yet
    PENDING = "pending"  # finished; the webhook is still to be delivered
    DELIVERED = "delivered"  # the validator answered 2xx
    FAILED = "failed"  # rejected by the validator, or given up after retries

    def __str__(self) -> str:
        return self.value


class TaskStoreError(Exception):
    """The task database cannot be used (newer schema, unreadable file, unknown task)."""


class TaskNotFound(TaskStoreError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task {task_id!r} in the task store")
        self.task_id = task_id


@dataclass
class TaskRecord:
    task_id: str
    modality: str
    prompt: str
    parameters: dict[str, Any]
    webhook_url: str
    signed_by: str | None
    status: TaskStatus
    created_at: float
    started_at: float | None = None
    completed_at: float | None = None
    error: str | None = None
    checkpoint: dict[str, Any] | None = None
    service: str | None = None
    result_mime: str | None = None
    result_size: int | None = None
    webhook_status: WebhookStatus = WebhookStatus.NONE
    webhook_attempts: int = 0
    attempts: int = 0
    # not in the reference's task: what the engine needs to redeliver after a restart
    result_metadata: dict[str, Any] = field(default_factory=dict)
    result_file: str | None = None  # name under outbox/, while the bytes await delivery
    webhook_error: str | None = None
    webhook_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.status in (TaskStatus.COMPLETED, TaskStatus.FAILED)

    def processing_time(self, now: float | None = None) -> float | None:
        """Seconds from start to finish (or to ``now`` while processing); None before it starts."""
        if self.started_at is None:
            return None
        end = self.completed_at
        if end is None:
            if self.status != TaskStatus.PROCESSING:
                return None
            end = time.time() if now is None else now
        return max(0.0, end - self.started_at)

    def public_dict(self, now: float | None = None) -> dict[str, Any]:
        """What ``GET /status/{task_id}`` shows: JSON-able, never bytes, no checkpoint or file paths."""
        return {
            "task_id": self.task_id,
            "modality": self.modality,
            "status": self.status.value,
            "prompt": self.prompt,
            "parameters": self.parameters,
            "webhook_url": self.webhook_url,
            "signed_by": self.signed_by,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "processing_time": self.processing_time(now),
            "error_message": self.error,
            "service": self.service,
            "result_mime": self.result_mime,
            "result_size": self.result_size,
            "result_metadata": self.result_metadata,
            "webhook_status": self.webhook_status.value,
            "webhook_attempts": self.webhook_attempts,
            "attempts": self.attempts,
        }


# --------------------------------------------------------------------------------------------
# schema
# --------------------------------------------------------------------------------------------
_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE tasks (
        task_id          TEXT PRIMARY KEY,
        modality         TEXT NOT NULL,
        prompt           TEXT NOT NULL,
        parameters       TEXT NOT NULL,
        webhook_url      TEXT NOT NULL,
        signed_by        TEXT,
        status           TEXT NOT NULL,
        created_at       REAL NOT NULL,
        started_at       REAL,
        completed_at     REAL,
        error            TEXT,
        checkpoint       TEXT,
        service          TEXT,
        result_mime      TEXT,
        result_size      INTEGER,
        result_metadata  TEXT,
        result_file      TEXT,
        webhook_status   TEXT NOT NULL DEFAULT 'none',
        webhook_attempts INTEGER NOT NULL DEFAULT 0,
        webhook_error    TEXT,
        webhook_at       REAL,
        attempts         INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tasks_status ON tasks(status);
    CREATE INDEX tasks_created ON tasks(created_at);
    CREATE INDEX tasks_webhook_pending ON tasks(webhook_status) WHERE webhook_status = 'pending';
    CREATE TABLE webhook_counters (
        validator TEXT NOT NULL,
        key       TEXT NOT NULL,
        count     INTEGER NOT NULL,
        PRIMARY KEY (validator, key)
    ) WITHOUT ROWID;
    CREATE TABLE webhook_validators (
        validator     TEXT PRIMARY KEY,
        endpoint      TEXT,
        last_category TEXT,
        last_at       REAL
    );
    """,
}

_COLUMNS = (
    "task_id, modality, prompt, parameters, webhook_url, signed_by, status, created_at, started_at, "
    "completed_at, error, checkpoint, service, result_mime, result_size, result_metadata, result_file, "
    "webhook_status, webhook_attempts, webhook_error, webhook_at, attempts"
)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _row_to_record(row: tuple) -> TaskRecord:
    (task_id, modality, prompt, parameters, webhook_url, signed_by, status, created_at, started_at,
     completed_at, error, checkpoint, service, result_mime, result_size, result_metadata, result_file,
     webhook_status, webhook_attempts, webhook_error, webhook_at, attempts) = row
    return TaskRecord(
        task_id=task_id,
        modality=modality,
        prompt=prompt,
        parameters=json.loads(parameters),
        webhook_url=webhook_url,
        signed_by=signed_by,
        status=TaskStatus(status),
        created_at=created_at,
        started_at=started_at,
        completed_at=completed_at,
        error=error,
        checkpoint=_loads(checkpoint),
        service=service,
        result_mime=result_mime,
        result_size=result_size,
        webhook_status=WebhookStatus(webhook_status),
        webhook_attempts=webhook_attempts,
        attempts=attempts,
        result_metadata=_loads(result_metadata) or {},
        result_file=result_file,
        webhook_error=webhook_error,
        webhook_at=webhook_at,
    )


def default_db_path(generator_dir: str | os.PathLike[str]) -> Path:
    """Where the miner keeps its task database: ``<generator_dir>/tasks.db``
    (``GeneratorSettings.generator_dir``; ``gascli generator info`` reads the same file)."""
    return Path(generator_dir) / DB_FILENAME


def empty_stats() -> dict[str, Any]:
    """Stats of a store with no tasks (also what ``read_stats`` returns for a missing database)."""
    return {
        "schema_version": None,
        "tasks": {"total": 0, **{s.value: 0 for s in TaskStatus}},
        "webhooks": {
            "pending": 0,
            "delivered": 0,
            "rejected": 0,
            "failed": 0,
            "attempts": 0,
            "retries": 0,
        },
        "validators": {},
    }


def _collect_stats(conn: sqlite3.Connection, version: int | None) -> dict[str, Any]:
    stats = empty_stats()
    stats["schema_version"] = version
    tasks = stats["tasks"]
    for status, count in conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status"):
        tasks[status] = count
        tasks["total"] += count
    hooks = stats["webhooks"]
    hooks["pending"] = conn.execute("SELECT COUNT(*) FROM tasks WHERE webhook_status = 'pending'").fetchone()[0]
    validators: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        if name not in validators:
            validators[name] = {
                "endpoint": None,
                "last_category": None,
                "last_at": None,
                **{o: 0 for o in DELIVERY_OUTCOMES},
                "retries": 0,
                "attempts": {c: 0 for c in ATTEMPT_CATEGORIES},
            }
        return validators[name]

    for validator, key, count in conn.execute("SELECT validator, key, count FROM webhook_counters"):
        e = entry(validator)
        kind, _, name = key.partition(":")
        if kind == "attempt":
            e["attempts"][name] = e["attempts"].get(name, 0) + count
            hooks["attempts"] += count
        elif kind == "outcome":
            e[name] = e.get(name, 0) + count
            hooks[name] = hooks.get(name, 0) + count
        elif key == "retries":
            e["retries"] += count
            hooks["retries"] += count
    for validator, endpoint, last_category, last_at in conn.execute(
        "SELECT validator, endpoint, last_category, last_at FROM webhook_validators"
    ):
        e = entry(validator)
        e.update(endpoint=endpoint, last_category=last_category, last_at=last_at)
    stats["validators"] = dict(sorted(validators.items()))
    return stats


def read_stats(db_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Stats of the task database at ``db_path`` without writing anything (for ``gascli generator info``).

    Works while the miner runs (a read-only WAL reader) and when it does not (the file is opened
    immutable when no WAL file exists, so not even ``-wal``/``-shm`` files are created). A missing
    database gives :func:`empty_stats`.
    """
    path = Path(db_path)
    if not path.is_file():
        return empty_stats()
    wal = path.with_name(path.name + "-wal")
    modes = ("mode=ro",) if wal.exists() else ("immutable=1", "mode=ro")
    last: Exception | None = None
    for mode in modes:
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            last = exc
            continue
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                return empty_stats()
            if version > SCHEMA_VERSION:
                raise TaskStoreError(
                    f"{path} has task-store schema v{version}; this version of gas reads up to v{SCHEMA_VERSION}"
                )
            return _collect_stats(conn, version)
        except sqlite3.Error as exc:  # e.g. the miner started writing while we read it immutable
            last = exc
        finally:
            conn.close()
    raise TaskStoreError(f"cannot read the task database {path}: {last}")


# --------------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------------
class TaskStore:
    """Tasks and their results, durable across process crashes (see the module docstring).

    ``clock`` (seconds since the epoch) is injectable for tests of age-based cleanup.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = Path(path)
        self.media_dir = self.path.parent / MEDIA_DIRNAME
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise TaskStoreError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            self._conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise TaskStoreError(f"cannot open the task database {self.path}: {exc}") from exc

    # ---------------------------------------------------------------------------------- admin
    def _migrate(self) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                version = self._conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise TaskStoreError(
                        f"{self.path} has task-store schema v{version}, newer than this gas (v{SCHEMA_VERSION}); "
                        "upgrade gas or point the miner at another cache directory"
                    )
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[target].split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {target}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA optimize")
            self._conn.close()

    def __enter__(self) -> TaskStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def checkpoint_wal(self) -> None:
        """Fold the WAL into the database (called by the cleanup loop; keeps the WAL small)."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _update(self, sql: str, params: Iterable[Any], task_id: str) -> None:
        with self._lock:
            cur = self._conn.execute(sql, tuple(params))
            if cur.rowcount == 0:
                raise TaskNotFound(task_id)

    # --------------------------------------------------------------------------------- create
    def create(
        self,
        modality: str,
        prompt: str,
        parameters: Mapping[str, Any] | None,
        webhook_url: str,
        signed_by: str | None,
        *,
        task_id: str | None = None,
    ) -> TaskRecord:
        """A new pending task, committed (durable) when this returns. Tens of microseconds."""
        record = TaskRecord(
            task_id=task_id or str(uuid.uuid4()),
            modality=modality,
            prompt=prompt,
            parameters=dict(parameters or {}),
            webhook_url=webhook_url,
            signed_by=signed_by,
            status=TaskStatus.PENDING,
            created_at=self.clock(),
        )
        params_json = json.dumps(record.parameters, separators=(",", ":"))
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO tasks (task_id, modality, prompt, parameters, webhook_url, signed_by, status, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                    (record.task_id, modality, prompt, params_json, webhook_url, signed_by, record.created_at),
                )
            except sqlite3.IntegrityError:
                raise TaskStoreError(f"task id {record.task_id!r} already exists") from None
        return record

    # ---------------------------------------------------------------------------------- reads
    def get(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return None if row is None else _row_to_record(row)

    def _require(self, task_id: str) -> TaskRecord:
        rec = self.get(task_id)
        if rec is None:
            raise TaskNotFound(task_id)
        return rec

    def list_resumable(self) -> list[TaskRecord]:
        """Pending and processing tasks, oldest first (what a restarted engine must run)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM tasks WHERE status IN ('pending', 'processing') ORDER BY created_at"
            ).fetchall()
        return [_row_to_record(r) for r in rows]

    def list_undelivered(self) -> list[TaskRecord]:
        """Finished tasks whose webhook is still to be delivered, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM tasks WHERE webhook_status = 'pending' ORDER BY completed_at"
            ).fetchall()
        return [_row_to_record(r) for r in rows]

    def count(self, status: TaskStatus | None = None) -> int:
        with self._lock:
            if status is None:
                return self._conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
            return self._conn.execute("SELECT COUNT(*) FROM tasks WHERE status = ?", (status.value,)).fetchone()[0]

    # ------------------------------------------------------------------------------ lifecycle
    def mark_processing(self, task_id: str, service: str | None) -> TaskRecord:
        """The task starts (again): status processing, ``attempts`` + 1. Returns the updated record."""
        self._update(
            "UPDATE tasks SET status = 'processing', started_at = ?, service = ?, attempts = attempts + 1 "
            "WHERE task_id = ?",
            (self.clock(), service, task_id),
            task_id,
        )
        return self._require(task_id)

    def release(self, task_id: str) -> None:
        """Hand an interrupted task back (graceful stop): pending again, the attempt not counted, checkpoint kept."""
        self._update(
            "UPDATE tasks SET status = 'pending', attempts = MAX(attempts - 1, 0) "
            "WHERE task_id = ? AND status = 'processing'",
            (task_id,),
            task_id,
        )

    def set_checkpoint(self, task_id: str, checkpoint: Mapping[str, Any] | None) -> None:
        """Store the service's resume state (None clears it); durable on return."""
        text = None if checkpoint is None else json.dumps(dict(checkpoint), separators=(",", ":"))
        self._update("UPDATE tasks SET checkpoint = ? WHERE task_id = ?", (text, task_id), task_id)

    def media_path(self, name: str) -> Path:
        return self.media_dir / name

    def save_result(
        self,
        task_id: str,
        data: bytes,
        mime: str | None,
        metadata: Mapping[str, Any] | None = None,
    ) -> TaskRecord:
        """Write the media durably, then mark the task completed with its webhook pending. Blocking I/O."""
        if not data:
            raise ValueError("refusing to store an empty result")
        name = f"{task_id}{extension_for(mime)}"
        atomic_write(self.media_path(name), bytes(data), mode=0o600)
        meta = json.dumps(dict(metadata or {}), separators=(",", ":"), default=str)
        self._update(
            "UPDATE tasks SET status = 'completed', completed_at = ?, result_mime = ?, result_size = ?, "
            "result_metadata = ?, result_file = ?, checkpoint = NULL, error = NULL, webhook_status = 'pending' "
            "WHERE task_id = ?",
            (self.clock(), mime, len(data), meta, name, task_id),
            task_id,
        )
        return self._require(task_id)

    def mark_failed(self, task_id: str, error: str) -> TaskRecord:
        """The task failed: its failure webhook becomes pending."""
        self._update(
            "UPDATE tasks SET status = 'failed', completed_at = ?, error = ?, checkpoint = NULL, "
            "webhook_status = 'pending' WHERE task_id = ?",
            (self.clock(), error, task_id),
            task_id,
        )
        return self._require(task_id)

    def read_media(self, task_id: str) -> bytes:
        """The result bytes of a completed task awaiting delivery. Raises FileNotFoundError when gone."""
        rec = self._require(task_id)
        if not rec.result_file:
            raise FileNotFoundError(f"task {task_id} has no stored media")
        return self.media_path(rec.result_file).read_bytes()

    def drop_media(self, task_id: str) -> None:
        """Delete the task's media file (after delivery) and forget its name."""
        rec = self.get(task_id)
        if rec is None or not rec.result_file:
            return
        with contextlib.suppress(FileNotFoundError):
            self.media_path(rec.result_file).unlink()
        with self._lock:
            self._conn.execute("UPDATE tasks SET result_file = NULL WHERE task_id = ?", (task_id,))

    # -------------------------------------------------------------------------------- webhooks
    def mark_webhook(self, task_id: str, *, delivered: bool, attempts: int, error: str | None = None) -> None:
        """Record the end of a task's webhook delivery (delivered, or failed/rejected with ``error``)."""
        status = WebhookStatus.DELIVERED if delivered else WebhookStatus.FAILED
        self._update(
            "UPDATE tasks SET webhook_status = ?, webhook_attempts = webhook_attempts + ?, webhook_error = ?, "
            "webhook_at = ? WHERE task_id = ?",
            (status.value, attempts, error, self.clock(), task_id),
            task_id,
        )

    def _bump(self, validator: str, key: str, n: int = 1) -> None:
        self._conn.execute(
            "INSERT INTO webhook_counters (validator, key, count) VALUES (?, ?, ?) "
            "ON CONFLICT (validator, key) DO UPDATE SET count = count + excluded.count",
            (validator, key, n),
        )

    def record_webhook_attempt(self, validator: str, endpoint: str, category: str) -> None:
        """Count one delivery attempt to ``validator`` (hotkey) at ``endpoint`` (host:port) by outcome."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._bump(validator, f"attempt:{category}")
                self._conn.execute(
                    "INSERT INTO webhook_validators (validator, endpoint, last_category, last_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (validator) DO UPDATE SET endpoint = excluded.endpoint, "
                    "last_category = excluded.last_category, last_at = excluded.last_at",
                    (validator, endpoint, category, self.clock()),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def record_webhook_outcome(self, validator: str, endpoint: str, outcome: str, attempts: int) -> None:
        """Count one finished delivery (``delivered``, ``rejected`` or ``failed``) and its retries."""
        if outcome not in DELIVERY_OUTCOMES:
            raise ValueError(f"unknown delivery outcome {outcome!r}")
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._bump(validator, f"outcome:{outcome}")
                if attempts > 1:
                    self._bump(validator, "retries", attempts - 1)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # --------------------------------------------------------------------------------- cleanup
    def cleanup(
        self,
        max_age_s: float,
        *,
        keep: Iterable[str] = (),
        orphan_grace_s: float = 600.0,
    ) -> int:
        """Delete tasks created more than ``max_age_s`` ago (and their media), except ids in ``keep``
        (the engine's running tasks). Also removes media files no row needs any more (left by a
        crash mid-write) once they are ``orphan_grace_s`` old. Returns the number of rows deleted.
        """
        now = self.clock()
        cutoff = now - max_age_s
        keep_set = set(keep)
        with self._lock:
            rows = self._conn.execute(
                "SELECT task_id, result_file FROM tasks WHERE created_at < ?", (cutoff,)
            ).fetchall()
            doomed = [(tid, f) for tid, f in rows if tid not in keep_set]
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany("DELETE FROM tasks WHERE task_id = ?", [(tid,) for tid, _ in doomed])
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            wanted = {
                f
                for (f,) in self._conn.execute(
                    "SELECT result_file FROM tasks WHERE result_file IS NOT NULL AND webhook_status = 'pending'"
                )
            }
        for _, name in doomed:
            if name:
                with contextlib.suppress(FileNotFoundError):
                    self.media_path(name).unlink()
        orphans = 0
        wall = time.time()  # file times are wall-clock, whatever ``clock`` says
        for entry in os.scandir(self.media_dir):
            if entry.name in wanted or not entry.is_file(follow_symlinks=False):
                continue
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            if wall - mtime >= orphan_grace_s:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                orphans += 1
        if doomed or orphans:
            log.info("cleanup: deleted %d task(s) older than %.0f s and %d orphan media file(s)",
                     len(doomed), max_age_s, orphans)
        return len(doomed)

    # ----------------------------------------------------------------------------------- stats
    def stats(self) -> dict[str, Any]:
        """Counts by status, webhook totals and per-validator delivery stats (see :func:`empty_stats`)."""
        with self._lock:
            return _collect_stats(self._conn, self._conn.execute("PRAGMA user_version").fetchone()[0])
