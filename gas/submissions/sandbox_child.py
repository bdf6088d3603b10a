"""Sandbox child: loads ONE untrusted detector package and answers inference requests.

Only ``gas/submissions/sandbox.py`` starts this file, by path, with the parent's interpreter. It is
self-contained on purpose (stdlib + numpy + torch): it never imports ``gas``, so the repository does
not have to be visible inside the sandbox. Nothing here trusts the model; the parent checks every
answer again.

Start-up order (every step happens before any miner code runs):
  1. keep private copies of the protocol pipes; fd 0 becomes /dev/null and fd 1 is pointed at stderr,
     so a model's ``print`` cannot corrupt the protocol;
  2. read the one-line JSON config from the parent;
  3. drop to the unprivileged uid (bwrap as root only), set no_new_privs;
  4. set the rlimits (address space, CPU seconds, open files, tasks, file size, no core files);
  5. import numpy and torch, pick the device, initialise CUDA;
  6. install the seccomp filter (x86_64): no fork/vfork/non-thread clone, no execve, no ptrace, no
     mount/unshare/setns, no bpf/perf/io_uring/userfaultfd/keyctl, sockets only AF_UNIX;
  7. install the audit hook (defence in depth: process, network, ctypes, file-system policy);
  8. import model.py and call load_model().

Wire protocol, one JSON line per message:
  parent -> child: config line, then {"op": "infer", "seq": n, "shape": [...], "dtype": "uint8"} or
                   {"op": "close"}; the batch itself is the raw file <io_dir>/input.bin
  child -> parent: {"op": "ready", ...} or {"op": "ready", "ok": false, "stage": ..., "error": ...};
                   per request {"ok": true, "seq": n, "shape": [B, C], "nbytes": 4*B*C, ...} followed by
                   exactly nbytes of little-endian float32, or {"ok": false, "seq": n, "stage": ...,
                   "error": ...}
Nothing is ever pickled.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

MAX_LINE = 1 << 20
MAX_ERROR = 2000
MAX_VIOLATIONS = 100

_violations: list[str] = []
_reported = 0


class SandboxPolicyError(PermissionError, RuntimeError):
    """Raised by the audit hook. A RuntimeError too, so a blocked sys.addaudithook fails silently."""


class OutputError(Exception):
    """The model's output is not logits of shape [B, C]."""


# --------------------------------------------------------------------------------------------------
# protocol helpers


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _short(text: str, limit: int = MAX_ERROR) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 15] + " ...[truncated]"


