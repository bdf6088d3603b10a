"""TaskStore: durable rows, atomic media files, schema versioning, cleanup by age, read-only stats."""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import time

import pytest
from devchain_helpers import FakeClock
from media_fixtures import make_jpeg, make_png

from gas.generation.task_store import (
    SCHEMA_VERSION,
    TaskNotFound,
    TaskStatus,
    TaskStore,
    TaskStoreError,
    WebhookStatus,
    empty_stats,
    read_stats,
)

HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
URL = "http://127.0.0.1:9/generative_callback"


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.0)


@pytest.fixture()
def store(tmp_path, clock):
    s = TaskStore(tmp_path / "gen" / "tasks.db", clock=clock)
    yield s
    s.close()


def test_create_is_durable_and_roundtrips(store, tmp_path, clock) -> None:
    rec = store.create("image", "a cat", {"resolution": "512x512", "seed": 3}, URL, HOTKEY)
    assert rec.status == TaskStatus.PENDING and rec.created_at == clock.now and rec.attempts == 0
    assert rec.webhook_status == WebhookStatus.NONE
    # a second connection (another process, in effect) sees the committed row right away
    with sqlite3.connect(store.path) as other:
        assert other.execute("SELECT prompt, parameters FROM tasks").fetchall() == [
            ("a cat", json.dumps({"resolution": "512x512", "seed": 3}, separators=(",", ":")))]
    again = store.get(rec.task_id)
    assert again == rec
    assert store.get("nope") is None


def test_pragmas(store) -> None:
    conn = store._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert store.schema_version == SCHEMA_VERSION


def test_full_synchronous_is_selectable(tmp_path) -> None:
    with TaskStore(tmp_path / "t.db", synchronous="full") as s:
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    with pytest.raises(ValueError):
        TaskStore(tmp_path / "u.db", synchronous="off")


def test_duplicate_task_id_is_refused(store) -> None:
    store.create("image", "p", {}, URL, HOTKEY, task_id="fixed")
    with pytest.raises(TaskStoreError, match="already exists"):
        store.create("image", "p", {}, URL, HOTKEY, task_id="fixed")


def test_lifecycle_success(store, clock) -> None:
    rec = store.create("image", "a cat", {}, URL, HOTKEY)
    clock.now += 5
    rec = store.mark_processing(rec.task_id, "diffusers")
    assert rec.status == TaskStatus.PROCESSING and rec.attempts == 1 and rec.service == "diffusers"
    assert rec.started_at == clock.now
    store.set_checkpoint(rec.task_id, {"job": "j-1"})
    assert store.get(rec.task_id).checkpoint == {"job": "j-1"}
    data = make_jpeg(0, (48, 64))
    clock.now += 2.5
    rec = store.save_result(rec.task_id, data, "image/jpeg", {"model": "m"})
    assert rec.status == TaskStatus.COMPLETED and rec.webhook_status == WebhookStatus.PENDING
    assert rec.checkpoint is None and rec.result_size == len(data) and rec.result_metadata == {"model": "m"}
    assert rec.result_file == f"{rec.task_id}.jpg"
    assert store.read_media(rec.task_id) == data
    assert rec.processing_time() == 2.5
    public = rec.public_dict()
    json.dumps(public)  # JSON-able
    assert public["processing_time"] == 2.5 and public["status"] == "completed"
    assert "checkpoint" not in public and "result_file" not in public
    assert not any(isinstance(v, bytes) for v in public.values())
    assert [r.task_id for r in store.list_undelivered()] == [rec.task_id]
    store.mark_webhook(rec.task_id, delivered=True, attempts=2)
    store.drop_media(rec.task_id)
    rec = store.get(rec.task_id)
    assert rec.webhook_status == WebhookStatus.DELIVERED and rec.webhook_attempts == 2 and rec.result_file is None
    assert list(store.media_dir.iterdir()) == []
    assert store.list_undelivered() == []


