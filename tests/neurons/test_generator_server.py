"""The miner's HTTP API: every endpoint and every rejection, with real Epistula signatures.

The seam is the task engine: a small in-memory engine with the TaskEngine interface (submit/get/
stats) returning real TaskRecords. The full stack (real engine, store, webhooks) is exercised in
test_generator_miner.py and tests/e2e/test_generator_e2e.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from typing import Any

import pytest
from bittensor_core import Keypair
from starlette.testclient import TestClient

from gas.chain.base import Metagraph, Neuron
from gas.generation.task_store import TaskRecord, TaskStatus
from gas.protocol.epistula import EpistulaVerifier, metagraph_authorizer, sign_request
from neurons.generator.server import build_verifier, create_app

MINER = Keypair.create_from_uri("//gen-miner")
VALI = Keypair.create_from_uri("//gen-vali")  # validator permit
STAKER = Keypair.create_from_uri("//gen-staker")  # no permit, but enough stake
NOBODY = Keypair.create_from_uri("//gen-nobody")  # registered, no permit, little stake
EVE = Keypair.create_from_uri("//gen-eve")  # not registered
WEBHOOK = "http://127.0.0.1:10525/generative_callback"
MIN_STAKE = 1000.0


def _metagraph() -> Metagraph:
    neurons = (
        Neuron(uid=0, hotkey=VALI.ss58_address, coldkey="c0", stake=5000.0, validator_permit=True),
        Neuron(uid=1, hotkey=MINER.ss58_address, coldkey="c1", axon_ip="127.0.0.1", axon_port=8093),
        Neuron(uid=2, hotkey=STAKER.ss58_address, coldkey="c2", stake=MIN_STAKE),
        Neuron(uid=3, hotkey=NOBODY.ss58_address, coldkey="c3", stake=1.0),
    )
    return Metagraph(netuid=34, block=100, neurons=neurons)


class FakeEngine:
    """The TaskEngine interface over a dict (real TaskRecords, so /status shows the real shape)."""

    def __init__(self) -> None:
        self.tasks: dict[str, TaskRecord] = {}
        self.submitted: list[dict[str, Any]] = []
        self.explode = False

    def submit(self, modality: str, prompt: str, parameters: dict, webhook_url: str, signed_by: str) -> TaskRecord:
        if self.explode:
            raise RuntimeError("database is on fire")
        self.submitted.append(dict(modality=modality, prompt=prompt, parameters=parameters,
                                   webhook_url=webhook_url, signed_by=signed_by))
        rec = TaskRecord(task_id=str(uuid.uuid4()), modality=modality, prompt=prompt, parameters=dict(parameters),
                         webhook_url=webhook_url, signed_by=signed_by, status=TaskStatus.PENDING,
                         created_at=time.time())
        self.tasks[rec.task_id] = rec
        return rec

    def get(self, task_id: str) -> TaskRecord | None:
        return self.tasks.get(task_id)

    def stats(self) -> dict[str, Any]:
        counts = {s.value: sum(1 for t in self.tasks.values() if t.status == s) for s in TaskStatus}
        return {"tasks": {"total": len(self.tasks), **counts}, "webhooks": {}, "validators": {}}


class FakeService:
    def __init__(self, name: str, modalities: set[str], reason: str | None = None) -> None:
        self.name, self.modalities, self.reason = name, frozenset(modalities), reason

    def unavailable_reason(self) -> str | None:
        return self.reason

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "available": self.reason is None, "reason": self.reason,
                "supported_tasks": [f"text_to_{m}" for m in sorted(self.modalities)]}


class FakeServices:
    def __init__(self, image: FakeService | None, video: FakeService | None) -> None:
        self.by = {"image": image, "video": video}

    def for_modality(self, modality: str) -> FakeService | None:
        return self.by.get(modality)

    def all(self) -> list[FakeService]:
        out: list[FakeService] = []
        for s in self.by.values():
            if s is not None and all(s is not o for o in out):
                out.append(s)
        return out

    def info(self) -> list[dict[str, Any]]:
        return [s.info() for s in self.all()]


class Settings:
    """The GeneratorSettings fields build_verifier reads."""

    epistula_max_age_s = 30.0
    epistula_max_future_s = 5.0
    max_request_bytes = 4096
    require_validator_permit = True
    min_validator_stake = MIN_STAKE


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def services() -> FakeServices:
    shared = FakeService("diffusers", {"image", "video"})
    return FakeServices(shared, shared)  # one instance for both modalities, as the registry does


@pytest.fixture
def client(engine: FakeEngine, services: FakeServices) -> TestClient:
    verifier = build_verifier(Settings(), hotkey=MINER.ss58_address, get_metagraph=_metagraph)
    app = create_app(engine=engine, services=services, verifier=verifier, hotkey=MINER.ss58_address, uid=1,
                     config_info={"max_concurrent_tasks": 5})
    return TestClient(app, raise_server_exceptions=False)


def body_of(prompt: Any = "a red fox in the snow", **extra: Any) -> bytes:
    return json.dumps({"prompt": prompt, "parameters": {"resolution": "1K"}, **extra}).encode()


def signed(kp: Keypair, body: bytes = b"", *, to: str | None = None, webhook: str | None = WEBHOOK,
           **kw: Any) -> dict[str, str]:
    headers = {"Content-Type": "application/json",
               **sign_request(body, kp, signed_for=to or MINER.ss58_address, **kw)}
    if webhook is not None:
        headers["X-Webhook-URL"] = webhook
    return headers


def post(client: TestClient, path: str, body: bytes, headers: dict[str, str]):
    return client.post(path, content=body, headers=headers)


def assert_error(res, status: int, code: str, text: str = "") -> dict[str, Any]:
    assert res.status_code == status, res.text
    assert res.headers["content-type"].startswith("application/json")
    data = res.json()
    assert set(data) == {"error", "timestamp", "code"}
    assert data["code"] == code, data
    assert isinstance(data["timestamp"], float)
    assert text.lower() in data["error"].lower(), data
    assert "Traceback" not in res.text
    return data


# --------------------------------------------------------------------------------------------
# accepted requests
# --------------------------------------------------------------------------------------------
def test_gen_image_accepted(client: TestClient, engine: FakeEngine) -> None:
    body = body_of()
    res = post(client, "/gen_image", body, signed(VALI, body))
    assert res.status_code == 201, res.text
    data = res.json()
    assert set(data) == {"task_id", "status", "modality", "prompt", "webhook_url", "created_at"}
    assert data["status"] == "submitted" and data["modality"] == "image"
    assert data["prompt"] == "a red fox in the snow" and data["webhook_url"] == WEBHOOK
    assert abs(data["created_at"] - time.time()) < 5
    (sub,) = engine.submitted
    assert sub == {"modality": "image", "prompt": "a red fox in the snow", "parameters": {"resolution": "1K"},
                   "webhook_url": WEBHOOK, "signed_by": VALI.ss58_address}
    assert data["task_id"] in engine.tasks


def test_gen_video_and_long_prompt_echo(client: TestClient, engine: FakeEngine) -> None:
    prompt = "w" * 150
    body = body_of(prompt, unknown_field="ignored")  # extra fields are ignored, like the reference
    res = post(client, "/gen_video", body, signed(VALI, body))
    assert res.status_code == 201, res.text
    assert res.json()["modality"] == "video"
    assert res.json()["prompt"] == "w" * 100 + "..."
    assert engine.submitted[0]["prompt"] == prompt  # the task keeps the whole prompt


def test_stake_without_permit_is_enough(client: TestClient) -> None:
    body = body_of()
    assert post(client, "/gen_image", body, signed(STAKER, body)).status_code == 201


def test_parameters_optional_and_null(client: TestClient, engine: FakeEngine) -> None:
    for payload in ({"prompt": "p"}, {"prompt": "p", "parameters": None}):
        body = json.dumps(payload).encode()
        assert post(client, "/gen_image", body, signed(VALI, body)).status_code == 201
    assert [s["parameters"] for s in engine.submitted] == [{}, {}]


# --------------------------------------------------------------------------------------------
# authentication and authorisation
# --------------------------------------------------------------------------------------------
def test_unsigned_is_400(client: TestClient, engine: FakeEngine) -> None:
    body = body_of()
    res = post(client, "/gen_image", body, {"X-Webhook-URL": WEBHOOK, "Content-Type": "application/json"})
    assert_error(res, 400, "missing_header", "Epistula-")
    assert engine.submitted == []


def test_tampered_body_is_401(client: TestClient, engine: FakeEngine) -> None:
    body = body_of()
    headers = signed(VALI, body)
    res = post(client, "/gen_image", body_of("something else"), headers)
    assert_error(res, 401, "bad_signature", "signature does not verify")
    assert engine.submitted == []


def test_replay_is_401(client: TestClient, engine: FakeEngine) -> None:
    body = body_of()
    headers = signed(VALI, body)
    assert post(client, "/gen_image", body, headers).status_code == 201
    assert_error(post(client, "/gen_image", body, headers), 401, "replayed_request", "already used")
    assert len(engine.submitted) == 1


def test_unregistered_signer_is_403(client: TestClient, engine: FakeEngine) -> None:
    body = body_of()
    assert_error(post(client, "/gen_image", body, signed(EVE, body)), 403, "not_authorized", "not registered")
    assert engine.submitted == []


def test_signer_without_permit_or_stake_is_403(client: TestClient) -> None:
    body = body_of()
    data = assert_error(post(client, "/gen_image", body, signed(NOBODY, body)), 403, "not_authorized")
    assert "validator permit" in data["error"] and "below the minimum" in data["error"]


def test_signed_for_someone_else_is_401(client: TestClient) -> None:
    body = body_of()
    res = post(client, "/gen_image", body, signed(VALI, body, to=EVE.ss58_address))
    assert_error(res, 401, "wrong_recipient", "not for this hotkey")


def test_stale_request_is_401(client: TestClient) -> None:
    body = body_of()
    res = post(client, "/gen_image", body, signed(VALI, body, now_ms=int(time.time() * 1000) - 120_000))
    assert_error(res, 401, "stale_request", "ms old")


def test_replay_cache_full_is_503(engine: FakeEngine, services: FakeServices) -> None:
    verifier = EpistulaVerifier(self_hotkey=MINER.ss58_address, max_body_bytes=4096, max_nonces=1,
                                authorize=metagraph_authorizer(_metagraph))
    client = TestClient(create_app(engine=engine, services=services, verifier=verifier, hotkey=MINER.ss58_address))
    body = body_of()
    assert post(client, "/gen_image", body, signed(VALI, body)).status_code == 201
    assert_error(post(client, "/gen_image", body, signed(VALI, body)), 503, "replay_cache_full", "full")


# --------------------------------------------------------------------------------------------
# body and header validation
# --------------------------------------------------------------------------------------------
def test_body_too_large_by_content_length_is_413(client: TestClient, engine: FakeEngine) -> None:
    body = body_of("x" * 5000)  # the cap is 4096 bytes
    assert_error(post(client, "/gen_image", body, signed(VALI, body)), 413, "body_too_large", "exceeds the limit")
    assert engine.submitted == []


def test_body_too_large_without_content_length_is_413(client: TestClient) -> None:
    def chunks():  # chunked transfer: no Content-Length, the cap must stop the read
        for _ in range(10):
            yield b"x" * 1000

    res = client.post("/gen_image", content=chunks(), headers=signed(VALI, b"x" * 10_000))
    assert_error(res, 413, "body_too_large", "more than")


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"parameters": {}}).encode(), "prompt: Field required"),
        (json.dumps({"prompt": ""}).encode(), "prompt"),
        (json.dumps({"prompt": "   "}).encode(), "blank"),
        (json.dumps({"prompt": "x" * 4001}).encode(), "at most 4000"),
        (json.dumps({"prompt": 42}).encode(), "prompt"),
        (json.dumps({"prompt": "p", "parameters": [1]}).encode(), "parameters"),
    ],
)
def test_bad_body_is_400(client: TestClient, engine: FakeEngine, body: bytes, text: str) -> None:
    assert len(body) <= 4096  # under the cap: the body itself is what is wrong
    assert_error(post(client, "/gen_image", body, signed(VALI, body)), 400, "invalid_body", text)
    assert engine.submitted == []


@pytest.mark.parametrize(
    ("webhook", "text"),
    [
        (None, "missing header X-Webhook-URL"),
        ("", "missing header"),
        ("ftp://127.0.0.1/cb", "http:// or https://"),
        ("/generative_callback", "http:// or https://"),
        ("http:///nohost", "no host"),
        ("http://user:pw@127.0.0.1/cb", "credentials"),
        ("http://127.0.0.1:99999/cb", "not a valid URL"),
    ],
)
def test_bad_webhook_header_is_400(client: TestClient, engine: FakeEngine, webhook: str | None, text: str) -> None:
    body = body_of()
    assert_error(post(client, "/gen_image", body, signed(VALI, body, webhook=webhook)), 400,
                 "invalid_webhook_url", text)
    assert engine.submitted == []


def test_no_service_for_modality_is_503(client: TestClient, services: FakeServices, engine: FakeEngine) -> None:
    services.by["video"] = None
    body = body_of()
    assert_error(post(client, "/gen_video", body, signed(VALI, body)), 503, "no_service", "no video generation")
    services.by["image"].reason = "run gascli generator init-c2pa"
    assert_error(post(client, "/gen_image", body_of(), signed(VALI, body_of())), 503, "service_unavailable",
                 "init-c2pa")
    assert engine.submitted == []


def test_internal_error_is_json_500(client: TestClient, engine: FakeEngine) -> None:
    engine.explode = True
    body = body_of()
    data = assert_error(post(client, "/gen_image", body, signed(VALI, body)), 500, "internal_error")
    assert "on fire" not in data["error"]  # internals stay in the log


# --------------------------------------------------------------------------------------------
# the GET endpoints
# --------------------------------------------------------------------------------------------
def test_miner_info(client: TestClient, engine: FakeEngine) -> None:
    body = body_of()
    post(client, "/gen_image", body, signed(VALI, body))
    res = client.get("/miner_info", headers=signed(VALI, webhook=None))
    assert res.status_code == 200, res.text
    info = res.json()
    assert info["miner_type"] == "GENERATOR" and info["uid"] == 1 and info["hotkey"] == MINER.ss58_address
    assert info["task_stats"] == {"total": 1, "pending": 1, "processing": 0, "completed": 0, "failed": 0}
    assert [s["name"] for s in info["services"]] == ["diffusers"] and info["services"][0]["available"] is True
    assert info["config"] == {"max_concurrent_tasks": 5}
    assert info["version"] and info["uptime"] >= 0
    assert client.get("/miner_info").status_code == 400  # unsigned


def test_health(client: TestClient, services: FakeServices) -> None:
    res = client.get("/health", headers=signed(VALI, webhook=None))
    assert res.status_code == 200
    data = res.json()
    assert (data["status"], data["services_available"], data["services_total"]) == ("healthy", 1, 1)
    services.by["image"].reason = "no certificate"
    res = client.get("/health", headers=signed(VALI, webhook=None))
    assert res.status_code == 503 and res.json()["status"] == "unhealthy"
    services.by["image"] = services.by["video"] = None
    res = client.get("/health", headers=signed(VALI, webhook=None))
    assert res.status_code == 503 and res.json()["services_total"] == 0
    assert_error(client.get("/health"), 400, "missing_header")
    assert_error(client.get("/health", headers=signed(EVE, webhook=None)), 403, "not_authorized")


def test_status_is_json_for_the_submitter_only(client: TestClient, engine: FakeEngine) -> None:
    body = body_of()
    task_id = post(client, "/gen_image", body, signed(VALI, body)).json()["task_id"]
    engine.tasks[task_id].status = TaskStatus.COMPLETED
    engine.tasks[task_id].result_size = 1234
    res = client.get(f"/status/{task_id}", headers=signed(VALI, webhook=None))
    assert res.status_code == 200 and res.headers["content-type"] == "application/json"
    data = res.json()
    assert data["task_id"] == task_id and data["status"] == "completed" and data["result_size"] == 1234
    assert data["signed_by"] == VALI.ss58_address and "processing_time" in data
    assert not any(isinstance(v, (bytes, bytearray)) for v in data.values())
    # another (authorised) validator does not see it, nor an unknown id
    assert_error(client.get(f"/status/{task_id}", headers=signed(STAKER, webhook=None)), 404, "task_not_found")
    assert_error(client.get(f"/status/{uuid.uuid4()}", headers=signed(VALI, webhook=None)), 404, "task_not_found")
    assert_error(client.get(f"/status/{'x' * 500}", headers=signed(VALI, webhook=None)), 404, "task_not_found")
    assert_error(client.get(f"/status/{task_id}"), 400, "missing_header")


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    assert_error(client.get("/nope"), 404, "not_found", "/nope")
    assert_error(client.get("/gen_image"), 405, "method_not_allowed", "GET")
    assert client.get("/docs").status_code == 404 and client.get("/openapi.json").status_code == 404


def test_verifier_must_be_for_our_hotkey(engine: FakeEngine, services: FakeServices) -> None:
    verifier = EpistulaVerifier(self_hotkey=EVE.ss58_address, max_body_bytes=10)
    with pytest.raises(ValueError, match="not for"):
        create_app(engine=engine, services=services, verifier=verifier, hotkey=MINER.ss58_address)


# --------------------------------------------------------------------------------------------
# over a real socket: a huge declared body is refused before it is sent
# --------------------------------------------------------------------------------------------
def test_declared_huge_body_refused_before_upload(client: TestClient) -> None:
    import uvicorn

    config = uvicorn.Config(client.app, host="127.0.0.1", port=0, http="httptools", log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        headers = signed(VALI, b"")
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(f"POST /gen_image HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n{head}\r\n".encode())
            answer = b""
            while b"\r\n\r\n" not in answer:  # the answer comes although not one body byte was sent
                answer += conn.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413")
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