def _error_text(exc: BaseException) -> str:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    # the last frames are the useful ones; keep the message last so truncation keeps it
    tail = "".join(tb[-4:])
    head = f"{type(exc).__name__}: {exc}"
    return _short(head + "\n" + tail[-(MAX_ERROR // 2) :], MAX_ERROR)


class Channel:
    def __init__(self, rfd: int, wfd: int) -> None:
        self._r = os.fdopen(rfd, "rb", buffering=1 << 16)
        self._w = wfd

    def read_msg(self) -> dict | None:
        line = self._r.readline(MAX_LINE)
        if not line:
            return None
        if not line.endswith(b"\n"):
            raise ValueError("request line too long")
        msg = json.loads(line)
        if not isinstance(msg, dict):
            raise ValueError("request is not an object")
        return msg

    def send(self, msg: dict, payload: bytes = b"") -> None:
        global _reported
        fresh = _violations[_reported:]
        _reported = len(_violations)
        if fresh:
            msg["violations"] = fresh
        _write_all(self._w, json.dumps(msg).encode() + b"\n" + payload)


# --------------------------------------------------------------------------------------------------
# privileges, rlimits, seccomp


def _drop_uid(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid):
        raise RuntimeError("uid drop did not take effect")
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("CapEff:") and int(line.split()[1], 16) != 0:
                raise RuntimeError("capabilities left after uid drop")


def _libc():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return ctypes, libc


def _no_new_privs() -> None:
    ctypes, libc = _libc()
    pr_set_no_new_privs = 38
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def _apply_rlimits(limits: dict) -> dict:
    import resource

    names = {
        "as": resource.RLIMIT_AS,
        "cpu": resource.RLIMIT_CPU,
        "nofile": resource.RLIMIT_NOFILE,
        "nproc": resource.RLIMIT_NPROC,
        "fsize": resource.RLIMIT_FSIZE,
        "core": resource.RLIMIT_CORE,
    }
    applied = {}
    for key, value in limits.items():
        if value is None or key not in names:
            continue
        res = names[key]
        _soft, hard = resource.getrlimit(res)
        value = int(value)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(res, (value, value))
        applied[key] = value
    return applied


# x86_64 syscall numbers (asm/unistd_64.h)
_DENY_X86_64 = {
    "fork": 57,
    "vfork": 58,
    "execve": 59,
    "execveat": 322,
    "ptrace": 101,
    "syslog": 103,
    "uselib": 134,
    "vhangup": 153,
    "pivot_root": 155,
    "chroot": 161,
    "acct": 163,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "iopl": 172,
    "ioperm": 173,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "lookup_dcookie": 212,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "fanotify_init": 300,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "pidfd_getfd": 438,
    "process_madvise": 440,
    "mount_setattr": 442,
    "quotactl_fd": 443,
}


def _seccomp_program() -> list[tuple[int, int, int, int]]:
    """A small classic-BPF filter (x86_64). Returns (code, jt, jf, k) tuples."""
    ld_abs, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill = 0x7FFF0000, 0x80000000
    errno_eperm, errno_enosys = 0x00050000 | 1, 0x00050000 | 38
    audit_arch_x86_64 = 0xC000003E
    nr_clone, nr_clone3, nr_socket, nr_ioctl = 56, 435, 41, 16
    clone_thread, af_unix, tiocsti = 0x00010000, 1, 0x5412
    off_nr, off_arch, off_arg0, off_arg1 = 0, 4, 16, 24

    prog: list[tuple] = []  # entries: (code, jt_label, jf_label, k); labels are str or 0

    def jump(code: int, k: int, jt, jf) -> None:
        prog.append((code, jt, jf, k))

    labels: dict[str, int] = {}

    def label(name: str) -> None:
        labels[name] = len(prog)

    prog.append((ld_abs, 0, 0, off_arch))
    jump(jeq, audit_arch_x86_64, 0, "kill")
    prog.append((ld_abs, 0, 0, off_nr))
    jump(jge, 0x40000000, "deny", 0)  # x32 ABI
    for nr in sorted(set(_DENY_X86_64.values())):
        jump(jeq, nr, "deny", 0)
    jump(jeq, nr_clone, "clone", 0)
    jump(jeq, nr_clone3, "enosys", 0)
    jump(jeq, nr_socket, "socket", 0)
    jump(jeq, nr_ioctl, "ioctl", 0)
    prog.append((ret, 0, 0, allow))
    label("clone")
    prog.append((ld_abs, 0, 0, off_arg0))
    jump(jset, clone_thread, "allow", "deny")
    label("socket")
    prog.append((ld_abs, 0, 0, off_arg0))
    jump(jeq, af_unix, "allow", "deny")
    label("ioctl")
    prog.append((ld_abs, 0, 0, off_arg1))
    jump(jeq, tiocsti, "deny", "allow")
    label("allow")
    prog.append((ret, 0, 0, allow))
    label("deny")
    prog.append((ret, 0, 0, errno_eperm))
    label("enosys")
    prog.append((ret, 0, 0, errno_enosys))
    label("kill")
    prog.append((ret, 0, 0, kill))

    out = []
    for i, (code, jt, jf, k) in enumerate(prog):

        def rel(target, i=i):
            if target == 0:
                return 0
            off = labels[target] - (i + 1)
            if not 0 <= off <= 255:
                raise ValueError("seccomp jump out of range")
            return off

        out.append((code, rel(jt), rel(jf), k))
    return out


def _install_seccomp() -> str:
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        return f"skipped (no filter for {platform.machine()})"
    ctypes, libc = _libc()

    class SockFilter(ctypes.Structure):
        _fields_ = [
            ("code", ctypes.c_ushort),
            ("jt", ctypes.c_ubyte),
            ("jf", ctypes.c_ubyte),
            ("k", ctypes.c_uint32),
        ]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    prog = _seccomp_program()
    arr = (SockFilter * len(prog))(*[SockFilter(*ins) for ins in prog])
    fprog = SockFprog(len(prog), arr)
    nr_seccomp, set_mode_filter, flag_tsync = 317, 1, 1
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(
        ctypes.c_long(nr_seccomp),
        ctypes.c_uint(set_mode_filter),
        ctypes.c_uint(flag_tsync),
        ctypes.byref(fprog),
    )
    if rc != 0:
        raise OSError(ctypes.get_errno(), f"seccomp(SET_MODE_FILTER, TSYNC) failed (rc={rc})")
    return "on"


# --------------------------------------------------------------------------------------------------
# audit hook

_BLOCKED_EVENTS = frozenset(
    {
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "os.startfile",
        "subprocess.Popen",
        "pty.spawn",
        "os.kill",
        "os.killpg",
        "signal.pthread_kill",
        "signal.pidfd_send_signal",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "urllib.Request",
        "http.client.connect",
        "http.client.send",
        "ftplib.connect",
        "smtplib.connect",
        "smtplib.send",
        "poplib.connect",
        "imaplib.open",
        "nntplib.connect",
        "telnetlib.Telnet.open",
        "webbrowser.open",
        "sys.remote_exec",
        "cpython.remote_debugger_script",
    }
)
_BLOCKED_PREFIXES = ("socket.", "ctypes.", "_ctypes.", "winreg.", "msvcrt.")
_ALLOWED_SOCKET_EVENTS = frozenset({"socket.gethostname"})
_BLOCKED_IMPORTS = frozenset(
    {
        "socket",
        "_socket",
        "ssl",
        "_ssl",
        "subprocess",
        "_posixsubprocess",
        "ctypes",
        "_ctypes",
        "cffi",
        "_cffi_backend",
        "multiprocessing",
        "_multiprocessing",
        "pty",
        "socketserver",
        "http.client",
        "http.server",
        "urllib.request",
        "urllib3",
        "requests",
        "httpx",
        "aiohttp",
        "ftplib",
        "smtplib",
        "poplib",
        "imaplib",
        "nntplib",
        "telnetlib",
        "xmlrpc.client",
        "webbrowser",
        "paramiko",
        "torch.utils.cpp_extension",
        "concurrent.futures.process",
    }
)
_PICKLE_DENY_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "socket",
        "sys",
        "shutil",
        "importlib",
        "runpy",
        "ctypes",
        "pty",
        "code",
        "codeop",
        "webbrowser",
        "multiprocessing",
        "_posixsubprocess",
        "io",
        "_io",
    }
)
_PICKLE_DENY_BUILTINS = frozenset({"eval", "exec", "compile", "__import__", "open", "breakpoint", "input"})
_PATH_WRITE_EVENTS = frozenset(
    {
        "os.mkdir",
        "os.rmdir",
        "os.remove",
        "os.chmod",
        "os.chown",
        "os.utime",
        "os.truncate",
        "os.setxattr",
        "os.removexattr",
        "os.chflags",
        "os.lchflags",
        "os.lchmod",
        "os.lchown",
    }
)
_PATH_PAIR_WRITE_EVENTS = frozenset({"os.rename", "os.link"})


def _install_audit_hook(read_roots: list[str], write_roots: list[str], read_files: list[str]) -> None:
    # Everything the hook uses is bound here, so later monkey-patching of this module's globals by
    # the model does not change the policy.
    import pathlib

    realpath, abspath, fsdecode, fspath = os.path.realpath, os.path.abspath, os.fsdecode, os.fspath
    sep = os.sep
    path_types = (str, bytes, pathlib.PosixPath, pathlib.PurePosixPath)
    blocked_events, blocked_prefixes = _BLOCKED_EVENTS, _BLOCKED_PREFIXES
    allowed_socket, blocked_imports = _ALLOWED_SOCKET_EVENTS, _BLOCKED_IMPORTS
    pickle_deny_mod, pickle_deny_builtins = _PICKLE_DENY_MODULES, _PICKLE_DENY_BUILTINS
    path_write, pair_write = _PATH_WRITE_EVENTS, _PATH_PAIR_WRITE_EVENTS
    policy_error, short, max_violations = SandboxPolicyError, _short, MAX_VIOLATIONS
    # where the dir_fd argument sits in each path event's arguments
    dir_fd_index = {"os.mkdir": 2, "os.rmdir": 1, "os.remove": 1, "os.chmod": 2, "os.chown": 3, "os.utime": 3}
    own_proc = f"/proc/{os.getpid()}"

    def norm_root(p: str) -> str:
        p = realpath(p)
        return p if p.endswith(sep) else p + sep

    w_roots = tuple(norm_root(p) for p in write_roots)
    r_roots = tuple(norm_root(p) for p in read_roots) + w_roots + (own_proc + sep,)
    r_files = frozenset(realpath(p) for p in read_files) | {own_proc}
    w_files = frozenset({"/dev/null"})
    o_write = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    violations = _violations

    def resolve(path) -> str | None:
        if path is None or type(path) is int:
            return None
        if type(path) not in path_types:  # a custom __fspath__ could answer differently next time
            return f"<{type(path).__name__} object>"
        try:
            return realpath(abspath(fsdecode(fspath(path))))
        except Exception:
            return "<unresolvable path>"

    def under(p: str, roots: tuple[str, ...]) -> bool:
        q = p + sep
        return any(q.startswith(r) for r in roots)

    def deny(event: str, detail: str) -> None:
        msg = short(f"{event}({detail})", 300)
        if len(violations) < max_violations:
            violations.append(msg)
        raise policy_error(f"blocked by sandbox policy: {msg}")

    def relative_to_fd(event: str, path, dir_fd) -> None:
        # A relative path with dir_fd resolves against that directory, not the cwd we check against.
        if dir_fd is not None and dir_fd != -100 and type(path) in path_types:  # -100: AT_FDCWD
            if not fsdecode(fspath(path)).startswith(sep):
                deny(event, f"relative path {fsdecode(fspath(path))!r} with dir_fd")

    def check_write(event: str, path) -> None:
        p = resolve(path)
        if p is None or p in w_files or under(p, w_roots):
            return
        deny(event, f"write {p}")

    def check_read(event: str, path) -> None:
        p = resolve(path)
        if p is None or p in r_files or p in w_files or under(p, r_roots):
            return
        deny(event, f"read {p}")

    def hook(event: str, args: tuple) -> None:
        try:
            check(event, args)
        except policy_error:
            raise
        except Exception as exc:  # a malformed argument must not slip through
            deny(event, f"uninspectable arguments: {type(exc).__name__}")

    def check(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            if isinstance(mode, str):
                writing = any(c in mode for c in "wax+")
            else:
                writing = bool((flags or 0) & o_write)
            if mode is None:  # os.open(): its dir_fd is not in the event, so insist on absolute paths
                relative_to_fd("os.open", path, 0)
            (check_write if writing else check_read)("open", path)
        elif event == "import":
            name = args[0] if args else ""
            if isinstance(name, str) and (
                name in blocked_imports or name.partition(".")[0] in blocked_imports
            ):
                deny("import", name)
        elif event in blocked_events:
            deny(event, short(repr(args)[:200], 200))
        elif event.startswith(blocked_prefixes) and event not in allowed_socket:
            deny(event, short(repr(args)[:200], 200))
        elif event in ("os.listdir", "os.scandir"):
            check_read(event, args[0] if args else None)
        elif event in path_write:
            fd_at = dir_fd_index.get(event)
            if fd_at is not None and len(args) > fd_at:
                relative_to_fd(event, args[0], args[fd_at])
            check_write(event, args[0] if args else None)
        elif event in pair_write:
            for i in (0, 1):
                if len(args) > i + 2:
                    relative_to_fd(event, args[i], args[i + 2])
            check_write(event, args[0] if args else None)
            check_write(event, args[1] if len(args) > 1 else None)
        elif event == "os.symlink":
            if len(args) > 2:
                relative_to_fd(event, args[1], args[2])
            check_write(event, args[1] if len(args) > 1 else None)
        elif event == "sqlite3.connect":
            db = args[0] if args else None
            if db not in (":memory:", b":memory:", ""):
                check_write(event, db)
        elif event == "pickle.find_class":
            mod, name = (tuple(args) + ("", ""))[:2]
            top = str(mod).partition(".")[0]
            if top in pickle_deny_mod or (top == "builtins" and name in pickle_deny_builtins):
                deny(event, f"{mod}.{name}")
        elif event == "sys.addaudithook":
            if len(violations) < max_violations:
                violations.append("sys.addaudithook()")
            raise policy_error("blocked by sandbox policy: sys.addaudithook")

    sys.addaudithook(hook)


# --------------------------------------------------------------------------------------------------
# model


def _unwrap(out, torch):
    if not isinstance(out, torch.Tensor) and hasattr(out, "logits"):
        out = out.logits
    if isinstance(out, dict):
        if "logits" in out:
            out = out["logits"]
        elif "output" in out:
            out = out["output"]
        elif len(out) == 1:
            out = next(iter(out.values()))
        else:
            raise OutputError(f"dict output has no 'logits' or 'output' key and {len(out)} values")
    if isinstance(out, (tuple, list)):
        if len(out) != 1:
            raise OutputError(f"{type(out).__name__} output of length {len(out)} (expected a tensor)")
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise OutputError(f"output must be a torch.Tensor of logits, got {type(out).__name__}")
    return out


def _check_output(out, batch: int, allowed_c: set[int], torch):
    if not out.is_floating_point():
        raise OutputError(f"logits must be floating point, got dtype {out.dtype}")
    shape = tuple(int(s) for s in out.shape)
    if len(shape) != 2:
        raise OutputError(f"logits must have shape [B, C], got {list(shape)}")
    if shape[0] != batch:
        raise OutputError(f"logits have {shape[0]} rows for a batch of {batch}")
    if shape[1] not in allowed_c:
        raise OutputError(f"logits have C={shape[1]} columns; allowed: {sorted(allowed_c)}")
    return out.detach().to(device="cpu", dtype=torch.float32).contiguous().numpy()


def _load(cfg: dict, torch):
    import importlib.util

    pkg = cfg["package_dir"]
    model_path = os.path.join(pkg, cfg["model_file"])
    weights_path = os.path.join(pkg, cfg["weights_file"])
    spec = importlib.util.spec_from_file_location("custom_model", model_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {cfg['model_file']}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["custom_model"] = module
    spec.loader.exec_module(module)
    load_model = getattr(module, "load_model", None)
    if not callable(load_model):
        raise TypeError(f"{cfg['model_file']} does not define a callable load_model()")
    kwargs = dict(cfg["model_kwargs"])
    kwargs["num_classes"] = cfg["num_classes"]
    try:
        model = load_model(weights_path, **kwargs)
    except TypeError:
        # the reference harness retries with num_classes only (also for TypeErrors from inside)
        model = load_model(weights_path, num_classes=cfg["num_classes"])
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"load_model() must return a torch.nn.Module, got {type(model).__name__}")
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[cfg["dtype"]]
    model = model.to(device=cfg["device"], dtype=dtype)
    model.eval()
    return model


# --------------------------------------------------------------------------------------------------


def main() -> int:
    # 1. protocol pipes: private duplicates; fd 0 -> /dev/null, fd 1 -> stderr
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    chan = Channel(proto_in, proto_out)

    t0 = time.monotonic()
    stage = "config"
    info: dict = {"op": "ready", "ok": False}
    try:
        cfg = chan.read_msg()
        if cfg is None:
            return 2
        stage = "setup"
        if cfg.get("drop_uid") is not None:
            _drop_uid(int(cfg["drop_uid"]))
        _no_new_privs()
        info["rlimits"] = _apply_rlimits(cfg.get("rlimits", {}))
        info["uid"] = os.getuid()

        stage = "import"
        import numpy as np
        import torch

        threads = int(cfg.get("threads") or 1)
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        device = cfg.get("device", "auto")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise RuntimeError(f"device {device!r} requested but CUDA is not available in the sandbox")
            dev = torch.device(device)
            if dev.index is None:  # "cuda" means the current device; set_device needs an index
                dev = torch.device("cuda", torch.cuda.current_device())
            torch.cuda.set_device(dev)
            torch.cuda.init()
            torch.empty(1, device=dev)  # create the context before the filters go up
            if cfg.get("gpu_memory_fraction"):
                torch.cuda.set_per_process_memory_fraction(float(cfg["gpu_memory_fraction"]), dev)
        cfg["device"] = device
        info.update(torch=torch.__version__, numpy=np.__version__, device=device, threads=threads)

        stage = "seccomp"
        info["seccomp"] = _install_seccomp() if cfg.get("seccomp", True) else "off"
        stage = "audit"
        if cfg.get("audit_hook", True):
            _install_audit_hook(cfg["read_roots"], cfg["write_roots"], cfg.get("read_files", []))
            info["audit_hook"] = "on"
        else:
            info["audit_hook"] = "off"

        stage = "load"
        model = _load(cfg, torch)
        try:
            info["params"] = int(sum(p.numel() for p in model.parameters()))
        except Exception:
            info["params"] = -1
    except BaseException as exc:
        info.update(ok=False, stage=stage, error=_error_text(exc))
        chan.send(info)
        return 3
    info.update(ok=True, load_s=round(time.monotonic() - t0, 4), pid=os.getpid())
    chan.send(info)

    io_path = os.path.join(cfg["io_dir"], "input.bin")
    nc = int(cfg["num_classes"])
    allowed_c = {1, 2, 3, nc}
    in_shape = tuple(int(s) for s in cfg["input_shape"])
    in_dtype = np.dtype(cfg["input_dtype"])
    device = cfg["device"]

    while True:
        try:
            req = chan.read_msg()
        except Exception as exc:
            chan.send({"ok": False, "seq": -1, "stage": "protocol", "error": _error_text(exc)})
            return 4
        if req is None or req.get("op") == "close":
            return 0
        seq = req.get("seq")
        try:
            shape = tuple(int(s) for s in req["shape"])
            if req.get("op") != "infer" or shape[1:] != in_shape or np.dtype(req["dtype"]) != in_dtype:
                raise ValueError(f"bad request {req!r}")
            count = 1
            for s in shape:
                count *= s
            arr = np.fromfile(io_path, dtype=in_dtype)
            if arr.size != count:
                raise ValueError(f"input file holds {arr.size} values, expected {count}")
            x = torch.from_numpy(arr.reshape(shape)).to(device)
        except BaseException as exc:
            chan.send({"ok": False, "seq": seq, "stage": "input", "error": _error_text(exc)})
            continue
        t1 = time.perf_counter()
        try:
            with torch.inference_mode():
                raw = model(x)
            out = _unwrap(raw, torch)
            logits = _check_output(out, shape[0], allowed_c, torch)
        except OutputError as exc:
            chan.send({"ok": False, "seq": seq, "stage": "output", "error": _short(str(exc))})
            continue
        except BaseException as exc:
            chan.send({"ok": False, "seq": seq, "stage": "infer", "error": _error_text(exc)})
            continue
        payload = logits.astype("<f4", copy=False).tobytes()
        forward_s = time.perf_counter() - t1
        chan.send(
            {
                "ok": True,
                "seq": seq,
                "shape": list(logits.shape),
                "nbytes": len(payload),
                "forward_s": round(forward_s, 6),
                "pid": os.getpid(),
            },
            payload,
        )


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
