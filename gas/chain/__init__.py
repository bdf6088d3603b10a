"""Chain access for GAS: the :class:`~gas.chain.base.Chain` protocol and its two backends.

``open_chain`` picks the backend from the network name: ``dev`` is the embedded SQLite chain,
everything else (``local``, ``test``, ``finney``, ``ws(s)://...``) goes through the bittensor SDK.
Backends are imported lazily so that importing this package stays cheap.
"""

from __future__ import annotations

from gas.chain.base import (
    AlreadyRegistered,
    Chain,
    ChainError,
    ChainUnavailable,
    Commitment,
    CommitmentTooLarge,
    DevOnly,
    Identity,
    InsufficientBalance,
    InvalidWeights,
    Metagraph,
    Neuron,
    NotRegistered,
    NoValidatorPermit,
    NoWallet,
    RateLimited,
    SubnetFull,
    SubnetNotFound,
    VersionKeyTooLow,
    WeightsResult,
)

__all__ = [
    "AlreadyRegistered", "Chain", "ChainError", "ChainUnavailable", "Commitment", "CommitmentTooLarge",
    "DevOnly", "Identity", "InsufficientBalance", "InvalidWeights", "Metagraph", "Neuron", "NotRegistered",
    "NoValidatorPermit", "NoWallet", "RateLimited", "SubnetFull", "SubnetNotFound", "VersionKeyTooLow",
    "WeightsResult",
]
