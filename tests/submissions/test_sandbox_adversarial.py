"""Adversarial packages: the sandbox must stop each attack at run time (no static check here).

Most attacks run under several layer configurations to show which layer stops them on its own:
ALL (namespaces + rlimits + seccomp + audit hook), NS_ONLY (no seccomp, no audit hook), HOOK_ONLY (no
seccomp), SECCOMP_ONLY (no audit hook). Each probe model encodes "did the attack work" in its logits
(1.0 = it worked) so an attack that the model swallows is still caught. After every attack a shared
valid sandbox must still answer correctly (the parent is unharmed).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
from sandbox_packages import (
    INPUT_SHAPE,
    VALID_MODEL,
    Listener,
    make_package,
    probe_model,
    require_bwrap,
    valid_weights,
)

from gas.submissions.sandbox import (
    Isolation,
    SandboxClosed,
    SandboxCrashed,
    SandboxLimits,
    SandboxLoadError,
    SandboxOutputError,
    SandboxTimeout,
    open_sandbox,
)

REPO = Path(__file__).resolve().parents[2]
ALL = SandboxLimits(infer_timeout_s=20, startup_timeout_s=60)
NS_ONLY = dataclasses.replace(ALL, audit_hook=False, seccomp=False)
HOOK_ONLY = dataclasses.replace(ALL, seccomp=False)
SECCOMP_ONLY = dataclasses.replace(ALL, audit_hook=False)
CONFIGS = {"all": ALL, "ns_only": NS_ONLY, "hook_only": HOOK_ONLY, "seccomp_only": SECCOMP_ONLY}

pytestmark = pytest.mark.usefixtures("bwrap_required")


@pytest.fixture(scope="module")
def bwrap_required() -> None:
    require_bwrap()


def x(n: int = 2) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (n, *INPUT_SHAPE), dtype=np.uint8)


@pytest.fixture(scope="module")
def valid_sb(tmp_path_factory: pytest.TempPathFactory):
    spec = make_package(tmp_path_factory.mktemp("valid"), VALID_MODEL, weights=valid_weights())
    with open_sandbox(spec, limits=ALL, device="cpu") as sb:
        sb.expected = sb.infer(x(3))
        yield sb


@pytest.fixture
def parent_ok(valid_sb):
    """After the test: the parent process and an existing sandbox are unharmed."""
    yield
    np.testing.assert_array_equal(valid_sb.infer(x(3)), valid_sb.expected)


def run_probes(tmp_path: Path, setup: str, probes: list[str], limits: SandboxLimits, *, at: str = "load",
               isolation: str | None = "bwrap") -> tuple[np.ndarray, list[str]]:  # fmt: skip
    n = len(probes) * (2 if at == "both" else 1)
    spec = make_package(tmp_path / "pkg", probe_model(setup, probes, at=at), num_classes=n)
    unsandboxed = isolation == "none"
    with open_sandbox(
        spec, limits=limits, device="cpu", isolation=isolation, allow_unsandboxed=unsandboxed
    ) as sb:
        assert sb.isolation.value == isolation
        row = sb.infer(x(2))[0]
    assert not sb._work.exists() and sb._proc.poll() is not None  # cleaned up
    return row, list(sb.violations)


# ---------------------------------------------------------------------------------------------- network


NET_SETUP = """
import socket, urllib.request
PORT = {port}

def tcp():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=2)
    s.sendall(b"leak")
    s.close()
    return True

def raw():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(("127.0.0.1", PORT))
    s.close()
    return True

def http():
    return urllib.request.urlopen("http://127.0.0.1:%d/" % PORT, timeout=2) is not None

def dns():
    return len(socket.getaddrinfo("localhost", PORT)) > 0 and len(socket.getaddrinfo("example.com", 80)) > 0
