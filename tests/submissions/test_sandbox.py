"""Sandbox: the valid path, output checks, load errors, lifecycle, isolation selection."""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
from sandbox_packages import INPUT_SHAPE, VALID_MODEL, make_package, require_bwrap, valid_weights

from gas.scoring.probabilities import maximally_wrong
from gas.submissions import sandbox as sbmod
from gas.submissions.sandbox import (
    Isolation,
    SandboxClosed,
    SandboxError,
    SandboxInferenceError,
    SandboxInputError,
    SandboxLimits,
    SandboxLoadError,
    SandboxOutputError,
    SandboxSpec,
    SandboxUnavailable,
    finite_rows,
    open_sandbox,
)

FAST = SandboxLimits(infer_timeout_s=30, startup_timeout_s=60)


def sopen(spec: SandboxSpec, **kwargs):
    """The best isolation available; these functional tests also run where there is none."""
    kwargs.setdefault("limits", FAST)
    kwargs.setdefault("device", "cpu")
    return open_sandbox(spec, allow_unsandboxed=True, **kwargs)


def batch(n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *INPUT_SHAPE), dtype=np.uint8)


@pytest.fixture(scope="module")
def valid_pkg(tmp_path_factory: pytest.TempPathFactory) -> SandboxSpec:
    return make_package(tmp_path_factory.mktemp("valid"), VALID_MODEL, weights=valid_weights())


@pytest.fixture(scope="module")
def valid_sb(valid_pkg: SandboxSpec):
    with sopen(valid_pkg) as sb:
        yield sb


def reference_logits(spec: SandboxSpec, x: np.ndarray) -> np.ndarray:
    """The same model run in-process (trusted test code) for comparison."""
    import torch

    mod_spec = importlib.util.spec_from_file_location("ref_model", spec.package_dir / "model.py")
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    model = module.load_model(str(spec.package_dir / spec.weights_file), num_classes=spec.num_classes).eval()
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


# ---------------------------------------------------------------------------------------------- valid


def test_valid_model_runs_and_reuses_child(valid_sb, valid_pkg) -> None:
    assert valid_sb.isolation in set(Isolation)
    assert valid_sb.startup_s > 0
    assert valid_sb.device == "cpu"
    assert valid_sb.info["params"] == 4 * 3 * 3 * 3 + 4 + 2 * 4 + 2
    x = batch(5)
    outs, pids = [], []
    for _ in range(3):
        out = valid_sb.infer(x)
        outs.append(out)
        pids.append(valid_sb.child_pid)
        assert out.shape == (5, 2) and out.dtype == np.float32
    assert pids[0] is not None and len(set(pids)) == 1  # one child serves every batch
    assert all(np.array_equal(outs[0], o) for o in outs[1:])  # deterministic
    np.testing.assert_allclose(outs[0], reference_logits(valid_pkg, x), rtol=1e-5, atol=1e-6)
    assert finite_rows(outs[0]).all()


def test_isolation_recorded_and_layers_active(valid_sb) -> None:
    require_bwrap()
    assert valid_sb.isolation is Isolation.BWRAP and str(valid_sb.isolation) == "bwrap"
    d = valid_sb.details
    assert {"user", "mount", "pid", "net"} <= set(d["namespaces"])
    assert d["seccomp"] == "on" and d["audit_hook"] == "on"
    assert d["rlimits"]["nofile"] == FAST.max_open_files and d["rlimits"]["core"] == 0
    if os.geteuid() == 0:
        assert d["uid_drop"] and d["nproc_enforced"] and valid_sb.info["uid"] == FAST.sandbox_uid


def test_batch_sizes_vary(valid_sb) -> None:
    for n in (1, 3, 17):
        assert valid_sb.infer(batch(n, seed=n)).shape == (n, 2)


def test_bad_input_is_rejected_in_parent(valid_sb) -> None:
    with pytest.raises(SandboxInputError, match="dtype"):
        valid_sb.infer(batch().astype(np.float32))
    with pytest.raises(SandboxInputError, match="shape"):
        valid_sb.infer(np.zeros((2, 3, 9, 8), np.uint8))
    with pytest.raises(SandboxInputError, match="batch size"):
        valid_sb.infer(np.zeros((0, *INPUT_SHAPE), np.uint8))
    with pytest.raises(SandboxInputError, match="numpy"):
        valid_sb.infer([[1, 2]])
    assert valid_sb.infer(batch(2)).shape == (2, 2)  # still usable


# ---------------------------------------------------------------------------------------------- outputs

