"""A real HTTP webhook receiver on 127.0.0.1 that checks Epistula signatures like a validator would.

Runs ``http.server.ThreadingHTTPServer`` in a thread (HTTP/1.1, keep-alive). Every request is
verified with :class:`gas.protocol.epistula.EpistulaVerifier` for the validator's hotkey; bad
signatures are answered 401 and kept in ``bad_signatures``. ``respond`` decides the answer of a
correctly signed request (default 200 ``"Binary content received"``); every correctly signed
request is kept in ``attempts`` and those answered 2xx in ``received``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gas.protocol.epistula import EpistulaError, EpistulaVerifier


@dataclass
class Hook:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    signer: str
    uuid: str
    status: int = 0  # what we answered
    at: float = field(default_factory=time.time)

    @property
    def task_id(self) -> str:
        return self.headers.get("task-id", "")

    @property
    def task_status(self) -> str:
        return self.headers.get("task-status", "")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


Responder = Callable[[Hook], "int | tuple[int, bytes]"]


class WebhookReceiver:
    def __init__(self, validator_keypair, *, max_body_bytes: int = 64 << 20, delay_s: float = 0.0) -> None:
        self.hotkey = validator_keypair.ss58_address
        self.verifier = EpistulaVerifier(self_hotkey=self.hotkey, max_body_bytes=max_body_bytes)
        self.received: list[Hook] = []
        self.attempts: list[Hook] = []
        self.bad_signatures: list[str] = []
        self.respond: Responder | None = None
        self.delay_s = delay_s
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    verified = receiver.verifier.verify(dict(self.headers.items()), body)
                except EpistulaError as exc:
                    with receiver._cond:
                        receiver.bad_signatures.append(f"{type(exc).__name__}: {exc}")
                    self._answer(exc.status, str(exc).encode())
                    return
                hook = Hook(self.path, headers, body, verified.hotkey, verified.uuid)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                answer = receiver.respond(hook) if receiver.respond else 200
                status, text = (answer, b"Binary content received") if isinstance(answer, int) else answer
                hook.status = status
                with receiver._cond:
                    receiver.attempts.append(hook)
                    if 200 <= status < 300:
                        receiver.received.append(hook)
                    receiver._cond.notify_all()
                self._answer(status, text)

            def _answer(self, status: int, text: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                except OSError:  # the client gave up (timeout tests)
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="webhook-receiver", daemon=True
        )

    def url(self, path: str = "/generative_callback") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def by_task(self) -> dict[str, list[Hook]]:
        with self._lock:
            out: dict[str, list[Hook]] = {}
            for hook in self.received:
                out.setdefault(hook.task_id, []).append(hook)
            return out

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Hook]:
        """Block until ``n`` webhooks were accepted (2xx); returns them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.received)} of {n} webhooks arrived within {timeout} s")
                self._cond.wait(left)
            return list(self.received)
