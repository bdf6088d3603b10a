"""Local fakes of the generation providers' HTTP APIs: OpenAI, OpenRouter, Stability AI, Runway.

Each fake is a real HTTP/1.1 server on 127.0.0.1 (a free port) running in a daemon thread, so the
services' own httpx code (headers, multipart bodies, JSON, redirects, streaming downloads, job
polling) runs unchanged against it. The fakes:

- speak the documented request/response shapes of each API, including its error bodies;
- run asynchronous jobs as state machines that advance one state per status poll
  (``polls_per_state`` polls each), e.g. OpenAI ``queued -> in_progress -> completed``;
- serve the media bytes they were given unchanged, so tests can assert byte equality;
- record every request (method, path, query, lower-cased headers, body) in ``requests``;
- take injected faults: ``inject(method, path_regex, reply, times)`` answers the next matching
  requests with ``reply`` instead; ``plan_jobs([...])`` makes the next jobs fail with given codes.

Use as a context manager: ``with FakeOpenAI(image=png, video=mp4) as fake: fake.base_url``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
import json
import re
import socket
import threading
import uuid
from collections import deque
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import pytest

T = TypeVar("T")
S = TypeVar("S")

TEST_KEY = "sk-test-4f9c2b7e1d"


# --- real media --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def png_bytes() -> bytes:
    """A real PNG (skimage photo, PIL-encoded)."""
    from media_fixtures import make_png

    return make_png(3, (96, 128))


@functools.lru_cache(maxsize=None)
def jpeg_bytes() -> bytes:
    from media_fixtures import make_jpeg

    return make_jpeg(4, (96, 128))


@functools.lru_cache(maxsize=None)
def mp4_bytes() -> bytes:
    """A real H.264 MP4 (PyAV)."""
    from media_fixtures import make_clip

    return make_clip(n_frames=8, size=(64, 96), seed=1)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class SimulatedCrash(Exception):
    """Raised by a checkpoint recorder to stop a service right after a durable checkpoint."""


class CheckpointRecorder:
    """A CheckpointFn that records what it gets, and how many requests the fake had seen by then."""

    def __init__(self, fake: FakeProvider | None = None, *, crash: bool = False) -> None:
        self.fake = fake
        self.crash = crash
        self.calls: list[dict[str, Any] | None] = []
        self.requests_seen: list[int] = []
        self.event: asyncio.Event | None = None  # set arm() inside the event loop to wait for a call

    def arm(self) -> asyncio.Event:
        self.event = asyncio.Event()
        return self.event

    async def __call__(self, state: dict[str, Any] | None) -> None:
        self.calls.append(None if state is None else json.loads(json.dumps(state)))  # JSON-able
        self.requests_seen.append(len(self.fake.requests) if self.fake else -1)
        if self.event is not None:
            self.event.set()
        if self.crash:
            raise SimulatedCrash("process killed right after the checkpoint was stored")

    @property
    def last(self) -> dict[str, Any] | None:
        return self.calls[-1] if self.calls else None


# --- HTTP plumbing -----------------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """Fields of a multipart/form-data body (text values)."""
        ctype = self.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            raise ValueError(f"not multipart: {ctype!r}")
        msg = BytesParser(policy=email_policy).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\nMIME-Version: 1.0\r\n\r\n" + self.body
        )
        out: dict[str, str] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            out[str(name)] = (part.get_payload(decode=True) or b"").decode()
        return out


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (for timeout tests)


def json_reply(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK add ~40 ms
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        rec = Recorded(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        reply = self.server.fake.handle(rec)
        if reply.delay:
            threading.Event().wait(reply.delay)
        try:
            self.send_response(reply.status)
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeProvider


@dataclass
class FakeJob:
    id: str
    params: dict[str, Any]
    states: list[str]
    error: tuple[str, str] | None = None
    polls: int = 0
    polls_per_state: int = 1

    @property
    def state(self) -> str:
        return self.states[min(self.polls // self.polls_per_state, len(self.states) - 1)]

    def poll(self) -> str:
        """Advance one poll and return the state this poll sees."""
        self.polls += 1
        return self.state

    @property
    def terminal(self) -> bool:
        return self.state == self.states[-1]


class FakeProvider:
    """Base of the fakes: server lifecycle, request log, fault injection, auth check, jobs."""

    #: path prefix of the API under the server root, e.g. "/v1"
    api_prefix = ""

    def __init__(
        self,
        *,
        api_key: str = TEST_KEY,
        image: bytes | None = None,
        video: bytes | None = None,
        polls_per_state: int = 1,
    ) -> None:
        self.api_key = api_key
        self.image = image if image is not None else png_bytes()
        self.video = video if video is not None else mp4_bytes()
        self.polls_per_state = polls_per_state
        self.requests: list[Recorded] = []
        self.jobs: dict[str, FakeJob] = {}
        self._outcomes: deque[tuple[str, str] | None] = deque()
        self._injected: list[list[Any]] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._counter = itertools.count(1)

    # lifecycle
    def start(self) -> FakeProvider:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        """What the service's ``base_url`` should be."""
        return self.url + self.api_prefix

    # test controls
    def inject(self, method: str, path_regex: str, reply: Reply, times: int = 1) -> None:
        """Answer the next ``times`` requests matching (method, path regex) with ``reply``."""
        with self._lock:
            self._injected.append([method.upper(), re.compile(path_regex), reply, times])

    def plan_jobs(self, outcomes: list[tuple[str, str] | None]) -> None:
        """Outcomes of the next created jobs: None = success, (code, message) = failure."""
        with self._lock:
            self._outcomes.extend(outcomes)

    def requests_to(self, method: str, path_regex: str) -> list[Recorded]:
        rx = re.compile(path_regex)
        with self._lock:
            return [r for r in self.requests if r.method == method.upper() and rx.search(r.path)]

    # dispatch
    def handle(self, rec: Recorded) -> Reply:
        with self._lock:
            self.requests.append(rec)
            for entry in self._injected:
                method, rx, reply, times = entry
                if times > 0 and method == rec.method and rx.search(rec.path):
                    entry[3] -= 1
                    return reply
        try:
            return self.route(rec)
        except Exception as exc:  # a bug in the fake must show up, not hang the client
            return json_reply({"error": {"message": f"fake crashed: {exc!r}"}}, 599)

    def route(self, rec: Recorded) -> Reply:
        raise NotImplementedError

    def authorized(self, rec: Recorded) -> bool:
        return rec.headers.get("authorization") == f"Bearer {self.api_key}"

    def new_job(self, params: dict[str, Any], running: list[str], done: str, failed: str) -> FakeJob:
        with self._lock:
            outcome = self._outcomes.popleft() if self._outcomes else None
        job_id = f"{self.job_prefix}{next(self._counter)}_{uuid.uuid4().hex[:8]}"
        states = [*running, failed if outcome else done]
        job = FakeJob(job_id, params, states, error=outcome, polls_per_state=self.polls_per_state)
        self.jobs[job_id] = job
        return job

    job_prefix = "job_"