def test_lifecycle_failure_and_release(store) -> None:
    a = store.create("video", "a", {}, URL, HOTKEY)
    b = store.create("video", "b", {}, URL, HOTKEY)
    store.mark_processing(a.task_id, "runway")
    store.set_checkpoint(a.task_id, {"runway_task_id": "r"})
    store.release(a.task_id)  # graceful stop: pending again, attempt not counted, checkpoint kept
    a2 = store.get(a.task_id)
    assert a2.status == TaskStatus.PENDING and a2.attempts == 0 and a2.checkpoint == {"runway_task_id": "r"}
    rec = store.mark_failed(b.task_id, "provider refused")
    assert rec.status == TaskStatus.FAILED and rec.error == "provider refused"
    assert rec.webhook_status == WebhookStatus.PENDING
    assert [r.task_id for r in store.list_resumable()] == [a.task_id]
    with pytest.raises(TaskNotFound):
        store.mark_processing("missing", "x")
    with pytest.raises(TaskNotFound):
        store.set_checkpoint("missing", None)


def test_resumable_lists_pending_and_processing_oldest_first(store, clock) -> None:
    ids = []
    for i in range(4):
        clock.now += 1
        ids.append(store.create("image", f"p{i}", {}, URL, HOTKEY).task_id)
    store.mark_processing(ids[2], "s")
    store.mark_failed(ids[1], "x")
    assert [r.task_id for r in store.list_resumable()] == [ids[0], ids[2], ids[3]]


def test_media_write_is_atomic_and_leaves_no_temp_files(store) -> None:
    rec = store.create("image", "p", {}, URL, HOTKEY)
    store.save_result(rec.task_id, make_png(1, (32, 32)), "image/png")
    names = os.listdir(store.media_dir)
    assert names == [f"{rec.task_id}.png"]
    with pytest.raises(ValueError):
        store.save_result(rec.task_id, b"", "image/png")


def test_media_is_on_disk_before_the_row_says_completed(store, monkeypatch) -> None:
    """If writing the file fails, the task is not marked completed (so it would be re-run)."""
    rec = store.create("image", "p", {}, URL, HOTKEY)
    store.mark_processing(rec.task_id, "s")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        store.save_result(rec.task_id, b"\x89PNG\r\n\x1a\n....", "image/png")
    monkeypatch.undo()
    assert store.get(rec.task_id).status == TaskStatus.PROCESSING
    assert os.listdir(store.media_dir) == []  # the temporary file was removed too


def test_cleanup_by_age_removes_rows_and_files(store, clock) -> None:
    old = store.create("image", "old", {}, URL, HOTKEY)
    store.save_result(old.task_id, make_png(2, (16, 16)), "image/png")
    old_running = store.create("image", "old but running", {}, URL, HOTKEY)
    clock.now += 20 * 3600
    young = store.create("image", "young", {}, URL, HOTKEY)
    store.save_result(young.task_id, make_png(3, (16, 16)), "image/png")
    clock.now += 5 * 3600  # old is 25 h old, young 5 h
    removed = store.cleanup(24 * 3600, keep={old_running.task_id})
    assert removed == 1
    assert store.get(old.task_id) is None and store.get(old_running.task_id) is not None
    assert store.get(young.task_id) is not None
    assert sorted(os.listdir(store.media_dir)) == [f"{young.task_id}.png"]


def test_cleanup_removes_orphan_files_after_a_grace_period(store) -> None:
    rec = store.create("image", "p", {}, URL, HOTKEY)
    store.save_result(rec.task_id, b"\x89PNG\r\n\x1a\nkeep", "image/png")
    orphan = store.media_dir / "dead-task.png"
    orphan.write_bytes(b"x")
    temp = store.media_dir / ".tmp-dead-task.png-1234"
    temp.write_bytes(b"x")
    store.cleanup(24 * 3600)
    assert orphan.exists() and temp.exists()  # too young: might be a write in progress
    past = time.time() - 3600
    for p in (orphan, temp, store.media_dir / f"{rec.task_id}.png"):
        os.utime(p, (past, past))
    store.cleanup(24 * 3600)
    assert os.listdir(store.media_dir) == [f"{rec.task_id}.png"]  # still awaiting delivery: kept


