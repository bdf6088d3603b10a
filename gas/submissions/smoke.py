"""The sandboxed smoke run: load a validated package in the sandbox and infer on random inputs.

This is the last check of ``gascli d validate`` and of ``gascli d push``: the package's own code
runs (only ever inside :mod:`gas.submissions.sandbox`) on seeded random inputs of the exact shape
and dtype the benchmark will feed it, and the logits must have the right shape and be finite.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from gas.submissions.config import input_dtype, input_shape
from gas.submissions.package import ModelPackage
from gas.submissions.validate import CheckResult


def sandbox_spec(package: ModelPackage):
    """The :class:`~gas.submissions.sandbox.SandboxSpec` that runs ``package`` as its config says."""
    from gas.submissions.sandbox import SandboxSpec

    cfg = package.config
    return SandboxSpec(
        package_dir=package.root,
        input_shape=input_shape(cfg, 1)[1:],
        input_dtype=input_dtype(cfg),
        num_classes=cfg.model.num_classes,
        weights_file=cfg.model.weights_file,
        dtype=cfg.dtype,
        model_kwargs=dict(cfg.model.extra_kwargs),
    )


def random_batch(package: ModelPackage, batch: int, seed: int) -> np.ndarray:
    """Seeded random inputs: uint8 pixels for image/video, float32 in [-1, 1] for audio."""
    cfg = package.config
    rng = np.random.default_rng(seed)
    shape = input_shape(cfg, batch)
    if input_dtype(cfg) == "uint8":
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


def smoke_check(
    package: ModelPackage,
    *,
    batch: int = 2,
    seed: int = 0,
    allow_unsandboxed: bool = False,
    limits=None,
) -> CheckResult:
    """Run ``package`` once in the sandbox; the result names the isolation level and the timings."""
    from gas.submissions.sandbox import SandboxError, SandboxLimits, open_sandbox

    t0 = time.perf_counter()
    num_classes = package.config.model.num_classes
    try:
        with open_sandbox(sandbox_spec(package), limits=limits or SandboxLimits(),
                          allow_unsandboxed=allow_unsandboxed) as box:
            started = time.perf_counter() - t0
            t1 = time.perf_counter()
            logits = box.infer(random_batch(package, batch, seed))
            infer_s = time.perf_counter() - t1
            isolation = getattr(box.isolation, "value", box.isolation)
    except SandboxError as e:
        return CheckResult("smoke", False, f"{type(e).__name__}: {e}", time.perf_counter() - t0,
                           problems=(f"smoke: {e}",), ids=("smoke",))
    problems = []
    if logits.ndim != 2 or logits.shape[0] != batch or logits.shape[1] not in {1, 2, 3, num_classes}:
        problems.append(f"smoke: logits have shape {list(logits.shape)}, expected [{batch}, C] "
                        f"with C in 1, 2, 3 or num_classes={num_classes}")
    elif not np.isfinite(logits).all():
        problems.append("smoke: logits contain NaN or inf on random inputs")
    detail = (f"isolation {isolation}, start {started:.2f}s, infer {infer_s * 1000:.0f} ms for "
              f"batch {batch} (seed {seed}), logits {list(logits.shape)}")
    return CheckResult("smoke", not problems, detail if not problems else problems[0],
                       time.perf_counter() - t0, problems=tuple(problems), ids=("smoke",) if problems else ())


def smoke_callback(**kwargs) -> Callable[[ModelPackage], CheckResult]:
    """``smoke_check`` with fixed options, in the shape ``validate_package(smoke=...)`` takes."""
    return lambda package: smoke_check(package, **kwargs)