"""
NET_PROBES = ["tcp()", "raw()", "http()", "dns()"]


@pytest.mark.parametrize("config", ["all", "ns_only", "seccomp_only"])
def test_network_blocked_at_load_and_forward(tmp_path: Path, config: str, parent_ok) -> None:
    listener = Listener()
    try:
        row, violations = run_probes(tmp_path, NET_SETUP.format(port=listener.port), NET_PROBES,
                                     CONFIGS[config], at="both")  # fmt: skip
        time.sleep(0.3)
        assert listener.connections == 0, "the sandboxed model reached the test's listener"
    finally:
        listener.close()
    assert row.tolist() == [0.0] * 8
    if CONFIGS[config].audit_hook:
        assert any(v.startswith("socket.") for v in violations)


def test_network_blocked_under_unshare_fallback(tmp_path: Path, parent_ok) -> None:
    listener = Listener()
    try:
        row, _ = run_probes(tmp_path, NET_SETUP.format(port=listener.port), NET_PROBES[:2], NS_ONLY,
                            isolation="unshare-net")  # fmt: skip
        time.sleep(0.3)
        assert listener.connections == 0
    finally:
        listener.close()
    assert row.tolist() == [0.0, 0.0]


def test_unhandled_network_attempt_is_a_load_error(tmp_path: Path, parent_ok) -> None:
    listener = Listener()
    try:
        source = f"import socket\nsocket.create_connection(('127.0.0.1', {listener.port}), timeout=2)\n"
        spec = make_package(tmp_path / "pkg", source)
        with pytest.raises(SandboxLoadError, match=r"blocked by sandbox policy: socket\."):
            open_sandbox(spec, limits=ALL, device="cpu")
        assert listener.connections == 0
    finally:
        listener.close()


# ---------------------------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("config", ["all", "ns_only"])
def test_secrets_and_host_files_not_visible(tmp_path: Path, monkeypatch, config: str, parent_ok) -> None:
    secret = "s3cr3t-hotkey-mnemonic-0xdeadbeef"
    home = tmp_path / "home"
    wallet = home / ".bittensor" / "wallets" / "default" / "coldkey"
    wallet.parent.mkdir(parents=True)
    wallet.write_text(secret)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GAS_TEST_SECRET", secret)
    monkeypatch.setenv("WALLET_PASSWORD", secret)
    setup = f"""
SECRET = {secret!r}
WALLET = {str(wallet)!r}
REPO = {str(REPO)!r}
def env_leak():
    return any(SECRET in v for v in os.environ.values())
def proc_environ(pid):
    with open("/proc/%s/environ" % pid, "rb") as fh:
        return SECRET.encode() in fh.read()
"""
    probes = [
        "SECRET in open(WALLET).read()",
        "bytes(torch.from_file(WALLET, size=len(SECRET), dtype=torch.uint8).tolist()) == SECRET.encode()",
        "os.path.exists(WALLET)",
        "os.path.exists(os.path.expanduser('~/.bittensor'))",
        "env_leak()",
        "proc_environ(1)",
        "proc_environ(os.getppid())",
        "'root:x:0:0' in open('/etc/passwd').read()",
        "os.path.exists(os.path.join(REPO, 'pyproject.toml'))",
        "os.path.exists('/work') and len(os.listdir('/work')) > 1",
    ]
    row, violations = run_probes(tmp_path, setup, probes, CONFIGS[config])
    assert dict(zip(probes, row.tolist(), strict=True)) == dict.fromkeys(probes, 0.0)
    if config == "all":
        assert any("open(read" in v for v in violations)


def test_audit_hook_alone_guards_files_when_unsandboxed(tmp_path: Path, monkeypatch, parent_ok) -> None:
    """isolation=none: no namespaces, so the audit hook (and the scrubbed env) are all that is left.

    The same probes run with the hook off as a control: then the host files are readable, which
    shows the probes are real and that the hook is what stops them here.
    """
    secret = "s3cr3t-in-the-home-dir"
    wallet = tmp_path / "home" / ".bittensor" / "wallets" / "w" / "coldkey"
    wallet.parent.mkdir(parents=True)
    wallet.write_text(secret)
    escape = tmp_path / "escape.txt"
    monkeypatch.setenv("GAS_TEST_SECRET", secret)
    setup = f"""
SECRET, WALLET, ESCAPE = {secret!r}, {str(wallet)!r}, {str(escape)!r}
def env_leak():
    return any(SECRET in v for v in os.environ.values())
def parent_environ():
    with open("/proc/%s/environ" % os.getppid(), "rb") as fh:
        return len(fh.read()) > 0
def link_read():
    link = os.path.join(os.getcwd(), "link")
    os.symlink(WALLET, link)
    return SECRET in open(link).read()
def dirfd_read():
    fd = os.open("/usr", os.O_RDONLY)
    deep = os.path.join(os.getcwd(), *"abcdefghijklmnopqrstuvwxyz")
    os.makedirs(deep)
    os.chdir(deep)
    f = os.open("../" + WALLET.lstrip("/"), os.O_RDONLY, dir_fd=fd)
    return SECRET.encode() in os.read(f, 1000)