# --- OpenAI ------------------------------------------------------------------------------------------


class FakeOpenAI(FakeProvider):
    """``/v1/images/generations`` (b64_json for gpt-image, url for dall-e) and the Sora ``/v1/videos`` API."""

    api_prefix = "/v1"
    job_prefix = "video_"

    def __init__(self, *, url_image: bytes | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url_image = url_image if url_image is not None else jpeg_bytes()

    @staticmethod
    def error(status: int, message: str, code: str | None = None, etype: str = "invalid_request_error") -> Reply:
        return json_reply({"error": {"message": message, "type": etype, "param": None, "code": code}}, status)

    def route(self, rec: Recorded) -> Reply:
        if rec.method == "GET" and rec.path.startswith("/cdn/"):
            return Reply(200, self.url_image, {"Content-Type": "image/jpeg"})  # signed URL: no key needed
        if not self.authorized(rec):
            got = rec.headers.get("authorization", "").removeprefix("Bearer ")
            # the real API echoes a masked key; echo it whole to prove the service redacts it
            return self.error(401, f"Incorrect API key provided: {got}.", "invalid_api_key")
        p = rec.path
        if rec.method == "POST" and p == "/v1/images/generations":
            return self._image(rec)
        if rec.method == "POST" and p == "/v1/videos":
            return self._create_video(rec)
        m = re.fullmatch(r"/v1/videos/([\w-]+)(/content)?", p)
        if rec.method == "GET" and m:
            job = self.jobs.get(m.group(1))
            if job is None:
                return self.error(404, f"Video with id '{m.group(1)}' not found.", "not_found")
            if m.group(2):
                if job.state != "completed":
                    return self.error(400, "Video is not ready yet.", "video_not_ready")
                return Reply(200, self.video, {"Content-Type": "video/mp4"})
            job.poll()
            return json_reply(self._video_object(job))
        return self.error(404, f"Unknown route {rec.method} {p}")

    def _image(self, rec: Recorded) -> Reply:
        body = rec.json()
        if not body.get("prompt"):
            return self.error(400, "Missing required parameter: 'prompt'.", "missing_required_parameter")
        n = next(self._counter)
        headers = {"x-request-id": f"req_{n}"}
        if str(body.get("model", "")).startswith("dall-e"):
            data = {"url": f"{self.url}/cdn/img-{n}.jpg?sig=abc", "revised_prompt": body["prompt"]}
        else:
            data = {"b64_json": base64.b64encode(self.image).decode()}
        return json_reply({"created": 1700000000, "data": [data]}, headers=headers)

    def _create_video(self, rec: Recorded) -> Reply:
        form = rec.form()
        if not form.get("prompt"):
            return self.error(400, "Missing required parameter: 'prompt'.", "missing_required_parameter")
        job = self.new_job(form, ["queued", "in_progress"], "completed", "failed")
        return json_reply(self._video_object(job))

    def _video_object(self, job: FakeJob) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": job.id, "object": "video", "model": job.params.get("model", "sora-2"), "status": job.state,
            "progress": 100 if job.terminal else 50 * min(job.polls, 1), "created_at": 1700000000,
            "size": job.params.get("size", "720x1280"), "seconds": job.params.get("seconds", "4"),
        }
        if job.state == "failed" and job.error:
            obj["error"] = {"code": job.error[0], "message": job.error[1]}
        return obj


