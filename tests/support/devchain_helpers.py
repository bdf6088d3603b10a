"""Dev-chain helpers usable from any test folder (tests/chain/conftest.py has the fixture forms).

``FakeClock`` moves only when told to; ``make_identity`` derives real ss58 keys from dev URIs;
``DevNet`` is a dev chain file driven by a fake clock. A fake ``sleep`` that advances the clock is
``clock.sleep``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bittensor_core import Keypair

from gas.chain.base import Identity
from gas.chain.devchain import DevChain


class FakeClock:
    """Seconds that move only when told to; ``advance_blocks`` moves by whole blocks."""

    def __init__(self, start: float = 1_700_000_000.0, block_time: float = 1.0) -> None:
        self.now = start
        self.block_time = block_time
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance_blocks(self, n: int) -> None:
        self.now += n * self.block_time

    def sleep(self, seconds: float) -> None:
        """A ``time.sleep`` stand-in: records the call and moves the clock."""
        self.slept.append(seconds)
        self.now += seconds


def make_identity(name: str) -> Identity:
    """A hotkey and a coldkey derived from dev URIs (real ss58 addresses, no files)."""
    return Identity(
        hotkey=Keypair.create_from_uri(f"//{name}-hot").ss58_address,
        coldkey=Keypair.create_from_uri(f"//{name}-cold").ss58_address,
    )


@dataclass
class DevNet:
    """A dev chain file driven by a fake clock; ``client(identity)`` opens it as someone."""

    path: Path
    clock: FakeClock
    netuid: int
    admin: DevChain
    opened: list[DevChain] = field(default_factory=list)

    @classmethod
    def create(cls, path: Path, **params: Any) -> DevNet:
        """A fresh chain at block 0 with 1-second fake blocks (``block_time`` overrides)."""
        clock = FakeClock(block_time=params.get("block_time", 1.0))
        params.setdefault("block_time", clock.block_time)
        netuid = params.setdefault("netuid", 34)
        admin = DevChain.init(path, clock=clock, **params)
        return cls(path=path, clock=clock, netuid=netuid, admin=admin)

    def client(self, identity: Identity | None = None, netuid: int | None = None) -> DevChain:
        chain = DevChain(
            self.path, netuid=self.netuid if netuid is None else netuid, identity=identity, clock=self.clock
        )
        self.opened.append(chain)
        return chain

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

    def close(self) -> None:
        for chain in self.opened:
            chain.close()
        self.admin.close()
