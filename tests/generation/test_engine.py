"""TaskEngine: real concurrency, timeouts, failures, checkpoints, resume after stop and after kill -9,
webhooks to a real local receiver that verifies Epistula signatures."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bittensor_core import Keypair
from devchain_helpers import FakeClock
from fake_generation import FakeService, FakeServices, fake_png
from webhook_receiver import WebhookReceiver

from gas.generation.engine import TaskEngine
from gas.generation.services.base import GenerationRequest, GenerationResult
from gas.generation.task_store import TaskStatus, TaskStore, WebhookStatus, read_stats
from gas.protocol.webhooks import WebhookSender

REPO = Path(__file__).resolve().parents[2]
MINER = Keypair.create_from_uri("//Bob")
VALIDATOR = Keypair.create_from_uri("//Alice")
V = VALIDATOR.ss58_address


async def no_sleep(_s: float) -> None:
    await asyncio.sleep(0)


@pytest.fixture()
def receiver():
    with WebhookReceiver(VALIDATOR) as r:
        yield r


@pytest.fixture()
def store(tmp_path):
    s = TaskStore(tmp_path / "gen" / "tasks.db")
    yield s
    s.close()


def make_engine(store: TaskStore, service, **kw) -> TaskEngine:
    sender = WebhookSender(MINER, stats=store, sleep=kw.pop("sleep", no_sleep), retry_delay=0.01,
                           max_retries=kw.pop("max_retries", 2), timeout=kw.pop("webhook_timeout", 5.0))
    kw.setdefault("max_concurrent", 2)
    kw.setdefault("task_timeout", 10.0)
    return TaskEngine(store, FakeServices(service), sender, **kw)


async def shutdown(engine: TaskEngine) -> None:
    await engine.stop()
    await engine.webhooks.aclose()


def run(coro):
    return asyncio.run(coro)


async def run_one(store: TaskStore, service, receiver, **kw) -> str:
    """Start an engine, submit one image task to ``receiver``, wait until it is done, stop; the task id."""
    engine = make_engine(store, service, **kw)
    await engine.start()
    rec = engine.submit("image", "p", {}, receiver.url(), V)
    await engine.wait_idle(timeout=5)
    await shutdown(engine)
    return rec.task_id


async def until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.005)


# ------------------------------------------------------------------------------------ concurrency
def test_n_slow_tasks_with_n_slots_finish_in_about_one_slot(store, receiver) -> None:
    n, slot = 5, 0.5
    service = FakeService(delay=slot)

    async def main() -> float:
        engine = make_engine(store, service, max_concurrent=n)
        await engine.start()
        t0 = time.monotonic()
        for i in range(n):
            engine.submit("image", f"p{i}", {}, receiver.url(), V)
        await until(lambda: len(receiver.received) >= n)
        elapsed = time.monotonic() - t0
        await shutdown(engine)
        return elapsed

    elapsed = run(main())
    assert service.peak == n
    assert elapsed < slot * 1.8, f"{n} tasks of {slot} s with {n} slots took {elapsed:.2f} s"


def test_never_more_than_max_concurrent_at_once(store, receiver) -> None:
    service = FakeService(delay=0.2)

    async def main() -> float:
        engine = make_engine(store, service, max_concurrent=3)
        await engine.start()
        t0 = time.monotonic()
        for i in range(9):
            engine.submit("image", f"p{i}", {}, receiver.url(), V)
        await engine.wait_idle(timeout=10)
        elapsed = time.monotonic() - t0
        assert engine.peak_running == 3
        await shutdown(engine)
        return elapsed

    elapsed = run(main())
    assert service.peak == 3
    assert 0.6 <= elapsed < 1.4, elapsed  # three slots' worth (0.6 s), not nine (1.8 s), not one
    assert len(receiver.received) == 9


def test_a_slow_validator_never_holds_a_generation_slot(store, receiver) -> None:
    receiver.delay_s = 1.0
    service = FakeService(delay=0.05)

    async def main() -> float:
        engine = make_engine(store, service, max_concurrent=1)
        await engine.start()
        t0 = time.monotonic()
        ids = [engine.submit("image", f"p{i}", {}, receiver.url(), V).task_id for i in range(4)]
        await until(lambda: all(store.get(i).status == TaskStatus.COMPLETED for i in ids))
        generated = time.monotonic() - t0
        assert receiver.received == []  # all four webhooks are still being answered
        await engine.wait_idle(timeout=10)
        await shutdown(engine)
        return generated

    generated = run(main())
    assert generated < 1.0, generated  # 4 x 0.05 s; a held slot would cost >= 1 s per webhook
    assert len(receiver.received) == 4


# ---------------------------------------------------------------------------------- success path
def test_success_delivers_the_exact_bytes_and_cleans_up(store, receiver) -> None:
    service = FakeService()

    async def main() -> str:
        engine = make_engine(store, service)
        await engine.start()
        rec = engine.submit("image", "a red fox", {"resolution": "64x64"}, receiver.url(), V)
        assert rec.status == TaskStatus.PENDING and store.get(rec.task_id) is not None  # durable on return
        await engine.wait_idle(timeout=5)
        stats = engine.stats()
        assert stats["engine"]["generated"] == 1 and stats["tasks"]["completed"] == 1
        assert stats["webhooks"]["delivered"] == 1
        await shutdown(engine)
        return rec.task_id

    task_id = run(main())
    [hook] = receiver.received
    assert hook.task_id == task_id and hook.task_status == "completed"
    assert hook.body == fake_png("a red fox") and hook.content_type == "image/png"
    assert hook.headers["x-meta-model"] == "fake-1"
    assert service.calls[0].parameters == {"resolution": "64x64"}
    rec = store.get(task_id)
    assert rec.status == TaskStatus.COMPLETED and rec.webhook_status == WebhookStatus.DELIVERED
    assert rec.attempts == 1 and rec.webhook_attempts == 1 and rec.result_file is None
    assert os.listdir(store.media_dir) == []
    assert receiver.bad_signatures == []


def test_save_dir_keeps_the_media_with_its_extension_and_a_sidecar(store, receiver, tmp_path) -> None:
    save = tmp_path / "saved"

    async def main() -> str:
        engine = make_engine(store, FakeService(), save_dir=save)
        await engine.start()
        rec = engine.submit("video", "a clip", {}, receiver.url(), V)
        await engine.wait_idle(timeout=5)
        await shutdown(engine)
        return rec.task_id

    task_id = run(main())
    assert (save / "video" / f"{task_id}.png").read_bytes() == fake_png("a clip")
    side = json.loads((save / "video" / f"{task_id}.json").read_text())
    assert side["prompt"] == "a clip" and side["webhook_delivered"] is True and side["signed_by"] == V
    assert os.listdir(store.media_dir) == []


def test_submitted_before_start_runs_at_start(store, receiver) -> None:
    async def main() -> None:
        engine = make_engine(store, FakeService())
        rec = engine.submit("image", "early", {}, receiver.url(), V)
        assert store.get(rec.task_id).status == TaskStatus.PENDING
        await engine.start()
        await engine.wait_idle(timeout=5)
        await shutdown(engine)

    run(main())
    assert [h.body for h in receiver.received] == [fake_png("early")]


def test_submit_rejects_unknown_modality(store) -> None:
    engine = make_engine(store, FakeService())
    with pytest.raises(ValueError, match="modality"):
        engine.submit("audio", "p", {}, "http://127.0.0.1:9/", V)


# ---------------------------------------------------------------------------------- failure paths
def _failure(receiver) -> dict:
    [hook] = receiver.received
    assert hook.task_status == "failed" and hook.content_type == "application/json"
    body = json.loads(hook.body)
    assert body["task_status"] == "failed" and body["task_id"] == hook.task_id
    assert hook.headers["error-message"] == body["error_message"][:512]
    return body


def test_timeout_fails_the_task_and_sends_a_failure_webhook(store, receiver) -> None:
    service = FakeService()

    async def main() -> str:
        engine = make_engine(store, service, task_timeout=0.2)
        await engine.start()
        rec = engine.submit("video", "hang forever", {}, receiver.url(), V)
        await engine.wait_idle(timeout=5)
        assert engine.stats()["engine"]["timed_out"] == 1
        await shutdown(engine)
        return rec.task_id

    task_id = run(main())
    body = _failure(receiver)
    assert body == {"task_id": task_id, "task_status": "failed", "error_message": "timed out after 0.2 s",
                    "modality": "video"}
    assert service.cancelled == [task_id]  # the service was really cancelled
    rec = store.get(task_id)
    assert rec.status == TaskStatus.FAILED and rec.error == "timed out after 0.2 s"


def test_a_timeout_error_raised_by_the_service_is_not_our_timeout(store, receiver) -> None:
    class Raises(FakeService):
        async def generate(self, request, checkpoint):
            raise TimeoutError("provider socket timed out")

    run(run_one(store, Raises(), receiver, task_timeout=30))
    assert _failure(receiver)["error_message"] == "internal error"


def test_service_error_message_goes_to_the_validator(store, receiver) -> None:
    async def main() -> None:
        engine = make_engine(store, FakeService())
        await engine.start()
        engine.submit("image", "fail please", {}, receiver.url(), V)
        await engine.wait_idle(timeout=5)
        await shutdown(engine)

    run(main())
    assert _failure(receiver)["error_message"] == "provider refused: fail please"


def test_unexpected_exception_is_an_internal_error_with_a_logged_traceback(store, receiver, caplog) -> None:
    async def main() -> None:
        engine = make_engine(store, FakeService())
        await engine.start()
        engine.submit("image", "crash now", {}, receiver.url(), V)
        await engine.wait_idle(timeout=5)
        await shutdown(engine)

    with caplog.at_level(logging.ERROR, logger="gas.generation.engine"):
        run(main())
    assert _failure(receiver)["error_message"] == "internal error"
    [record] = [r for r in caplog.records if "unexpected error" in r.getMessage()]
    assert record.exc_info and "boom" in str(record.exc_info[1])


@pytest.mark.parametrize(
    ("service", "message"),
    [(None, "no image generation service is configured on this miner"),
     (FakeService(unavailable="OPENAI_API_KEY is not set", name="openai"),
      "openai service is unavailable: OPENAI_API_KEY is not set"),
     (FakeService(modalities=frozenset({"video"})), "no image generation service is configured on this miner")],
)
def test_missing_or_unavailable_service_fails_clearly(store, receiver, service, message) -> None:
    run(run_one(store, service, receiver))
    assert _failure(receiver)["error_message"] == message


def test_empty_or_wrong_result_fails(store, receiver) -> None:
    class Empty(FakeService):
        async def generate(self, request, checkpoint):
            return GenerationResult(data=b"")

    run(run_one(store, Empty(), receiver))
    assert _failure(receiver)["error_message"] == "fake returned no media"


def test_a_rejected_webhook_is_recorded_not_retried(store, receiver) -> None:
    receiver.respond = lambda hook: (400, b"Duplicate content detected")

    task_id = run(run_one(store, FakeService(), receiver))
    assert len(receiver.attempts) == 1
    rec = store.get(task_id)
    assert rec.webhook_status == WebhookStatus.FAILED and rec.webhook_attempts == 1
    assert rec.webhook_error == "rejected: HTTP 400: Duplicate content detected"
    stats = store.stats()
    assert stats["webhooks"]["rejected"] == 1 and stats["webhooks"]["delivered"] == 0
    assert os.listdir(store.media_dir) == []


# ------------------------------------------------------------------------------ checkpoints/resume
def test_checkpoint_is_durable_before_the_service_continues(store, receiver) -> None:
    seen: list = []

    class Checks(FakeService):
        async def generate(self, request, checkpoint):
            await checkpoint({"job": "j-42"})
            seen.append(TaskStore(store.path).get(request.task_id).checkpoint)  # a separate connection
            return await super().generate(GenerationRequest(**{**request.__dict__, "checkpoint": {"x": 1}}),
                                          checkpoint)

    task_id = run(run_one(store, Checks(), receiver))
    assert seen == [{"job": "j-42"}]
    assert store.get(task_id).checkpoint is None  # cleared on completion


def test_stop_leaves_in_flight_tasks_resumable_with_their_checkpoint(store, receiver) -> None:
    slow = FakeService(delay=30)

    async def main() -> list[str]:
        engine = make_engine(store, slow, max_concurrent=2)
        await engine.start()
        ids = [engine.submit("image", f"p{i}", {}, receiver.url(), V).task_id for i in range(3)]
        await until(lambda: len(slow.calls) >= 2)
        await asyncio.sleep(0.05)
        await shutdown(engine)
        return ids

    ids = run(main())
    assert sorted(slow.cancelled) == sorted(ids[:2])
    for task_id in ids[:2]:
        rec = store.get(task_id)
        assert rec.status == TaskStatus.PENDING and rec.attempts == 0
        assert rec.checkpoint == {"job": f"job-{task_id}", "step": 1}
    assert store.get(ids[2]).status == TaskStatus.PENDING and receiver.received == []

    fast = FakeService()

    async def again() -> None:
        engine = make_engine(store, fast)
        await engine.start()
        await engine.wait_idle(timeout=5)
        await shutdown(engine)

    run(again())
    assert {c.task_id: c.checkpoint for c in fast.calls}[ids[0]] == {"job": f"job-{ids[0]}", "step": 1}
    assert sorted(receiver.by_task()) == sorted(ids)
    assert all(h.headers["x-meta-resumed"] == "True" for h in receiver.received if h.task_id in ids[:2])


def test_start_resumes_every_kind_of_unfinished_task(store, receiver) -> None:
    """States a crash can leave behind, built directly in the store, then one engine start."""
    url = receiver.url()
    pending = store.create("image", "pending one", {}, url, V).task_id
    with_cp = store.create("image", "with checkpoint", {}, url, V).task_id
    store.mark_processing(with_cp, "fake")
    store.set_checkpoint(with_cp, {"job": "remote-7"})
    without_cp = store.create("image", "nocp without checkpoint", {}, url, V).task_id
    store.mark_processing(without_cp, "fake")
    poison = store.create("image", "poison", {}, url, V).task_id
    for _ in range(3):
        store.mark_processing(poison, "fake")
    done = store.create("image", "done before", {}, url, V).task_id
    store.save_result(done, fake_png("done before"), "image/png", {"model": "fake-1"})
    failed = store.create("image", "failed before", {}, url, V).task_id
    store.mark_failed(failed, "provider refused: earlier")
    service = FakeService()

    async def main() -> TaskEngine:
        engine = make_engine(store, service)
        await engine.start()
        await engine.wait_idle(timeout=5)
        await shutdown(engine)
        return engine

    engine = run(main())
    hooks = receiver.by_task()
    assert sorted(hooks) == sorted([pending, with_cp, without_cp, poison, done, failed])
    assert all(len(v) == 1 for v in hooks.values())
    calls = {c.task_id: c.checkpoint for c in service.calls}
    assert calls == {pending: None, with_cp: {"job": "remote-7"}, without_cp: None}
    assert hooks[with_cp][0].headers["x-meta-job-id"] == "remote-7"
    assert hooks[done][0].body == fake_png("done before")
    assert json.loads(hooks[failed][0].body)["error_message"] == "provider refused: earlier"
    assert json.loads(hooks[poison][0].body)["error_message"].startswith("gave up after 3 interrupted attempts")
    assert store.get(without_cp).attempts == 2
    assert engine.stats()["engine"]["resumed"] == 3 and engine.stats()["engine"]["redelivered"] == 2


def test_lost_media_is_reported_as_a_failure(store, receiver) -> None:
    done = store.create("image", "gone", {}, receiver.url(), V).task_id
    store.save_result(done, fake_png("gone"), "image/png")
    (store.media_dir / f"{done}.png").unlink()

    async def main() -> None:
        engine = make_engine(store, FakeService())
        await engine.start()
        await engine.wait_idle(timeout=5)
        await shutdown(engine)

    run(main())
    assert _failure(receiver)["error_message"] == "the generated media was lost before delivery"


# ------------------------------------------------------------------------------------- cleanup
def test_cleanup_by_age_with_an_injected_clock(tmp_path, receiver) -> None:
    clock = FakeClock(start=1_700_000_000.0)
    store = TaskStore(tmp_path / "tasks.db", clock=clock)

    async def main() -> tuple[int, int]:
        engine = make_engine(store, FakeService(), max_task_age_s=3600, cleanup_interval=3600)
        await engine.start()
        old = engine.submit("image", "old", {}, receiver.url(), V)
        await engine.wait_idle(timeout=5)
        clock.now += 1800
        young = engine.submit("image", "young", {}, receiver.url(), V)
        await engine.wait_idle(timeout=5)
        clock.now += 1801  # old: 3601 s, young: 1801 s
        removed = await engine.cleanup_once()
        assert store.get(old.task_id) is None and store.get(young.task_id) is not None
        clock.now += 3600
        removed2 = await engine.cleanup_once()
        await shutdown(engine)
        return removed, removed2

    assert run(main()) == (1, 1)
    assert store.count() == 0
    store.close()


# ------------------------------------------------------------------------------------- throughput
def test_submit_throughput(store) -> None:
    """submit = durable insert + enqueue; it runs on the server's event loop for every request."""

    class Idle(FakeService):
        async def generate(self, request, checkpoint):
            await asyncio.sleep(3600)

    async def main() -> float:
        engine = make_engine(store, Idle(), max_concurrent=1)
        await engine.start()
        n = 3000
        t0 = time.perf_counter()
        for i in range(n):
            engine.submit("image", f"prompt {i}", {"resolution": "1024x1024"}, "http://127.0.0.1:9/cb", V)
        rate = n / (time.perf_counter() - t0)
        await shutdown(engine)
        return rate

    rate = run(main())
    assert rate > 2000, f"{rate:.0f} submits/s"


