"""Fixtures for the dev chain: a fake clock, sr25519 identities and a small dev network."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from devchain_helpers import FakeClock, make_identity  # tests/support: one copy for every folder

from gas.chain.base import Identity
from gas.chain.devchain import DevChain


@pytest.fixture
def identities() -> Callable[..., list[Identity]]:
    """``identities(n, prefix="node")`` → n distinct identities, each with its own coldkey."""

    def make(n: int, prefix: str = "node") -> list[Identity]:
        return [make_identity(f"{prefix}{i}") for i in range(n)]

    return make


@dataclass
class DevNet:
    """A dev chain file driven by a fake clock; ``client(identity)`` opens it as someone."""

    path: Path
    clock: FakeClock
    netuid: int
    admin: DevChain

    def client(self, identity: Identity | None = None, netuid: int | None = None) -> DevChain:
        return DevChain(
            self.path, netuid=self.netuid if netuid is None else netuid, identity=identity, clock=self.clock
        )

    def at(self, block: int) -> None:
        """Move the clock to the start of ``block`` (never backwards)."""
        current = self.admin.block()
        assert block >= current, f"clock cannot go back from {current} to {block}"
        self.clock.advance_blocks(block - current)
        assert self.admin.block() == block

    def join(self, identity: Identity, *, funds: float = 10.0, stake: float = 0.0) -> tuple[DevChain, int]:
        """Fund, register (and optionally stake) ``identity``; returns its client and uid."""
        self.admin.fund(identity.coldkey, funds + stake)
        client = self.client(identity)
        uid = client.register()
        if stake:
            self.admin.add_stake(identity.hotkey, stake)
        return client, uid


@pytest.fixture
def devnet(tmp_path: Path) -> Callable[..., DevNet]:
    """``devnet(**subnet_params)`` → a fresh chain at block 0 with 1-second fake blocks."""
    opened: list[DevChain] = []

    def make(**params: Any) -> DevNet:
        clock = FakeClock()
        params.setdefault("block_time", clock.block_time)
        netuid = params.setdefault("netuid", 34)
        path = tmp_path / f"dev{len(opened)}.db"
        admin = DevChain.init(path, clock=clock, **params)
        opened.append(admin)
        return DevNet(path=path, clock=clock, netuid=netuid, admin=admin)

    yield make
    for chain in opened:
        chain.close()