MODES_MODEL = """
import torch


class Obj:
    def __init__(self, logits):
        self.logits = logits


class Modes(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        mode = int(x[0, 0, 0, 0])
        b = x.shape[0]
        good = torch.stack([torch.arange(b, dtype=torch.float32), -torch.arange(b, dtype=torch.float32)], 1)
        if mode == 0:
            return good
        if mode == 1:
            out = good.clone()
            out[1, 0] = float("nan")
            out[2, 1] = float("inf")
            return out
        if mode == 2:
            return torch.zeros(b, 5)
        if mode == 3:
            return torch.zeros(b + 1, 2)
        if mode == 4:
            return torch.zeros(b, 2, 2)
        if mode == 5:
            return torch.zeros(b, 2, dtype=torch.int64)
        if mode == 6:
            return [good]
        if mode == 7:
            return {"logits": good, "aux": 1}
        if mode == 8:
            return Obj(good)
        if mode == 9:
            return (good,)
        if mode == 10:
            return (good, good)
        if mode == 11:
            raise ValueError("model refuses this batch")
        if mode == 12:
            return good.to(torch.bfloat16)
        if mode == 13:
            return bytearray(50 * 10**9)
        if mode == 14:
            return "not a tensor"
        if mode == 15:
            return torch.zeros(b)
        if mode == 16:
            return {"a": good, "b": good}
        if mode == 17:
            return torch.zeros(b, 1)
        raise AssertionError(mode)


def load_model(weights_path, num_classes=2, **kwargs):
    return Modes()
"""


@pytest.fixture(scope="module")
def modes_sb(tmp_path_factory: pytest.TempPathFactory):
    spec = make_package(tmp_path_factory.mktemp("modes"), MODES_MODEL)
    with sopen(spec) as sb:
        yield sb


def mode_batch(mode: int, n: int = 4) -> np.ndarray:
    x = np.zeros((n, *INPUT_SHAPE), np.uint8)
    x[0, 0, 0, 0] = mode
    return x


GOOD = np.stack([np.arange(4, dtype=np.float32), -np.arange(4, dtype=np.float32)], 1)


@pytest.mark.parametrize("mode", [0, 6, 7, 8, 9, 12])
def test_output_unwrapping(modes_sb, mode: int) -> None:
    out = modes_sb.infer(mode_batch(mode))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, GOOD)


def test_single_logit_output_allowed(modes_sb) -> None:
    assert modes_sb.infer(mode_batch(17)).shape == (4, 1)


def test_non_finite_rows_are_returned_and_masked(modes_sb) -> None:
    out = modes_sb.infer(mode_batch(1))
    mask = finite_rows(out)
    assert mask.tolist() == [True, False, False, True]
    # the scoring layer turns those rows into confident misses
    p = np.full(4, 0.5)
    labels = np.array([0, 1, 0, 1])
    scored = maximally_wrong(p, mask, labels)
    assert scored.tolist() == [0.5, 0.0, 1.0, 0.5]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        (2, r"C=5 columns"),
        (3, r"5 rows for a batch of 4"),
        (4, r"shape \[B, C\], got \[4, 2, 2\]"),
        (5, r"floating point"),
        (10, r"tuple output of length 2"),
        (14, r"torch.Tensor of logits, got str"),
        (15, r"shape \[B, C\], got \[4\]"),
        (16, r"no 'logits' or 'output' key"),
    ],
)
def test_bad_output_fails_the_batch(modes_sb, mode: int, reason: str) -> None:
    with pytest.raises(SandboxOutputError, match=reason):
        modes_sb.infer(mode_batch(mode))
    assert not modes_sb.closed
    np.testing.assert_array_equal(modes_sb.infer(mode_batch(0)), GOOD)  # the child stays in sync


def test_model_exception_fails_the_batch_only(modes_sb) -> None:
    pid = modes_sb.child_pid
    with pytest.raises(SandboxInferenceError, match="ValueError: model refuses this batch"):
        modes_sb.infer(mode_batch(11))
    with pytest.raises(SandboxInferenceError, match="MemoryError"):  # 50 GB > RLIMIT_AS
        modes_sb.infer(mode_batch(13))
    np.testing.assert_array_equal(modes_sb.infer(mode_batch(0)), GOOD)
    assert modes_sb.child_pid == pid


# ---------------------------------------------------------------------------------------------- load


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("def load_model(:\n", "SyntaxError"),
        ("x = 1\n", "does not define a callable load_model"),
        (
            "def load_model(weights_path, num_classes=2):\n    return 42\n",
            "must return a torch.nn.Module, got int",
        ),
        (
            "def load_model(weights_path, num_classes=2):\n    raise RuntimeError('bad weights')\n",
            "bad weights",
        ),
    ],
)
def test_load_errors(tmp_path: Path, source: str, reason: str) -> None:
    spec = make_package(tmp_path / "pkg", source)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(SandboxLoadError, match=reason) as info:
        sopen(spec, limits=dataclasses.replace(FAST, work_dir=work))
    assert "stage load" in str(info.value)
    assert not list(work.iterdir())  # the scratch dir is gone


def test_load_model_kwargs_and_typeerror_retry(tmp_path: Path) -> None:
    source = """
import torch
class K(torch.nn.Module):
    def __init__(self, v):
        super().__init__()
        self.v = v
    def forward(self, x):
        return torch.full((x.shape[0], 2), float(self.v))
def load_model(weights_path, num_classes=2):   # no **kwargs: the reference retries with num_classes only
    return K(num_classes)
"""
    spec = make_package(
        tmp_path / "pkg", source, num_classes=2, model_kwargs={"backbone": "tiny", "num_classes": 2}
    )
    with sopen(spec) as sb:
        assert sb.infer(batch(2)).tolist() == [[2.0, 2.0], [2.0, 2.0]]


