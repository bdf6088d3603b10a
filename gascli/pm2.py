"""A thin wrapper around the pm2 command line.

pm2 supervises the long-running daemons (the validator, the generative miner). We drive it through
subprocess rather than its programmatic API because that API is node-only. Every call goes through
:class:`PM2`, which finds the binary (PATH first, then the project-local ``.node/bin/pm2`` that
``install.sh`` creates) and honours ``PM2_HOME`` so tests and several checkouts stay apart.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The pm2 namespace every GAS app is started in; ``gascli status`` lists exactly these.
NAMESPACE = "gas"

INSTALL_HINT = "run ./install.sh (it installs pm2 into .node/) or 'npm install -g pm2'"


class PM2Error(RuntimeError):
    """pm2 failed; the message carries the command and what pm2 printed."""


class PM2NotFound(PM2Error):
    def __init__(self) -> None:
        super().__init__(f"pm2 not found on PATH or in .node/bin: {INSTALL_HINT}")


class ProcessNotFound(PM2Error):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no pm2 process named {name!r} (see 'gascli status')")


def project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def find_pm2(env: Mapping[str, str] | None = None) -> Path:
    """Locate pm2: ``GAS_PM2`` if set, then PATH, then ``<project>/.node/bin/pm2``."""
    env = os.environ if env is None else env
    explicit = env.get("GAS_PM2")
    if explicit:
        p = Path(explicit)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise PM2Error(f"GAS_PM2={explicit} is not an executable file")
    on_path = shutil.which("pm2", path=env.get("PATH"))
    if on_path:
        return Path(on_path)
    local = project_root() / ".node" / "bin" / "pm2"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    raise PM2NotFound()


@dataclass(frozen=True)
class ProcessInfo:
    """One row of ``pm2 jlist``, reduced to what we show and test."""

    name: str
    pm_id: int
    status: str
    pid: int | None
    namespace: str
    restarts: int
    uptime_ms: int | None
    memory: int | None
    cpu: float | None
    out_log: str | None
    err_log: str | None
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_jlist(cls, row: Mapping[str, Any]) -> ProcessInfo:
        env = row.get("pm2_env") or {}
        monit = row.get("monit") or {}
        pid = row.get("pid") or None
        return cls(
            name=str(row.get("name", "")),
            pm_id=int(row.get("pm_id", -1)),
            status=str(env.get("status", "unknown")),
            pid=int(pid) if pid else None,
            namespace=str(env.get("namespace", "default")),
            restarts=int(env.get("restart_time", 0) or 0),
            uptime_ms=env.get("pm_uptime"),
            memory=monit.get("memory"),
            cpu=monit.get("cpu"),
            out_log=env.get("pm_out_log_path"),
            err_log=env.get("pm_err_log_path"),
            raw=dict(row),
        )


def parse_jlist(output: str) -> list[dict[str, Any]]:
    """The JSON array in ``pm2 jlist`` output.

    pm2 prints its banner before the JSON when it spawns its daemon, and can append coloured
    warnings on the same line after it, so we take the last line that starts with a JSON array.
    """
    decoder = json.JSONDecoder()
    for line in reversed(output.splitlines()):
        if not line.startswith("["):
            continue
        try:
            rows, _ = decoder.raw_decode(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
            return rows
    raise PM2Error(f"no process list in 'pm2 jlist' output: {output[-300:]!r}")


class PM2:
    """pm2 operations. ``home`` sets ``PM2_HOME``; ``timeout`` bounds every non-streaming call."""

    def __init__(
        self,
        binary: Path | None = None,
        *,
        home: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        base_env = dict(os.environ if env is None else env)
        self.binary = binary or find_pm2(base_env)
        if home is not None:
            base_env["PM2_HOME"] = str(home)
        self.env = base_env
        self.timeout = timeout

    # -- plumbing ---------------------------------------------------------------------------
    def _run(self, args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
        cmd = [str(self.binary), *args]
        try:
            proc = subprocess.run(
                cmd,
                env={**self.env, **(env or {})},
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout,
            )
        except FileNotFoundError:
            raise PM2NotFound() from None
        except subprocess.TimeoutExpired:
            raise PM2Error(f"'pm2 {' '.join(args)}' did not finish within {self.timeout:.0f}s") from None
        if proc.returncode != 0:
            detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-5:]
            if any("not found" in line.lower() and "process" in line.lower() for line in detail):
                raise ProcessNotFound(args[-1])
            raise PM2Error(f"'pm2 {' '.join(args)}' failed (exit {proc.returncode}): " + " | ".join(detail))
        return proc.stdout

    # -- queries ----------------------------------------------------------------------------
    def jlist(self) -> list[ProcessInfo]:
        """All processes pm2 knows, parsed from ``pm2 jlist``."""
        return [ProcessInfo.from_jlist(r) for r in parse_jlist(self._run(["jlist"]))]

    def project_processes(self, namespace: str = NAMESPACE) -> list[ProcessInfo]:
        return [p for p in self.jlist() if p.namespace == namespace]

    def describe(self, name: str) -> ProcessInfo:
        for p in self.jlist():
            if p.name == name:
                return p
        raise ProcessNotFound(name)

    # -- actions ----------------------------------------------------------------------------
    def start(
        self, ecosystem: Path, *, only: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> list[ProcessInfo]:
        """Start (or reload) the apps of an ecosystem file; returns their rows afterwards."""
        ecosystem = Path(ecosystem).resolve()
        if not ecosystem.is_file():
            raise PM2Error(f"ecosystem file {ecosystem} does not exist")
        args = ["start", str(ecosystem)]
        if only:
            args += ["--only", ",".join(only)]
        self._run(args, env=env, cwd=ecosystem.parent)
        names = set(only) if only else None
        return [p for p in self.jlist() if names is None or p.name in names]

    def stop(self, name: str) -> None:
        self._run(["stop", name])

    def restart(self, name: str) -> None:
        self._run(["restart", name, "--update-env"])

    def delete(self, name: str) -> None:
        self._run(["delete", name])

    def kill(self) -> None:
        """Stop the pm2 daemon itself (used by tests with a private PM2_HOME)."""
        self._run(["kill"])

    def logs(self, name: str, *, lines: int = 50, follow: bool = False) -> str | None:
        """Recent log lines of stdout then stderr; with ``follow``, stream via ``pm2 logs`` until Ctrl-C.

        The recent lines are read from the log files pm2 reports for the process: ``pm2 logs
        --nostream`` drops the last stderr lines (seen with pm2 7.0.4) and wraps output in colour codes.
        """
        if lines < 0:
            raise ValueError("lines must be >= 0")
        if follow:
            try:
                subprocess.run(
                    [str(self.binary), "logs", name, "--lines", str(lines), "--raw"], env=self.env, check=False
                )
            except KeyboardInterrupt:
                pass
            return None
        info = self.describe(name)
        parts = []
        for label, path in (("stdout", info.out_log), ("stderr", info.err_log)):
            tail = _tail(Path(path), lines) if path else []
            parts.append(f"==> {name} {label} ({path}) <==\n" + "".join(tail))
        return "\n".join(parts)


def _tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a file, reading only its end."""
    if lines == 0 or not path.is_file():
        return []
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        block, data = 8192, b""
        while size > 0 and data.count(b"\n") <= lines:
            step = min(block, size)
            size -= step
            f.seek(size)
            data = f.read(step) + data
            block *= 2
    text = data.decode("utf-8", errors="replace").splitlines(keepends=True)
    out = text[-lines:]
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    return out
