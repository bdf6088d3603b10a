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
    "WeightsResult", "open_chain", "open_from_settings",
]


def open_chain(
    network: str,
    netuid: int,
    *,
    identity: Identity | None = None,
    cache_dir=None,
    devchain_name: str = "default",
    substrate: object | None = None,
) -> Chain:
    """Open the backend for ``network``: the dev chain file for ``dev``, the SDK otherwise.

    ``identity`` is who writes (None for read-only use). ``substrate`` is the SDK's test seam
    and only applies to the bittensor backend.
    """
    if network == "dev":
        from pathlib import Path

        from gas.chain.devchain import DevChain

        base = Path(cache_dir) if cache_dir is not None else Path("~/.cache/gas").expanduser()
        return DevChain(DevChain.default_path(base, devchain_name), netuid=netuid, identity=identity)
    from gas.chain.bittensor_backend import BittensorChain

    return BittensorChain(network, netuid, identity=identity, substrate=substrate)


def open_from_settings(settings, *, identity: Identity | None = None) -> Chain:
    """Open the chain a role's settings name (``GAS_NETWORK``, ``GAS_NETUID``, ``GAS_DEVCHAIN``)."""
    return open_chain(
        settings.network,
        settings.netuid,
        identity=identity,
        cache_dir=settings.cache_dir,
        devchain_name=settings.devchain,
    )
