"""WebhookSender against a real local HTTP receiver that verifies Epistula like a validator."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass

import pytest
from bittensor_core import Keypair
from media_fixtures import make_clip, make_jpeg, make_png
from webhook_receiver import WebhookReceiver

from gas.generation.task_store import TaskStore
from gas.protocol.webhooks import (
    InvalidWebhookURL,
    WebhookSender,
    endpoint_of,
    header_safe,
    meta_headers,
    validate_webhook_url,
)

MINER = Keypair.create_from_uri("//Bob")
VALIDATOR = Keypair.create_from_uri("//Alice")


@dataclass
class Task:
    task_id: str
    webhook_url: str
    modality: str = "image"
    signed_by: str | None = VALIDATOR.ss58_address


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture()
def store(tmp_path):
    s = TaskStore(tmp_path / "tasks.db")
    yield s
    s.close()


@pytest.fixture()
def receiver():
    with WebhookReceiver(VALIDATOR) as r:
        yield r


def send(coro):
    return asyncio.run(coro)


async def _with_sender(fn, **kwargs):
    sender = WebhookSender(MINER, **kwargs)
    try:
        return await fn(sender)
    finally:
        await sender.aclose()


# ---------------------------------------------------------------------------------- success / failure
@pytest.mark.parametrize(
    ("modality", "make", "ctype"),
    [("image", lambda: make_png(1, (64, 64)), "image/png"), ("image", lambda: make_jpeg(2, (64, 64)), "image/jpeg"),
     ("video", lambda: make_clip(n_frames=4, size=(64, 64), seed=3), "video/mp4")],
)
def test_success_webhook_carries_raw_bytes_signed_for_the_validator(receiver, modality, make, ctype) -> None:
    data = make()
    task = Task("t-1", receiver.url(), modality=modality)
    meta = {"model": "sd-tiny", "job_id": "j 1\nx", "seed": 7, "nested": {"a": 1}, "none": None}
    result = send(_with_sender(lambda s: s.send_success(task, data, meta)))
    assert result.ok and result.attempts == 1 and result.status_code == 200 and result.category == "delivered"
    assert result.outcome == "delivered"
    [hook] = receiver.received
    assert hook.body == data  # byte for byte
    assert hook.content_type == ctype
    assert hook.task_id == "t-1" and hook.task_status == "completed"
    assert hook.signer == MINER.ss58_address
    assert hook.headers["epistula-signed-for"] == VALIDATOR.ss58_address
    assert hook.headers["x-meta-model"] == "sd-tiny"
    assert hook.headers["x-meta-job-id"] == "j 1 x"  # sanitised to one line
    assert hook.headers["x-meta-seed"] == "7"
    assert "x-meta-nested" not in hook.headers and "x-meta-none" not in hook.headers
    assert receiver.bad_signatures == []


def test_unknown_bytes_fall_back_to_the_modality_type(receiver) -> None:
    send(_with_sender(lambda s: s.send_success(Task("t", receiver.url(), modality="video"), b"\x00\x01junk")))
    assert receiver.received[0].content_type == "video/mp4"


def test_failure_webhook_is_json_with_a_one_line_ascii_header(receiver) -> None:
    message = "provider said: no\r\nX-Injected: yes \u2603 " + "x" * 2000
    result = send(_with_sender(lambda s: s.send_failure(Task("t-2", receiver.url(), modality="video"), message)))
    assert result.ok
    [hook] = receiver.received
    assert hook.content_type == "application/json"
    assert hook.task_status == "failed" and hook.task_id == "t-2"
    body = json.loads(hook.body)
    assert body == {"task_id": "t-2", "task_status": "failed", "error_message": message, "modality": "video"}
    header = hook.headers["error-message"]
    assert header.startswith("provider said: no X-Injected: yes ")
    assert len(header) <= 512 and header.endswith("...") and header.isascii()
    assert "x-injected" not in hook.headers


def test_signature_is_fresh_for_every_attempt(receiver) -> None:
    answers = iter([503, 503, 200])
    receiver.respond = lambda hook: next(answers)
    sleeps = Sleeps()
    result = send(_with_sender(lambda s: s.send_success(Task("t", receiver.url()), b"\x89PNG\r\n\x1a\nxx"),
                               sleep=sleeps, retry_delay=0.5))
    assert result.ok and result.attempts == 3
    assert len({h.uuid for h in receiver.attempts}) == 3  # the verifier's replay cache would refuse reuse
    assert sleeps.calls == [0.5, 1.0]


# ---------------------------------------------------------------------------------------- retries
def test_5xx_is_retried_with_exponential_backoff_then_given_up(receiver, store) -> None:
    receiver.respond = lambda hook: (503, b"busy")
    sleeps = Sleeps()
    result = send(_with_sender(lambda s: s.send_success(Task("t", receiver.url()), b"data"),
                               sleep=sleeps, max_retries=3, retry_delay=2.0, stats=store))
    assert not result.ok and not result.rejected and result.outcome == "failed"
    assert result.attempts == 4 and result.status_code == 503 and result.category == "http_5xx"
    assert "HTTP 503: busy" in result.error
    assert sleeps.calls == [2.0, 4.0, 8.0]
    assert len(receiver.attempts) == 4
    v = store.stats()["validators"][VALIDATOR.ss58_address]
    assert v["attempts"]["http_5xx"] == 4 and v["failed"] == 1 and v["retries"] == 3
    assert v["endpoint"] == f"127.0.0.1:{receiver.port}" and v["last_category"] == "http_5xx"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_4xx_is_a_rejection_and_not_retried(receiver, store, status) -> None:
    receiver.respond = lambda hook: (status, b"C2PA verification failed: untrusted")
    sleeps = Sleeps()
    result = send(_with_sender(lambda s: s.send_success(Task("t", receiver.url()), b"data"),
                               sleep=sleeps, stats=store))
    assert not result.ok and result.rejected and result.outcome == "rejected"
    assert result.attempts == 1 and result.status_code == status and result.category == "http_4xx"
    assert "C2PA verification failed" in result.error
    assert sleeps.calls == []
    stats = store.stats()
    assert stats["webhooks"]["rejected"] == 1 and stats["webhooks"]["delivered"] == 0


@pytest.mark.parametrize("status", [408, 429])
def test_408_and_429_are_retried(receiver, status) -> None:
    answers = iter([status, 200])
    receiver.respond = lambda hook: next(answers)
    result = send(_with_sender(lambda s: s.send_success(Task("t", receiver.url()), b"data"), sleep=Sleeps()))
    assert result.ok and result.attempts == 2


def test_reference_task_not_found_answer_is_not_counted_as_delivered(receiver, store) -> None:
    receiver.respond = lambda hook: (200, b'"Task not found in current session"')
    result = send(_with_sender(lambda s: s.send_success(Task("t", receiver.url()), b"data"),
                               sleep=Sleeps(), stats=store))
    assert not result.ok and result.rejected and result.category == "unknown_task" and result.attempts == 1
    assert store.stats()["webhooks"]["delivered"] == 0


def test_timeout_is_retried_and_categorised(receiver) -> None:
    receiver.delay_s = 0.5
    result = send(_with_sender(lambda s: s.send_success(Task("t", receiver.url()), b"data"),
                               sleep=Sleeps(), timeout=0.1, max_retries=1))
    assert not result.ok and result.category == "timeout" and result.attempts == 2
    assert result.status_code is None and "0.1 s" in result.error


def test_connection_refused_is_retried_and_categorised(store) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    result = send(_with_sender(lambda s: s.send_failure(Task("t", f"http://127.0.0.1:{port}/cb"), "x"),
                               sleep=sleeps, max_retries=2, stats=store))
    assert not result.ok and not result.rejected and result.category == "connection_error"
    assert result.attempts == 3 and sleeps.calls == [2.0, 4.0]
    v = store.stats()["validators"][VALIDATOR.ss58_address]
    assert v["attempts"]["connection_error"] == 3 and v["failed"] == 1


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/cb", "file:///etc/passwd", "http://user:pw@127.0.0.1:9/cb", "http:///cb", "",
     "127.0.0.1:9000/cb", "http://127.0.0.1:0/cb", "http://127.0.0.1:99999/cb", "http://a b/"],
)
def test_invalid_webhook_urls_fail_clearly_without_a_request(url, store) -> None:
    with pytest.raises(InvalidWebhookURL):
        validate_webhook_url(url)
    result = send(_with_sender(lambda s: s.send_success(Task("t", url), b"data"), stats=store))
    assert not result.ok and result.attempts == 0 and result.category == "invalid_url" and result.error
    assert store.stats()["webhooks"]["failed"] == 1


def test_valid_urls_pass() -> None:
    for url in ("http://1.2.3.4:8092/generative_callback", "https://validator.example/cb?x=1", "http://[::1]:80/"):
        assert validate_webhook_url(url) == url
    assert endpoint_of("https://validator.example/cb") == "validator.example:443"
    assert endpoint_of("http://[::1]:81/") == "::1:81"


def test_stats_are_kept_per_validator(receiver, store) -> None:
    other = Keypair.create_from_uri("//Charlie")

    async def go(sender: WebhookSender) -> None:
        await sender.send_success(Task("a", receiver.url()), b"data")
        await sender.send_success(Task("b", receiver.url()), b"data")
        await sender.send_success(Task("c", receiver.url(), signed_by=other.ss58_address), b"data")

    send(_with_sender(go, stats=store))
    validators = store.stats()["validators"]
    assert validators[VALIDATOR.ss58_address]["delivered"] == 2
    # Charlie's request was signed for Charlie, so the Alice-keyed receiver refuses it (401, a rejection)
    assert validators[other.ss58_address]["rejected"] == 1
    assert validators[other.ss58_address]["attempts"]["http_4xx"] == 1
    assert len(receiver.bad_signatures) == 1 and "WrongRecipient" in receiver.bad_signatures[0]


def test_stats_errors_never_break_delivery(receiver) -> None:
    class Broken:
        def record_webhook_attempt(self, *a) -> None:
            raise RuntimeError("disk full")

        def record_webhook_outcome(self, *a) -> None:
            raise RuntimeError("disk full")

    result = send(_with_sender(lambda s: s.send_success(Task("t", receiver.url()), b"data"), stats=Broken()))
    assert result.ok


def test_helpers() -> None:
    assert header_safe("a\r\n\tb\u00e9c", 100) == "a b c"
    assert header_safe("x" * 20, 10) == "xxxxxxx..."
    assert meta_headers({"Job_ID": "1", "bad key!": True, 3: 4.5}) == {
        "x-meta-job-id": "1", "x-meta-badkey": "True", "x-meta-3": "4.5"}


def test_constructor_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        WebhookSender(MINER, max_retries=-1)
    with pytest.raises(ValueError):
        WebhookSender(MINER, timeout=0)


def test_deliveries_in_flight_are_bounded_per_validator_endpoint():
    # A burst of finished tasks must not open one connection each to the same validator; another
    # validator's deliveries are not held up by the first one's queue.
    import httpx

    in_flight: dict[str, int] = {}
    peak: dict[str, int] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        in_flight[host] = in_flight.get(host, 0) + 1
        peak[host] = max(peak.get(host, 0), in_flight[host])
        await asyncio.sleep(0.02)
        in_flight[host] -= 1
        return httpx.Response(200, text="ok")

    async def main() -> list:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        sender = WebhookSender(MINER, client=client, per_endpoint=3)
        jobs = [sender.send_success(Task(f"a{i}", "http://10.0.0.1:10525/cb"), make_png(1)) for i in range(12)]
        jobs += [sender.send_success(Task(f"b{i}", "http://10.0.0.2:10525/cb"), make_png(1)) for i in range(2)]
        out = await asyncio.gather(*jobs)
        await client.aclose()
        return out

    results = send(main())
    assert all(r.ok for r in results)
    assert peak == {"10.0.0.1": 3, "10.0.0.2": 2}
    with pytest.raises(ValueError, match="per_endpoint"):
        WebhookSender(MINER, per_endpoint=0)