# ---------------------------------------------------------------------------------------- kill -9
def _child(db: Path, receiver: WebhookReceiver, *extra: str, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests" / "support")])}
    return subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "support" / "engine_crash_child.py"), "--db", str(db),
         "--webhook", receiver.url("/hook"), "--validator", V, *extra],
        stdout=subprocess.PIPE, stderr=log_path.open("ab"), text=True, cwd=REPO, env=env,
    )


def _settled(db: Path) -> set[str]:
    """Tasks whose delivery is fully recorded: webhook delivered and media file dropped."""
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT task_id FROM tasks WHERE webhook_status = 'delivered' AND result_file IS NULL"
        ).fetchall()
    finally:
        conn.close()
    return {r[0] for r in rows}


def test_kill_9_while_tasks_are_pending_and_processing_then_resume(tmp_path, receiver) -> None:
    """Every task's webhook arrives exactly once with the right bytes after a kill -9 and a restart.

    The kill lands while 2 tasks are processing (one with a checkpoint, one without), 3 are pending,
    one delivered and one completed task's webhook is in retry backoff (the receiver answered 503).
    No delivery is in flight at that moment (the test waits until the store has recorded the one
    webhook the receiver accepted and dropped its file), so exactly-once is what must be observed.
    In general delivery is at-least-once: a webhook in flight at the kill (received, but not yet
    recorded) is sent again after the restart, with the same bytes from the outbox file.
    """
    db = tmp_path / "gen" / "tasks.db"
    log_path = tmp_path / "child.log"
    phase = {"n": 1}
    receiver.respond = lambda hook: (503, b"busy") if phase["n"] == 1 and "flaky" in hook.path else 200
    prompts = ["flaky", "p1", "nocp-2", "p3", "fail-4", "nocp-5", "p6"]
    child = _child(db, receiver, "--prompts", json.dumps(prompts), "--delay", "0.5", log_path=log_path)
    try:
        ids: dict[str, str] = {}
        for line in child.stdout:
            if line.strip() == "submitted":
                break
            item = json.loads(line)
            ids[item["prompt"]] = item["task_id"]
        assert len(ids) == len(prompts), log_path.read_text()
        deadline = time.monotonic() + 15
        while True:
            assert time.monotonic() < deadline, f"never reached the kill point: {read_stats(db)}"
            stats = read_stats(db)
            tasks = stats["tasks"]
            refused = [h for h in receiver.attempts if "flaky" in h.path]
            if (tasks["processing"] == 2 and tasks["pending"] == 3 and tasks["completed"] == 2
                    and len(receiver.received) == 1 and refused and _settled(db) == {ids["p1"]}):
                break
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=5)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    before = read_stats(db)
    assert before["webhooks"]["pending"] == 1  # "flaky", waiting for its retry

    phase["n"] = 2
    second = _child(db, receiver, "--delay", "0.1", log_path=log_path)
    out, _ = second.communicate(timeout=30)
    assert second.returncode == 0, log_path.read_text()
    calls = json.loads(out.strip().splitlines()[-1])["calls"]

    hooks = receiver.by_task()
    assert sorted(hooks) == sorted(ids.values())
    assert {p: len(hooks[t]) for p, t in ids.items()} == dict.fromkeys(prompts, 1)  # exactly once each
    for prompt, task_id in ids.items():
        [hook] = hooks[task_id]
        if prompt.startswith("fail"):
            assert hook.task_status == "failed"
            assert json.loads(hook.body)["error_message"] == f"provider refused: {prompt}"
        else:
            assert hook.task_status == "completed" and hook.content_type == "image/png"
            assert hook.body == fake_png(prompt)
    # the processing task with a checkpoint resumed from it; the one without was re-run from scratch
    resumed = {c["prompt"]: c["checkpoint"] for c in calls}
    assert resumed["p3"] == {"job": f"job-{ids['p3']}", "step": 1}
    assert resumed["nocp-2"] is None
    assert "flaky" not in resumed and "p1" not in resumed  # finished before the kill: not re-generated
    assert hooks[ids["p3"]][0].headers["x-meta-resumed"] == "True"
    assert receiver.bad_signatures == []
    after = read_stats(db)
    assert after["tasks"] == {"total": 7, "pending": 0, "processing": 0, "completed": 6, "failed": 1}
    assert after["webhooks"]["pending"] == 0 and after["webhooks"]["delivered"] == 7
    with TaskStore(db) as s:
        assert s.get(ids["p3"]).attempts == 2 and s.get(ids["p1"]).attempts == 1
        assert os.listdir(s.media_dir) == []