def test_spec_validation(tmp_path: Path) -> None:
    spec = make_package(tmp_path / "pkg", VALID_MODEL, weights=valid_weights(), dtype="BF16")
    assert spec.dtype == "bfloat16"
    kw = dict(package_dir=tmp_path / "pkg", input_shape=INPUT_SHAPE)
    with pytest.raises(ValueError, match="relative path"):
        SandboxSpec(**kw, weights_file="../model.safetensors")
    with pytest.raises(ValueError, match="not a file"):
        SandboxSpec(**kw, weights_file="missing.safetensors")
    with pytest.raises(ValueError, match="dtype"):
        SandboxSpec(**kw, dtype="int8")
    with pytest.raises(ValueError, match="input_dtype"):
        SandboxSpec(**kw, input_dtype="int16")
    with pytest.raises(ValueError, match="disagrees"):
        SandboxSpec(**kw, model_kwargs={"num_classes": 3})
    with pytest.raises(ValueError, match="JSON"):
        SandboxSpec(**kw, model_kwargs={"x": object()})
    with pytest.raises(ValueError, match="input_shape"):
        SandboxSpec(package_dir=tmp_path / "pkg", input_shape=(3, 0, 8))


def test_bfloat16_model(tmp_path: Path) -> None:
    source = VALID_MODEL.replace("x = x.float() / 255.0", "x = x.to(self.fc.weight.dtype) / 255.0")
    spec = make_package(tmp_path / "pkg", source, weights=valid_weights(), dtype="bfloat16")
    with sopen(spec) as sb:
        out = sb.infer(batch(3))
    assert out.dtype == np.float32 and out.shape == (3, 2)
    np.testing.assert_allclose(out, reference_logits(spec, batch(3)), atol=0.1)


# ---------------------------------------------------------------------------------------------- lifecycle


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_close_and_gc_kill_the_child(valid_pkg) -> None:
    sb = sopen(valid_pkg)
    pid = sb.pid
    work = sb._work
    assert _alive(pid) and work.exists()
    sb.close()
    sb.close()  # idempotent
    assert not _alive(pid) and not work.exists()
    with pytest.raises(SandboxClosed, match="closed by caller"):
        sb.infer(batch())

    sb2 = sopen(valid_pkg)
    pid2 = sb2.pid
    del sb2
    gc.collect()
    deadline = time.monotonic() + 5
    while _alive(pid2) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid2)


# ---------------------------------------------------------------------------------------------- isolation choice


def test_unsandboxed_needs_explicit_consent(valid_pkg, monkeypatch, caplog) -> None:
    with pytest.raises(SandboxUnavailable, match="allow_unsandboxed"):
        open_sandbox(valid_pkg, limits=FAST, isolation="none")
    no = sbmod._Probe(False, "pretend missing")
    monkeypatch.setattr(sbmod, "_probe_bwrap", lambda: no)
    monkeypatch.setattr(sbmod, "_probe_unshare", lambda: no)
    with pytest.raises(SandboxUnavailable, match="no sandbox available.*refusing"):
        open_sandbox(valid_pkg, limits=FAST)
    with pytest.raises(SandboxUnavailable, match="pretend missing"):
        open_sandbox(valid_pkg, limits=FAST, isolation="bwrap")
    with caplog.at_level(logging.WARNING, logger="gas.submissions.sandbox"):
        with open_sandbox(valid_pkg, limits=FAST, device="cpu", allow_unsandboxed=True) as sb:
            assert sb.isolation is Isolation.NONE
            assert sb.details["namespaces"] == []
            assert sb.infer(batch(2)).shape == (2, 2)
    assert any("WITHOUT A SANDBOX" in r.getMessage() for r in caplog.records)


def test_bwrap_without_uid_drop(valid_pkg, monkeypatch) -> None:
    """The path a non-root validator takes (bwrap maps the caller's own uid, --disable-userns)."""
    require_bwrap()
    monkeypatch.setattr(sbmod, "_probe_bwrap", lambda: sbmod._Probe(True, uid_drop=False))
    with sopen(valid_pkg) as sb:
        assert sb.isolation is Isolation.BWRAP and not sb.details["uid_drop"]
        assert sb.details["host_uid"] == os.geteuid()
        assert sb.details["nproc_enforced"] == (os.geteuid() != 0)
        np.testing.assert_allclose(
            sb.infer(batch(2)), reference_logits(valid_pkg, batch(2)), rtol=1e-5, atol=1e-6
        )


def test_bad_device_rejected(valid_pkg) -> None:
    with pytest.raises(SandboxError, match="device"):
        open_sandbox(valid_pkg, limits=FAST, device="tpu")
