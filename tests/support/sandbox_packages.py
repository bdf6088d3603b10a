"""Build tiny detector packages in code for the sandbox tests (no static check on purpose)."""

from __future__ import annotations

import os
import socket
import textwrap
import threading
from pathlib import Path

import pytest

from gas.submissions.sandbox import Isolation, SandboxSpec, available_isolation

# A valid 2-class model: conv + linear with weights from model.safetensors; input uint8 [B, 3, 8, 8].
VALID_MODEL = """
import torch
from safetensors.torch import load_file


class Tiny(torch.nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, num_classes)

    def forward(self, x):
        x = x.float() / 255.0
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def load_model(weights_path, num_classes=2, **kwargs):
    model = Tiny(num_classes)
    model.load_state_dict(load_file(weights_path))
    return model
"""

INPUT_SHAPE = (3, 8, 8)


def valid_weights(num_classes: int = 2) -> dict:
    import torch

    g = torch.Generator().manual_seed(1234)
    return {
        "conv.weight": torch.randn(4, 3, 3, 3, generator=g),
        "conv.bias": torch.randn(4, generator=g),
        "fc.weight": torch.randn(num_classes, 4, generator=g),
        "fc.bias": torch.randn(num_classes, generator=g),
    }


def make_package(
    root: Path,
    source: str,
    *,
    weights: dict | None = None,
    num_classes: int = 2,
    input_shape: tuple[int, ...] = INPUT_SHAPE,
    input_dtype: str = "uint8",
    **spec_kwargs,
) -> SandboxSpec:
    """Write model.py + model.safetensors into ``root`` and return the matching SandboxSpec."""
    from safetensors.torch import save_file
    import torch

    root.mkdir(parents=True, exist_ok=True)
    (root / "model.py").write_text(textwrap.dedent(source))
    save_file(weights if weights is not None else {"dummy": torch.zeros(1)}, str(root / "model.safetensors"))
    return SandboxSpec(
        package_dir=root,
        num_classes=num_classes,
        input_shape=input_shape,
        input_dtype=input_dtype,
        **spec_kwargs,
    )


def probe_model(setup: str, probes: list[str], *, at: str = "load") -> str:
    """A model whose logits row is one flag per probe expression (1.0 = the attack worked).

    Each probe is a Python expression evaluated in a try/except that swallows everything, so a
    blocked attempt reads 0.0. ``at``: run the probes in load_model ("load"), in forward
    ("forward") or in both ("both": the row is the load flags followed by the forward flags, so
    num_classes must be 2 * len(probes)). A probe may also return a number (e.g. a count).
    """
    body = "\n".join(f"    flags.append(attempt(lambda: ({p})))" for p in probes)
    n = len(probes)
    return f"""
import os, sys, torch
{textwrap.dedent(setup)}

def attempt(fn):
    try:
        v = fn()
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else (1.0 if v else 0.0)
    except BaseException:
        return 0.0


def run_probes():
    flags = []
{body}
    return flags


class Probe(torch.nn.Module):
    def __init__(self, flags):
        super().__init__()
        self.register_buffer("flags", torch.tensor(flags, dtype=torch.float32))

    def forward(self, x):
        if {at!r} == "load":
            flags = self.flags
        elif {at!r} == "forward":
            flags = torch.tensor(run_probes(), dtype=torch.float32)
        else:
            flags = torch.cat([self.flags, torch.tensor(run_probes(), dtype=torch.float32)])
        return flags.unsqueeze(0).repeat(x.shape[0], 1)


def load_model(weights_path, num_classes=2, **kwargs):
    return Probe(run_probes() if {at!r} in ("load", "both") else [0.0] * {n})
"""


def require_bwrap() -> None:
    """Skip when bwrap isolation is unavailable, except under CI=true where it must be there."""
    if available_isolation() is Isolation.BWRAP:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("bwrap isolation is required under CI but is unavailable on this runner")
    pytest.skip("bwrap isolation unavailable on this machine")


class Listener:
    """A TCP listener on 127.0.0.1 in the test process that records every connection it gets."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