"""
    probes = [
        "SECRET in open(WALLET).read()",
        "link_read()",
        "dirfd_read()",
        "parent_environ()",
        "open(ESCAPE, 'w').write('x') == 1",
        "env_leak()",
    ]
    row, violations = run_probes(tmp_path / "on", setup, probes, ALL, isolation="none")
    assert row.tolist() == [0.0] * len(probes)
    assert not escape.exists()
    assert {"open", "os.open", "os.symlink"} & {v.split("(")[0] for v in violations}
    control, _ = run_probes(tmp_path / "off", setup, probes, NS_ONLY, isolation="none")
    assert control.tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]  # the env is scrubbed either way
    escape.unlink()


# ---------------------------------------------------------------------------------------------- writes


@pytest.mark.parametrize("config", ["all", "ns_only"])
def test_writes_outside_private_tmp_do_not_land(tmp_path: Path, config: str, parent_ok) -> None:
    escape = tmp_path / "escape.txt"
    escape2 = tmp_path / "escape2.bin"
    setup = f"""
ESCAPE, ESCAPE2 = {str(escape)!r}, {str(escape2)!r}
HERE = os.path.dirname(os.path.abspath(__file__))
def mkdirs_then_write():
    os.makedirs(os.path.dirname(ESCAPE), exist_ok=True)
    with open(ESCAPE, "w") as fh:
        fh.write("x")
    return True
"""
    probes = [
        "open(os.path.join(HERE, 'evil.txt'), 'w').write('x') == 1",
        "open(os.path.join(HERE, 'model.py'), 'a').write('#') == 1",
        "torch.from_file(ESCAPE2, shared=True, size=16, dtype=torch.uint8).fill_(1).sum().item() == 16 "
        "and os.path.dirname(ESCAPE2) != '/tmp'",
        "open('/io/input.bin', 'wb').write(b'x') == 1",
        "open('/tmp/ok.txt', 'w').write('ok') == 2",  # the private tmp is writable (sanity)
        "mkdirs_then_write()",  # lands in the private tmpfs, never on the host
    ]
    row, _ = run_probes(tmp_path, setup, probes, CONFIGS[config])
    pkg = tmp_path / "pkg"
    assert not (pkg / "evil.txt").exists()
    assert (pkg / "model.py").read_text().endswith("\n")
    assert not escape.exists() and not escape2.exists()
    assert row.tolist()[:5] == [0.0, 0.0, 0.0, 0.0, 1.0]


# ---------------------------------------------------------------------------------------------- processes

SPAWN_SETUP = """
import subprocess
def fork_probe():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return True
def mp_probe():
    import multiprocessing as mp
    p = mp.get_context("fork").Process(target=print)
    p.start()
    p.join()
    return True
"""
SPAWN_PROBES = [
    "subprocess.run(['/bin/sh', '-c', 'touch /tmp/m1']).returncode == 0 or os.path.exists('/tmp/m1')",
    "os.system('touch /tmp/m2') == 0 or os.path.exists('/tmp/m2')",
    "fork_probe()",
    "os.posix_spawn('/bin/sh', ['sh', '-c', 'true'], {}) > 0",
    "mp_probe()",
    "__import__('pty').fork()[0] > 0",
]


@pytest.mark.parametrize("config", ["all", "hook_only", "seccomp_only"])
def test_process_spawning_blocked(tmp_path: Path, config: str, parent_ok) -> None:
    row, violations = run_probes(tmp_path, SPAWN_SETUP, SPAWN_PROBES, CONFIGS[config], at="forward")
    assert row.tolist() == [0.0] * len(SPAWN_PROBES)
    if CONFIGS[config].audit_hook:
        assert {"subprocess.Popen", "os.system", "os.fork", "os.posix_spawn"} <= {
            v.split("(")[0] for v in violations
        }


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _live_descendants(pid: int) -> list[int]:
    """Non-zombie processes below ``pid`` (host view)."""
    out, todo = [], [pid]
    while todo:
        cur = todo.pop()
        try:
            kids = [int(k) for k in Path(f"/proc/{cur}/task/{cur}/children").read_text().split()]
        except OSError:
            continue
        for k in kids:
            todo.append(k)
            if _running(k):
                out.append(k)
    return out


BOMB_SETUP = """
import threading, time
def fork_bomb():
    n = 0
    for _ in range(500):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
    return n
def thread_bomb():
    n, ev = 0, threading.Event()
    for _ in range(2000):
        try:
            threading.Thread(target=ev.wait, daemon=True).start()
        except RuntimeError:
            break
        n += 1
    return n