def test_stats_counts_statuses_and_webhooks(store) -> None:
    ids = [store.create("image", f"p{i}", {}, URL, HOTKEY).task_id for i in range(5)]
    store.mark_processing(ids[0], "s")
    store.save_result(ids[1], b"\x89PNG\r\n\x1a\n", "image/png")
    store.mark_failed(ids[2], "x")
    store.record_webhook_attempt(HOTKEY, "1.2.3.4:80", "http_5xx")
    store.record_webhook_attempt(HOTKEY, "1.2.3.4:80", "delivered")
    store.record_webhook_outcome(HOTKEY, "1.2.3.4:80", "delivered", 2)
    store.record_webhook_attempt("5Other", "5.6.7.8:80", "http_4xx")
    store.record_webhook_outcome("5Other", "5.6.7.8:80", "rejected", 1)
    with pytest.raises(ValueError):
        store.record_webhook_outcome(HOTKEY, "x", "maybe", 1)
    stats = store.stats()
    assert stats["schema_version"] == SCHEMA_VERSION
    assert stats["tasks"] == {"total": 5, "pending": 2, "processing": 1, "completed": 1, "failed": 1}
    assert stats["webhooks"] == {"pending": 2, "delivered": 1, "rejected": 1, "failed": 0, "attempts": 3,
                                 "retries": 1}
    alice = stats["validators"][HOTKEY]
    assert alice["endpoint"] == "1.2.3.4:80" and alice["last_category"] == "delivered"
    assert alice["attempts"]["http_5xx"] == 1 and alice["attempts"]["delivered"] == 1
    assert alice["delivered"] == 1 and alice["retries"] == 1
    assert stats["validators"]["5Other"]["rejected"] == 1
    json.dumps(stats)


def test_read_stats_while_open_and_after_close_without_writing(tmp_path) -> None:
    path = tmp_path / "gen" / "tasks.db"
    assert read_stats(path) == empty_stats()  # missing database
    assert not path.parent.exists()
    store = TaskStore(path)
    store.create("image", "p", {}, URL, HOTKEY)
    assert read_stats(path)["tasks"]["pending"] == 1  # while the writer holds the database open
    store.close()
    before = sorted(os.listdir(path.parent))
    mtime = path.stat().st_mtime_ns
    assert read_stats(path)["tasks"]["total"] == 1
    assert sorted(os.listdir(path.parent)) == before  # no -wal/-shm created
    assert path.stat().st_mtime_ns == mtime


def test_newer_schema_is_refused_clearly(tmp_path) -> None:
    path = tmp_path / "tasks.db"
    TaskStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(TaskStoreError, match="newer than this gas"):
        TaskStore(path)
    with pytest.raises(TaskStoreError, match="reads up to"):
        read_stats(path)


def test_a_corrupt_file_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "tasks.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(TaskStoreError, match="cannot open the task database"):
        TaskStore(path)


def test_reopen_keeps_everything(tmp_path) -> None:
    path = tmp_path / "tasks.db"
    with TaskStore(path) as s:
        rec = s.create("video", "p", {"duration": 4}, URL, HOTKEY)
        s.mark_processing(rec.task_id, "openrouter")
        s.set_checkpoint(rec.task_id, {"job_id": "or-1"})
    with TaskStore(path) as s:
        again = s.get(rec.task_id)
        assert again.status == TaskStatus.PROCESSING and again.checkpoint == {"job_id": "or-1"}
        assert again.attempts == 1 and again.parameters == {"duration": 4}


def test_create_latency(tmp_path) -> None:
    """The server calls create per accepted request: it must stay far below a millisecond."""
    with TaskStore(tmp_path / "tasks.db") as s:
        for _ in range(200):  # warm up
            s.create("image", "warm", {}, URL, HOTKEY)
        lat = []
        for i in range(2000):
            t0 = time.perf_counter()
            s.create("image", f"a photo of a cat number {i}", {"resolution": "1024x1024"}, URL, HOTKEY)
            lat.append(time.perf_counter() - t0)
    assert statistics.median(lat) < 0.0005, f"median create latency {statistics.median(lat) * 1e6:.0f} us"
