"""``validate_package``: every pre-run check, each recorded, so a miner sees all problems at once.

Checks, in order (a ``layout`` failure skips the rest, since nothing was safely extracted):

1. ``layout``: zip safety or directory scan (paths, symlinks, encryption, counts, sizes, zip bombs),
   then streamed extraction;
2. ``files``: allowed names, per-file size limits, required files present;
3. ``config``: ``model_config.yaml`` schema, ``model.weights_file`` present;
4. ``safetensors``: every ``.safetensors`` header parsed and checked (never unpickled);
5. ``static``: the AST pre-filter of ``model.py`` (a pre-filter only; the sandbox is the boundary);
6. ``smoke``: an optional callback, given the loaded package, that runs it (in the sandbox).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gas.submissions.package import ModelPackage, PackageError, PackageLimits, _Pipeline
from gas.types import Modality

_STAGE_TITLES = {
    "layout": "archive layout and zip safety",
    "files": "files and size limits",
    "config": "model_config.yaml",
    "safetensors": "safetensors headers",
    "static": "model.py static pre-filter",
    "smoke": "smoke run",
}


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome. ``problems`` holds one line per problem, ``ids`` their check ids."""

    name: str
    ok: bool
    detail: str = ""
    duration_s: float = 0.0
    skipped: bool = False
    problems: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()

    def __str__(self) -> str:
        state = "skipped" if self.skipped else ("ok" if self.ok else "FAILED")
        return f"{self.name}: {state}" + (f": {self.detail}" if self.detail else "")

    @property
    def title(self) -> str:
        return _STAGE_TITLES.get(self.name, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "skipped": self.skipped,
            "detail": self.detail,
            "duration_s": round(self.duration_s, 4),
            "problems": list(self.problems),
            "ids": list(self.ids),
        }


@dataclass
class ValidationReport:
    """All check results for one package. ``package`` is set when every pre-run check passed.

    A zip is extracted into a temporary directory owned by ``package``; call :meth:`cleanup` (or
    ``report.package.cleanup()``) when done with it.
    """

    source: Path
    results: list[CheckResult] = field(default_factory=list)
    package: ModelPackage | None = None

    @property
    def ok(self) -> bool:
        return self.package is not None and all(r.ok for r in self.results if not r.skipped)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok and not r.skipped]

    @property
    def errors(self) -> list[str]:
        """One readable line per problem, prefixed with its check's name."""
        return [f"{r.name}: {line}" for r in self.failures for line in (r.problems or (r.detail,))]

    def result(self, name: str) -> CheckResult | None:
        return next((r for r in self.results if r.name == name), None)

    def cleanup(self) -> None:
        if self.package is not None:
            self.package.cleanup()

    def to_dict(self) -> dict[str, Any]:
        pkg = self.package
        return {
            "source": str(self.source),
            "ok": self.ok,
            "sha256": pkg.sha256 if pkg else None,
            "modality": pkg.modality.value if pkg else None,
            "files": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in pkg.files] if pkg else [],
            "checks": [r.to_dict() for r in self.results],
        }


def _problem_lines(problems: list[PackageError]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    lines: list[str] = []
    ids: list[str] = []
    for p in problems:
        findings = getattr(p, "findings", None)
        if findings:
            lines += [f"{p.file or 'model.py'}:{f.line}:{f.col}: [{f.rule}] {f.message}" for f in findings]
            ids += [p.check] * len(findings)
        else:
            sub = str(p).splitlines() or [p.check]
            lines += sub
            ids += [p.check] * len(sub)
    return tuple(lines), tuple(ids)


def _fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _ok_detail(stage: str, pipe: _Pipeline) -> str:
    if stage == "layout":
        kind = "zip" if pipe.is_zip else "directory"
        return f"{kind}, {len(pipe.members)} files"
    if stage == "files":
        kept = pipe.kept()
        return ", ".join(f"{m.name} ({_fmt_bytes(m.size)})" for m in kept)
    if stage == "config" and pipe.config is not None:
        c = pipe.config
        text = f"{c.name}: {c.modality.value}, {c.dtype}, {c.model.num_classes} classes"
        if c.warnings:
            text += "; warnings: " + "; ".join(c.warnings)
        return text
    if stage == "safetensors":
        return "; ".join(
            f"{n}: {i.tensors} tensors, {i.parameters} parameters" for n, i in pipe.safetensors_info.items()
        )
    if stage == "static":
        return "model.py: no findings (a pre-filter; the code still runs only in the sandbox)"
    return ""


def validate_package(
    path: str | os.PathLike[str],
    *,
    limits: PackageLimits = PackageLimits(),
    smoke: Callable[[ModelPackage], CheckResult] | None = None,
    modality: Modality | str | None = None,
    dest: str | os.PathLike[str] | None = None,
) -> ValidationReport:
    """Run every check on a package (zip or directory) and report each; never raises for a bad package.

    ``modality`` is what the package is submitted as (fills a missing ``modality:`` key). ``smoke``
    runs only when every pre-run check passed; an exception it raises is recorded as its failure.
    """
    report = ValidationReport(source=Path(path))
    pipe = _Pipeline(path, dest=dest, limits=limits, modality=modality)
    failed = False
    try:
        for stage in _Pipeline.STAGES:
            t0 = time.perf_counter()
            problems = pipe.run(stage)
            dt = time.perf_counter() - t0
            if problems is None:
                reason = "earlier problems" if (pipe.fatal or failed) else "nothing to check"
                report.results.append(CheckResult(stage, False, f"skipped: {reason}", dt, skipped=True))
                failed = True
            elif problems:
                lines, ids = _problem_lines(problems)
                report.results.append(CheckResult(stage, False, "\n".join(lines), dt, problems=lines, ids=ids))
                failed = True
            else:
                report.results.append(CheckResult(stage, True, _ok_detail(stage, pipe), dt))
        if failed:
            pipe.abort()
        else:
            report.package = pipe.build()
    except BaseException:
        pipe.abort()
        raise

    if smoke is None:
        report.results.append(CheckResult("smoke", False, "skipped: no smoke run requested", skipped=True))
    elif report.package is None:
        report.results.append(CheckResult("smoke", False, "skipped: earlier problems", skipped=True))
    else:
        t0 = time.perf_counter()
        try:
            res = smoke(report.package)
        except Exception as exc:
            res = CheckResult("smoke", False, f"{type(exc).__name__}: {exc}", problems=(str(exc),), ids=("smoke",))
        dt = time.perf_counter() - t0
        if not res.duration_s:
            res = CheckResult(res.name, res.ok, res.detail, dt, res.skipped, res.problems, res.ids)
        report.results.append(res)
    return report