"""


def test_fork_bomb_stopped_by_hook_and_seccomp(tmp_path: Path, parent_ok) -> None:
    row, violations = run_probes(tmp_path, BOMB_SETUP, ["fork_bomb()"], SECCOMP_ONLY, at="forward")
    assert row.tolist() == [0.0]  # seccomp: the very first fork fails
    row, violations = run_probes(tmp_path / "b", BOMB_SETUP, ["fork_bomb()"], HOOK_ONLY, at="forward")
    assert row.tolist() == [0.0] and any(v.startswith("os.fork") for v in violations)


def test_fork_and_thread_bombs_bounded_by_rlimit_nproc(tmp_path: Path, parent_ok) -> None:
    limits = dataclasses.replace(NS_ONLY, max_tasks=48)
    spec = make_package(tmp_path / "pkg", probe_model(BOMB_SETUP, ["fork_bomb()", "thread_bomb()"], at="forward"),
                        num_classes=2)  # fmt: skip
    with open_sandbox(spec, limits=limits, device="cpu") as sb:
        if not sb.details["nproc_enforced"]:
            pytest.skip("RLIMIT_NPROC is not enforced for a root host uid (no uid drop here)")
        forks, threads = sb.infer(x(1))[0].tolist()
        assert 0 < forks < 48 and 0 <= threads < 48
        procs = _live_descendants(sb.pid)
        assert len(procs) >= forks  # the forked children are alive inside the sandbox...
    deadline = time.monotonic() + 5
    while [p for p in procs if _running(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in procs if _running(p)], "forked children survived the sandbox"


def test_thread_bomb_bounded_with_all_layers(tmp_path: Path, parent_ok) -> None:
    spec = make_package(
        tmp_path / "pkg", probe_model(BOMB_SETUP, ["thread_bomb()"], at="forward"), num_classes=1
    )
    with open_sandbox(spec, limits=dataclasses.replace(ALL, max_tasks=64), device="cpu") as sb:
        if not sb.details["nproc_enforced"]:
            pytest.skip("RLIMIT_NPROC is not enforced for a root host uid (no uid drop here)")
        assert 0 < sb.infer(x(1))[0, 0] < 64


# ---------------------------------------------------------------------------------------------- time, memory, crashes


LOOP_FORWARD = """
import torch
class Loop(torch.nn.Module):
    def forward(self, x):
        while True:
            pass
def load_model(weights_path, num_classes=2, **kwargs):
    return Loop()
"""


def test_infinite_loop_in_forward_times_out(tmp_path: Path, parent_ok) -> None:
    spec = make_package(tmp_path / "pkg", LOOP_FORWARD)
    sb = open_sandbox(spec, limits=dataclasses.replace(ALL, infer_timeout_s=1.0), device="cpu")
    pid = sb.pid
    t0 = time.monotonic()
    with pytest.raises(
        SandboxTimeout, match=r"timed out during inference \(no answer within 1 s\); the child was killed"
    ):
        sb.infer(x(1))
    assert time.monotonic() - t0 < 10
    assert sb.closed
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    with pytest.raises(SandboxClosed):
        sb.infer(x(1))


def test_infinite_loop_in_load_times_out(tmp_path: Path, parent_ok) -> None:
    spec = make_package(
        tmp_path / "pkg", "def load_model(weights_path, num_classes=2):\n    while True:\n        pass\n"
    )
    with pytest.raises(SandboxTimeout, match="timed out during load"):
        open_sandbox(spec, limits=dataclasses.replace(ALL, startup_timeout_s=3.0), device="cpu")


def test_50gb_allocation_hits_memory_limit(tmp_path: Path, parent_ok) -> None:
    source = "import torch\ndef load_model(weights_path, num_classes=2):\n    torch.empty(int(50e9), dtype=torch.uint8)\n"
    spec = make_package(tmp_path / "pkg", source)
    with pytest.raises(SandboxLoadError, match=r"(?i)allocate|memory"):
        open_sandbox(spec, limits=ALL, device="cpu")


CRASH_MODEL = """
import os, torch, faulthandler
class Crash(torch.nn.Module):
    def forward(self, x):
        faulthandler._sigsegv()
def load_model(weights_path, num_classes=2, **kwargs):
    if kwargs.get("exit_at_load"):
        print("goodbye from the model")
        os._exit(7)
    return Crash()
"""


def test_crashes_are_reported(tmp_path: Path, parent_ok) -> None:
    spec = make_package(tmp_path / "a", CRASH_MODEL)
    sb = open_sandbox(spec, limits=ALL, device="cpu")
    with pytest.raises(SandboxCrashed, match="killed by SIGSEGV"):
        sb.infer(x(1))
    assert sb.closed
    spec = make_package(tmp_path / "b", CRASH_MODEL, model_kwargs={"exit_at_load": True})
    with pytest.raises(
        SandboxCrashed, match=r"died during load: exited with status 7(.|\n)*goodbye from the model"
    ):
        open_sandbox(spec, limits=ALL, device="cpu")


# ---------------------------------------------------------------------------------------------- escape hatches


ESCAPE_SETUP = """
import importlib
def builtin_import(name):
    b = __builtins__
    return (b["__import__"] if isinstance(b, dict) else b.__import__)(name)