# --- OpenRouter --------------------------------------------------------------------------------------


class FakeOpenRouter(FakeProvider):
    """``/api/v1/chat/completions`` with image output and the async ``/api/v1/videos`` API."""

    api_prefix = "/api/v1"
    job_prefix = "vgen_"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refuse_images = False

    @staticmethod
    def error(status: int, message: str) -> Reply:
        return json_reply({"error": {"code": status, "message": message}}, status)

    def route(self, rec: Recorded) -> Reply:
        if not self.authorized(rec):
            return self.error(401, "No auth credentials found")
        p = rec.path
        if rec.method == "POST" and p == "/api/v1/chat/completions":
            return self._chat(rec)
        if rec.method == "POST" and p == "/api/v1/videos":
            body = rec.json()
            if not body.get("model") or not body.get("prompt"):
                return self.error(400, "model and prompt are required")
            job = self.new_job(body, ["pending", "in_progress"], "completed", "failed")
            return json_reply({"id": job.id, "polling_url": f"/api/v1/videos/{job.id}", "status": "pending"}, 202)
        m = re.fullmatch(r"/api/v1/videos/([\w-]+)(/content)?", p)
        if rec.method == "GET" and m:
            job = self.jobs.get(m.group(1))
            if job is None:
                return self.error(404, "Video generation job not found")
            if m.group(2):
                if job.state != "completed":
                    return self.error(409, "Video is not ready")
                return Reply(200, self.video, {"Content-Type": "video/mp4"})
            job.poll()
            out: dict[str, Any] = {"id": job.id, "polling_url": f"/api/v1/videos/{job.id}", "status": job.state}
            if job.state == "completed":
                out["generation_id"] = f"gen-{job.id}"
                out["unsigned_urls"] = [f"{self.url}/api/v1/videos/{job.id}/content?index=0"]
                out["usage"] = {"cost": 0.12, "is_byok": False}
            if job.state == "failed" and job.error:
                out["error"] = job.error[1]
            return json_reply(out)
        return self.error(404, f"Unknown route {rec.method} {p}")

    def _chat(self, rec: Recorded) -> Reply:
        body = rec.json()
        n = next(self._counter)
        message: dict[str, Any] = {"role": "assistant", "content": "Here is your image."}
        if self.refuse_images:
            message["content"] = "I can't create that image."
        elif "image" in (body.get("modalities") or []):
            url = "data:image/png;base64," + base64.b64encode(self.image).decode()
            message["images"] = [{"type": "image_url", "image_url": {"url": url}, "index": 0}]
        return json_reply({
            "id": f"gen-{n}", "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        })


# --- Stability AI ------------------------------------------------------------------------------------


class FakeStability(FakeProvider):
    """``/v2beta/stable-image/generate/{sd3,ultra,core}``: multipart in, image bytes out."""

    api_prefix = ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.content_filtered = False

    @staticmethod
    def error(status: int, name: str, *errors: str) -> Reply:
        return json_reply({"id": uuid.uuid4().hex, "name": name, "errors": list(errors)}, status)

    def route(self, rec: Recorded) -> Reply:
        if not self.authorized(rec):
            return self.error(401, "unauthorized", "authorization: invalid or missing API key")
        m = re.fullmatch(r"/v2beta/stable-image/generate/(sd3|ultra|core)", rec.path)
        if rec.method != "POST" or not m:
            return self.error(404, "not_found", f"{rec.method} {rec.path} not found")
        if rec.headers.get("accept") not in ("image/*", "application/json"):
            return self.error(400, "bad_request", "accept: must be image/* or application/json")
        try:
            form = rec.form()
        except ValueError:
            return self.error(400, "bad_request", "content-type: must be multipart/form-data")
        if not form.get("prompt"):
            return self.error(400, "bad_request", "prompt: cannot be empty")
        seed = form.get("seed", "1234567")
        headers = {"Content-Type": "image/png", "finish-reason": "SUCCESS", "seed": seed,
                   "x-request-id": f"req-{next(self._counter)}"}
        if self.content_filtered:
            headers["finish-reason"] = "CONTENT_FILTERED"
        return Reply(200, self.image, headers)


# --- Runway ------------------------------------------------------------------------------------------


class FakeRunway(FakeProvider):
    """``/v1/text_to_video`` + ``/v1/tasks/{id}``; outputs are served from a signed ``/cdn`` link."""

    api_prefix = "/v1"
    job_prefix = ""
    API_VERSION = "2024-11-06"
    PROMPT_LIMITS = {"seedance2": 3500, "seedance2_fast": 3500}

    @staticmethod
    def error(status: int, message: str, issues: list[Any] | None = None) -> Reply:
        body: dict[str, Any] = {"error": message}
        if issues:
            body["issues"] = issues
        return json_reply(body, status)

    def route(self, rec: Recorded) -> Reply:
        m = re.fullmatch(r"/cdn/([\w-]+)\.mp4", rec.path)
        if rec.method == "GET" and m:
            job = self.jobs.get(m.group(1))
            if job is None or job.state != "SUCCEEDED" or rec.query.get("sig") != "s1gned":
                return Reply(403, b"<Error>AccessDenied</Error>", {"Content-Type": "application/xml"})
            return Reply(200, self.video, {"Content-Type": "video/mp4"})
        if not self.authorized(rec):
            return self.error(401, "Invalid API key")
        if rec.headers.get("x-runway-version") != self.API_VERSION:
            return self.error(400, "Invalid or missing X-Runway-Version header")
        if rec.method == "POST" and rec.path == "/v1/text_to_video":
            body = rec.json()
            prompt = body.get("promptText") or ""
            limit = self.PROMPT_LIMITS.get(body.get("model"), 1000)
            if not prompt or len(prompt.encode("utf-16-le")) // 2 > limit or not body.get("ratio"):
                return self.error(400, "Validation of body failed", [{"path": ["promptText"]}])
            job = self.new_job(body, ["PENDING", "RUNNING"], "SUCCEEDED", "FAILED")
            return json_reply({"id": job.id})
        m = re.fullmatch(r"/v1/tasks/([\w-]+)", rec.path)
        if rec.method == "GET" and m:
            job = self.jobs.get(m.group(1))
            if job is None:
                return self.error(404, "Task not found")
            job.poll()
            out: dict[str, Any] = {"id": job.id, "status": job.state, "createdAt": "2026-01-01T00:00:00Z"}
            if job.state == "RUNNING":
                out["progress"] = 0.5
            if job.state == "SUCCEEDED":
                out["output"] = [f"{self.url}/cdn/{job.id}.mp4?sig=s1gned"]
            if job.state == "FAILED" and job.error:
                out["failureCode"], out["failure"] = job.error
            return json_reply(out)
        return self.error(404, f"Unknown route {rec.method} {rec.path}")

    def new_job(self, params: dict[str, Any], running: list[str], done: str, failed: str) -> FakeJob:
        job = super().new_job(params, running, done, failed)
        # Runway ids are UUIDs
        new_id = str(uuid.uuid4())
        self.jobs[new_id] = self.jobs.pop(job.id)
        job.id = new_id
        return job


# --- helpers for the service tests ------------------------------------------------------------------

#: Tunables that keep the service tests fast: quick polls and backoff, short bounds.
FAST = dict(
    poll_interval=0.002, retry_backoff=0.001, request_timeout=5.0, download_timeout=5.0, job_timeout=5.0
)


def serving(fake_cls: type[FakeProvider]) -> Any:
    """A ``fake`` fixture: a running ``fake_cls()`` for the test, stopped after it."""

    @pytest.fixture(name="fake")
    def _fake() -> Iterator[FakeProvider]:
        with fake_cls() as f:
            yield f

    return _fake


def make_service(service_cls: type[S], fake: FakeProvider, **kw: Any) -> S:
    """``service_cls`` with the test key, pointed at ``fake``, FAST unless ``kw`` says otherwise."""
    return service_cls(api_key=TEST_KEY, base_url=fake.base_url, **{**FAST, **kw})


async def generate(svc: Any, req: Any, cp: Any = None) -> Any:
    """``svc.generate(req, cp)`` (a fresh CheckpointRecorder by default), then close the service."""
    try:
        return await svc.generate(req, cp or CheckpointRecorder())
    finally:
        await svc.aclose()


def fake_settings(**env: str) -> Any:
    """GeneratorSettings built from explicit values only (no env file)."""
    from gas.config import GeneratorSettings, load_settings

    return load_settings(GeneratorSettings, env_file=False, overrides=env)

