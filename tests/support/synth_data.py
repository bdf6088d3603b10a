"""The offline synth datasets, made once per test session and shared by every test that wants them.

    from synth_data import synth_once

    @pytest.fixture(scope="session")
    def synth(tmp_path_factory):
        return synth_once(tmp_path_factory)          # {name: LocalDataset}, all seven synth-* sets

Datasets are cached per ``(n, seed)`` in this process, so several test modules calling it with the
same arguments pay for one synthesis (a few seconds: torch/diffusers imports dominate). Treat the
files as read-only; copy a dataset (``shutil.copytree``) before changing it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gas.bench.dataset import LocalDataset

_CACHE: dict[tuple[int, int], tuple[Path, dict[str, LocalDataset]]] = {}


def synth_once(tmp_path_factory: pytest.TempPathFactory, n: int = 6, seed: int = 0) -> dict[str, LocalDataset]:
    """All seven synth datasets (``n`` samples each, ``seed``) under a session temp dir, by name."""
    key = (n, seed)
    if key not in _CACHE:
        from gas.bench.synth import synthesize

        root = tmp_path_factory.mktemp(f"synth-n{n}-s{seed}")
        _CACHE[key] = (root, {ds.name: ds for ds in synthesize(root, n=n, seed=seed)})
    return _CACHE[key][1]


def synth_root(tmp_path_factory: pytest.TempPathFactory, n: int = 6, seed: int = 0) -> Path:
    """The directory holding :func:`synth_once`'s datasets (``<root>/<name>/manifest.parquet``)."""
    synth_once(tmp_path_factory, n, seed)
    return _CACHE[(n, seed)][0]
