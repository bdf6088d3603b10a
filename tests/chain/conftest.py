"""Fixtures for the dev chain: a fake clock, sr25519 identities and a small dev network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from devchain_helpers import DevNet, make_identity  # tests/support: one copy for every folder

from gas.chain.base import Identity


@pytest.fixture
def identities() -> Callable[..., list[Identity]]:
    """``identities(n, prefix="node")`` → n distinct identities, each with its own coldkey."""

    def make(n: int, prefix: str = "node") -> list[Identity]:
        return [make_identity(f"{prefix}{i}") for i in range(n)]

    return make


@pytest.fixture
def devnet(tmp_path: Path) -> Callable[..., DevNet]:
    """``devnet(**subnet_params)`` → a fresh chain at block 0 with 1-second fake blocks."""
    nets: list[DevNet] = []

    def make(**params: Any) -> DevNet:
        net = DevNet.create(tmp_path / f"dev{len(nets)}.db", **params)
        nets.append(net)
        return net

    yield make
    for net in nets:
        net.close()
