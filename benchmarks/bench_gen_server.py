"""Load test of the generative miner's accept path: signed /gen_image requests over loopback.

What runs (all real except the generation service):

* a dev chain in a temp cache with the miner and a validator registered (the validator staked, so
  it holds a permit);
* the miner (``neurons.generator.miner.GeneratorMiner.serve``: uvicorn + httptools + uvloop,
  Epistula verification with the metagraph authorizer, SQLite TaskStore, TaskEngine,
  WebhookSender) in a child process; its only stand-in is a benchmark service that returns a
  pre-made, C2PA-signed 64x64 PNG at once;
* in this process: N concurrent clients, each on its own keep-alive connection, signing every
  request with the validator's key (a fresh uuid each), plus a webhook receiver that checks the
  Epistula signature of every delivery.

Clients are paced (open loop, ``--rate`` requests/s in total, spread evenly over the clients) so
the latency is that of a server under that load; ``--rate 0`` makes them closed-loop (each sends
its next request as soon as the previous answer arrives), which measures the maximum throughput
(latency is then mostly queueing: ~clients/throughput). Latency is from the first byte sent to
the last byte of the answer.

Accounting: submitted (sent), accepted (201), errors by status, tasks found in the miner's task
database, webhooks delivered (correctly signed, one per task), each compared by task id.

Run (targets on 2 cores: >= 200 accepted/s, p99 < 50 ms at 50 clients, nothing lost, every
webhook delivered)::

    .venv/bin/python benchmarks/bench_gen_server.py --clients 50 --rate 250 --duration 20
    .venv/bin/python benchmarks/bench_gen_server.py --clients 50 --rate 0 --duration 20   # max throughput

Prints one JSON object on stdout (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

MINER_URI = "//bench-gen-miner"
VALI_URI = "//bench-gen-vali"


def _log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# setup: chain, keys, signed media
# --------------------------------------------------------------------------------------------
def _identity(uri: str):
    from bittensor_core import Keypair

    from gas.chain.base import Identity

    hot = Keypair.create_from_uri(uri)
    cold = Keypair.create_from_uri(uri + "-cold")
    return hot, Identity(hotkey=hot.ss58_address, coldkey=cold.ss58_address)


def _setup_chain(cache: Path) -> None:
    from gas.chain.devchain import DevChain

    admin = DevChain.init(DevChain.default_path(cache), block_time=12.0)
    for uri, stake in ((VALI_URI, 100.0), (MINER_URI, 0.0)):
        _, ident = _identity(uri)
        admin.fund(ident.coldkey, 10.0 + stake)
        with DevChain(admin.path, identity=ident) as c:
            c.register()
        if stake:
            admin.add_stake(ident.hotkey, stake)
    admin.close()


def _make_media(workdir: Path) -> tuple[bytes, bool]:
    """A small PNG, C2PA-signed with a fresh dev CA when the C2PA modules are importable."""
    import io

    import numpy as np
    from PIL import Image

    pixels = (np.indices((64, 64)).sum(axis=0) % 256).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(buf, format="PNG")
    png = buf.getvalue()
    try:
        from gas.generation.c2pa_certs import init_c2pa
        from gas.generation.c2pa_sign import MediaSigner
    except ImportError as exc:
        _log(f"C2PA modules unavailable ({exc}); the benchmark service returns an unsigned PNG")
        return png, False
    paths = init_c2pa(workdir / "c2pa")
    signer = MediaSigner.from_files(paths.signer_cert, paths.signer_key)
    return signer.sign(png, "image/png", claim_generator="gas-bench", model_name="bench-static"), True


# --------------------------------------------------------------------------------------------
# the server (child process): the real miner with a benchmark service
# --------------------------------------------------------------------------------------------
class BenchService:
    """Returns the same pre-signed PNG at once: the benchmark measures the miner, not a model."""

    name = "bench"
    modalities = frozenset({"image", "video"})

    def __init__(self, data: bytes) -> None:
        self.data = data

    def unavailable_reason(self) -> str | None:
        return None

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "available": True, "reason": None, "supported_tasks": ["text_to_image"]}

    async def generate(self, request: Any, checkpoint: Any) -> Any:
        from gas.generation.services.base import GenerationResult

        return GenerationResult(data=self.data, mime="image/png", metadata={"model": "bench-static"})

    async def aclose(self) -> None:
        return None


def serve(config_path: Path) -> int:
    """Child process: run the miner until SIGTERM."""
    cfg = json.loads(config_path.read_text())
    from gas.config import GeneratorSettings, load_settings
    from gas.generation.services.registry import ServiceSet
    from neurons.generator import miner as miner_mod

    settings = load_settings(GeneratorSettings, env_file=False, overrides=cfg["settings"])
    miner_mod.setup_logging(cfg.get("log_level", "WARNING"))
    hot, ident = _identity(MINER_URI)
    service = BenchService(Path(cfg["media"]).read_bytes())
    miner = miner_mod.GeneratorMiner(settings, identity=ident, keypair=hot,
                                     services=ServiceSet({"image": service, "video": service}))
    try:
        if cfg.get("profile"):
            import cProfile

            cProfile.runctx("miner_mod.run(miner)", globals(), {"miner_mod": miner_mod, "miner": miner},
                            filename=cfg["profile"])
        else:
            miner_mod.run(miner)
    except miner_mod.StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


# --------------------------------------------------------------------------------------------
# webhook receiver (raw asyncio HTTP/1.1 server)
# --------------------------------------------------------------------------------------------
class Receiver:
    def __init__(self, validator_hotkey: str, miner_hotkey: str) -> None:
        from gas.protocol.epistula import EpistulaVerifier

        self.verifier = EpistulaVerifier(
            self_hotkey=validator_hotkey, max_body_bytes=16 << 20,
            authorize=lambda hk: None if hk == miner_hotkey else f"{hk} is not the miner",
        )
        self.tasks: dict[str, int] = {}
        self.bad: list[str] = []
        self.statuses: dict[str, int] = {}
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.changed = asyncio.Event()
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0, backlog=1024)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from gas.protocol.epistula import EpistulaError

        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip()] = v.strip()
                lower = {k.lower(): v for k, v in headers.items()}
                body = await reader.readexactly(int(lower.get("content-length", "0")))
                try:
                    self.verifier.verify(headers, body)
                    status, text = 200, b"Binary content received"
                    task_id = lower.get("task-id", "")
                    self.tasks[task_id] = self.tasks.get(task_id, 0) + 1
                    st = lower.get("task-status", "?")
                    self.statuses[st] = self.statuses.get(st, 0) + 1
                    now = time.perf_counter()
                    self.first_at = self.first_at or now
                    self.last_at = now
                    self.changed.set()
                except EpistulaError as exc:
                    self.bad.append(str(exc))
                    status, text = exc.status, str(exc).encode()
                writer.write(b"HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                             % (status, len(text), text))
                await writer.drain()
        finally:
            writer.close()


# --------------------------------------------------------------------------------------------
# load clients
# --------------------------------------------------------------------------------------------
async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> tuple[int, bytes]:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


def _raw_request(method: str, path: str, port: int, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Load:
    def __init__(self, args: argparse.Namespace, port: int, miner_hotkey: str, webhook_url: str) -> None:
        from bittensor_core import Keypair

        self.args = args
        self.port = port
        self.miner = miner_hotkey
        self.vali = Keypair.create_from_uri(VALI_URI)
        self.webhook_url = webhook_url
        self.submitted = 0
        self.accepted: set[str] = set()
        self.errors: dict[str, int] = {}
        self.latencies: list[float] = []  # measured window only (seconds)
        self.measure_from = 0.0
        self.measure_to = 0.0
        self.accepted_in_window = 0
        self.late = 0

    def _build(self, client: int, k: int) -> bytes:
        from gas.protocol.epistula import sign_request

        body = json.dumps({"prompt": f"benchmark prompt {client}-{k}: a lighthouse on a cliff at dusk",
                           "parameters": {"resolution": "1K"}}).encode()
        headers = {"Content-Type": "application/json", "X-Webhook-URL": self.webhook_url,
                   **sign_request(body, self.vali, signed_for=self.miner)}
        return _raw_request("POST", f"/gen_{self.args.modality}", self.port, body, headers)

    async def client(self, index: int, t0: float, t_end: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        n = self.args.clients
        interval = n / self.args.rate if self.args.rate > 0 else 0.0
        k = 0
        try:
            while True:
                if interval:
                    due = t0 + index / self.args.rate + k * interval
                    now = time.perf_counter()
                    if due > now:
                        await asyncio.sleep(due - now)
                    elif now - due > interval:
                        self.late += 1
                if time.perf_counter() >= t_end:
                    return
                raw = self._build(index, k)
                k += 1
                self.submitted += 1
                start = time.perf_counter()
                try:
                    status, body = await _request(reader, writer, raw)
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    continue
                done = time.perf_counter()
                if status == 201:
                    self.accepted.add(json.loads(body)["task_id"])
                else:
                    key = f"{status}:{json.loads(body).get('code', '?') if body.startswith(b'{') else '?'}"
                    self.errors[key] = self.errors.get(key, 0) + 1
                if self.measure_from <= start < self.measure_to:
                    self.latencies.append(done - start)
                    if status == 201:
                        self.accepted_in_window += 1
        finally:
            writer.close()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


async def _wait_ready(port: int, miner_hotkey: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    from bittensor_core import Keypair

    from gas.protocol.epistula import sign_request

    vali = Keypair.create_from_uri(VALI_URI)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the miner exited with {proc.returncode} before it was ready")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        try:
            raw = _raw_request("GET", "/health", port, b"", sign_request(b"", vali, signed_for=miner_hotkey))
            status, body = await _request(reader, writer, raw)
            if status == 200:
                return
            raise RuntimeError(f"/health answered {status}: {body[:200]!r}")
        finally:
            writer.close()
    raise RuntimeError("the miner did not become ready in time")


def start_miner(args: argparse.Namespace) -> dict[str, Any]:
    """Temp cache with a dev chain, the signed media, and the miner process (not yet ready)."""
    work = Path(tempfile.mkdtemp(prefix="gas-bench-gen-"))
    cache = work / "cache"
    _setup_chain(cache)
    media, c2pa_signed = _make_media(work)
    (work / "media.png").write_bytes(media)
    port = _free_port()
    cfg = {
        "settings": {"cache_dir": str(cache), "network": "dev", "bind_host": "127.0.0.1", "axon_port": port,
                     "max_concurrent_tasks": args.workers, "webhook_retry_delay": 0.5,
                     "require_validator_permit": True, "min_validator_stake": 0.0},
        "media": str(work / "media.png"),
        "log_level": args.server_log_level,
        "profile": str(args.profile) if args.profile else None,
    }
    (work / "server.json").write_text(json.dumps(cfg))
    log = open(work / "server.log", "w")  # closed by stop_miner
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(work / "server.json")],
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    return {"work": work, "cache": cache, "port": port, "proc": proc, "log": log, "media": media,
            "c2pa_signed": c2pa_signed}


def stop_miner(ctx: dict[str, Any]) -> int:
    proc = ctx["proc"]
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    ctx["log"].close()
    return code


async def run_bench(args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    cache, port, proc, media, c2pa_signed = ctx["cache"], ctx["port"], ctx["proc"], ctx["media"], ctx["c2pa_signed"]
    miner_hot, _ = _identity(MINER_URI)
    vali_hot, _ = _identity(VALI_URI)
    receiver = Receiver(vali_hot.ss58_address, miner_hot.ss58_address)
    await receiver.start()
    result: dict[str, Any] = {}
    try:
        await _wait_ready(port, miner_hot.ss58_address, proc)
        _log(f"miner ready on 127.0.0.1:{port} (pid {proc.pid}); {args.clients} clients, "
             f"rate {args.rate or 'closed loop'}/s, {args.warmup}+{args.duration} s")
        load = Load(args, port, miner_hot.ss58_address, f"http://127.0.0.1:{receiver.port}/generative_callback")
        t0 = time.perf_counter() + 0.2
        load.measure_from = t0 + args.warmup
        load.measure_to = load.measure_from + args.duration
        cpu0 = cpu1 = None
        t_end = load.measure_to

        async def cpu_marks() -> None:
            nonlocal cpu0, cpu1
            await asyncio.sleep(max(0.0, load.measure_from - time.perf_counter()))
            cpu0 = (_cpu_seconds(proc.pid), _cpu_seconds(os.getpid()), time.perf_counter())
            await asyncio.sleep(max(0.0, load.measure_to - time.perf_counter()))
            cpu1 = (_cpu_seconds(proc.pid), _cpu_seconds(os.getpid()), time.perf_counter())

        marks = asyncio.create_task(cpu_marks())
        await asyncio.gather(*(load.client(i, t0, t_end) for i in range(args.clients)))
        await marks
        sent_done = time.perf_counter()
        _log(f"load done: {load.submitted} submitted, {len(load.accepted)} accepted; waiting for webhooks")
        deadline = time.monotonic() + args.webhook_timeout
        while not load.accepted.issubset(receiver.tasks.keys()) and time.monotonic() < deadline:
            receiver.changed.clear()
            try:
                await asyncio.wait_for(receiver.changed.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
        all_delivered_after = max(0.0, receiver.last_at - sent_done) if receiver.last_at else None

        db = cache / "generator" / "tasks.db"
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        db_ids = {r[0] for r in conn.execute("SELECT task_id FROM tasks")}
        db_status = dict(conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall())
        hook_status = dict(conn.execute("SELECT webhook_status, COUNT(*) FROM tasks GROUP BY webhook_status")
                           .fetchall())
        conn.close()

        window = load.measure_to - load.measure_from
        lat_ms = [x * 1000 for x in load.latencies]
        server_cpu = client_cpu = None
        if cpu0 and cpu1:
            span = cpu1[2] - cpu0[2]
            server_cpu = round(100 * (cpu1[0] - cpu0[0]) / span, 1)
            client_cpu = round(100 * (cpu1[1] - cpu0[1]) / span, 1)
        delivered = set(receiver.tasks)
        result = {
            "config": {"clients": args.clients, "rate_per_s": args.rate or "closed-loop", "warmup_s": args.warmup,
                       "duration_s": args.duration, "modality": args.modality, "engine_workers": args.workers,
                       "verification": "Epistula v2 + metagraph authorizer (permit)", "c2pa_signed_media": c2pa_signed,
                       "media_bytes": len(media)},
            "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
            "accept": {
                "submitted": load.submitted,
                "accepted": len(load.accepted),
                "errors": load.errors,
                "accepted_per_s": round(load.accepted_in_window / window, 1),
                "latency_ms": {
                    "n": len(lat_ms),
                    "p50": round(_pct(lat_ms, 50), 2),
                    "p95": round(_pct(lat_ms, 95), 2),
                    "p99": round(_pct(lat_ms, 99), 2),
                    "max": round(max(lat_ms), 2) if lat_ms else None,
                    "mean": round(statistics.fmean(lat_ms), 2) if lat_ms else None,
                },
                "late_sends": load.late,
                "server_cpu_pct": server_cpu,
                "bench_process_cpu_pct": client_cpu,
            },
            "lost": {
                "accepted_not_in_db": len(load.accepted - db_ids),
                "db_not_accepted": len(db_ids - load.accepted),
                "not_answered_201": load.submitted - len(load.accepted),
                "db_tasks": len(db_ids),
                "db_status": db_status,
                "db_webhook_status": hook_status,
            },
            "webhooks": {
                "expected": len(load.accepted),
                "delivered_tasks": len(delivered & load.accepted),
                "missing": len(load.accepted - delivered),
                "duplicates": sum(n - 1 for n in receiver.tasks.values() if n > 1),
                "bad_signatures": len(receiver.bad),
                "task_status": receiver.statuses,
                "last_delivered_s_after_load": (round(all_delivered_after, 2)
                                                if all_delivered_after is not None else None),
            },
        }
        ok = (len(load.accepted) == load.submitted and not (load.accepted - db_ids)
              and not (load.accepted - delivered) and not receiver.bad)
        result["verdict"] = {
            "nothing_lost_all_delivered": ok,
            "accepted_per_s_ge_200": result["accept"]["accepted_per_s"] >= 200,
            "p99_lt_50ms": result["accept"]["latency_ms"]["p99"] < 50,
        }
    finally:
        if receiver.server is not None:
            receiver.server.close()
    return result


def _cpu_model() -> str:
    try:
        from machine import cpu_model

        return cpu_model()
    except ImportError:
        return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=250.0, help="total requests/s (0 = closed loop)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before the measurement window")
    parser.add_argument("--modality", choices=("image", "video"), default="image")
    parser.add_argument("--workers", type=int, default=8, help="engine workers (GAS_MAX_CONCURRENT_TASKS)")
    parser.add_argument("--webhook-timeout", type=float, default=120.0)
    parser.add_argument("--server-log-level", default="WARNING")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server.log, task db)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the miner process (its loop thread) here")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    ctx = start_miner(args)
    try:
        with runner:
            result = runner.run(run_bench(args, ctx))
    finally:
        code = stop_miner(ctx)
    result["server_exit_code"] = code
    ok = bool(result.get("verdict", {}).get("nothing_lost_all_delivered")) and code == 0
    if ok and not args.keep:
        shutil.rmtree(ctx["work"], ignore_errors=True)
    else:
        result["workdir_kept"] = str(ctx["work"])  # server.log, the task database
    print(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