def test_kill_9_during_a_delivery_redelivers_identical_bytes(tmp_path, receiver) -> None:
    """At-least-once: the validator got the webhook but the miner died before recording it, so the
    restarted miner sends it again, byte for byte the same (from the durable outbox file)."""
    db = tmp_path / "gen" / "tasks.db"
    log_path = tmp_path / "child.log"
    entered, release = threading.Event(), threading.Event()

    def respond(hook) -> int:
        if not release.is_set():
            entered.set()
            release.wait(10)  # hold the answer until the miner is dead
        return 200

    receiver.respond = respond
    child = _child(db, receiver, "--prompts", json.dumps(["held"]), "--delay", "0.05", log_path=log_path)
    try:
        task_id = json.loads(child.stdout.readline())["task_id"]
        assert entered.wait(15), log_path.read_text()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=5)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        release.set()
    receiver.wait_for(1)  # the held request is accepted now, after the miner died
    second = _child(db, receiver, log_path=log_path)
    _, _ = second.communicate(timeout=30)
    assert second.returncode == 0, log_path.read_text()
    copies = receiver.by_task()[task_id]
    assert len(copies) == 2
    assert copies[0].body == copies[1].body == fake_png("held")
    assert copies[0].uuid != copies[1].uuid  # freshly signed, so the validator's replay cache accepts it
    assert copies[0].headers["x-meta-model"] == copies[1].headers["x-meta-model"]


def test_from_settings_wires_the_miner_settings(tmp_path) -> None:
    from gas.config import GeneratorSettings, load_settings

    settings = load_settings(GeneratorSettings, env_file=False, overrides={
        "cache_dir": tmp_path / "cache", "max_concurrent_tasks": 7, "task_timeout": 12.5,
        "max_task_age_hours": 2, "cleanup_interval": 60, "webhook_max_retries": 5,
        "webhook_retry_delay": 0.5, "webhook_timeout": 9, "save_media": True})
    engine = TaskEngine.from_settings(settings, FakeServices(FakeService()), MINER)

    async def close() -> None:
        await engine.aclose()

    try:
        assert engine.store.path == tmp_path / "cache" / "generator" / "tasks.db"
        assert (engine.max_concurrent, engine.task_timeout, engine.max_task_age_s, engine.cleanup_interval) == (
            7, 12.5, 7200.0, 60)
        assert engine.save_dir == tmp_path / "cache" / "generator" / "media"
        sender = engine.webhooks
        assert (sender.max_retries, sender.retry_delay, sender.timeout, sender.stats) == (5, 0.5, 9, engine.store)
    finally:
        run(close())