def subclass_popen():
    popen = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "Popen"][0]
    return popen(["/bin/sh", "-c", "touch /tmp/e3"]).wait() == 0
def load_libc():
    torch.ops.load_library("libc.so.6")
    return True
def gc_walk():
    return len(importlib.import_module("gc").get_objects()) > 0
"""
ESCAPE_PROBES = [
    "importlib.import_module('ctypes').CDLL(None).system(b'touch /tmp/e1') == 0 or os.path.exists('/tmp/e1')",
    "builtin_import('subprocess').Popen(['/bin/true']).wait() == 0",
    "builtin_import('os').system('touch /tmp/e2') == 0 or os.path.exists('/tmp/e2')",
    "subclass_popen() or os.path.exists('/tmp/e3')",
    "sys.modules['posix'].system('true') == 0",
    "load_libc()",
    "gc_walk()",
    "sys.addaudithook(lambda *a: None) is None and False",
]


def test_escape_hatches_blocked_by_audit_hook(tmp_path: Path, parent_ok) -> None:
    row, violations = run_probes(tmp_path, ESCAPE_SETUP, ESCAPE_PROBES, ALL)
    assert row.tolist() == [0.0] * len(ESCAPE_PROBES)
    kinds = {v.split("(")[0] for v in violations}
    assert {"ctypes.dlopen", "subprocess.Popen", "os.system", "gc.get_objects", "sys.addaudithook"} <= kinds


SECCOMP_PROBES_SETUP = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def native_fork():
    pid = libc.fork()
    if pid == 0:
        libc._exit(0)
    return pid > 0
"""
SECCOMP_PROBES = [
    "libc.system(b'touch /tmp/s1') == 0 or os.path.exists('/tmp/s1')",
    "native_fork()",
    "libc.socket(2, 1, 0) >= 0",  # AF_INET
    "libc.unshare(0x10000000) == 0",  # CLONE_NEWUSER
    "libc.ptrace(0, 0, 0, 0) == 0",  # PTRACE_TRACEME
    "libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) == 0",
    "libc.socket(1, 1, 0) >= 0",  # AF_UNIX stays allowed (sanity: the probe itself works)
]


def test_native_code_contained_by_seccomp(tmp_path: Path, parent_ok) -> None:
    row, _ = run_probes(tmp_path, SECCOMP_PROBES_SETUP, SECCOMP_PROBES, SECCOMP_ONLY)
    assert row.tolist() == [0.0] * (len(SECCOMP_PROBES) - 1) + [1.0]


# ---------------------------------------------------------------------------------------------- protocol


FORGER = """
import json, os, stat, torch
class Forger(torch.nn.Module):
    def forward(self, x):
        b = x.shape[0] + 1
        fake = json.dumps({"ok": True, "seq": 1, "shape": [b, 2], "nbytes": 8 * b}).encode() + b"\\n" + bytes(8 * b)
        for fd in range(3, 64):
            try:
                if stat.S_ISFIFO(os.fstat(fd).st_mode):
                    os.write(fd, fake)
            except OSError:
                pass
        return torch.zeros(x.shape[0], 2)
def load_model(weights_path, num_classes=2, **kwargs):
    return Forger()
"""


def test_forged_protocol_answer_is_rejected_by_parent(tmp_path: Path, parent_ok) -> None:
    spec = make_package(tmp_path / "pkg", FORGER)
    sb = open_sandbox(spec, limits=ALL, device="cpu")
    with pytest.raises(SandboxOutputError, match="3 rows for a batch of 2"):
        sb.infer(x(2))
    assert sb.closed  # a child that lies about its output is not trusted again


# ---------------------------------------------------------------------------------------------- afterwards


def test_fresh_valid_sandbox_after_all_attacks(tmp_path: Path, valid_sb) -> None:
    spec = make_package(tmp_path / "pkg", VALID_MODEL, weights=valid_weights())
    work = tmp_path / "work"
    work.mkdir()
    with open_sandbox(spec, limits=dataclasses.replace(ALL, work_dir=work), device="cpu") as sb:
        assert sb.isolation is Isolation.BWRAP
        np.testing.assert_array_equal(sb.infer(x(3)), valid_sb.expected)
        assert len(list(work.iterdir())) == 1
    assert not list(work.iterdir()), "scratch dir leaked"
