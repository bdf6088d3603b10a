"""The tensor cache: layout, atomic writes, corrupt files as misses, LRU eviction, two processes."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import pytest

from gas.bench.tensor_cache import TensorCache, default_root

KEY = "image-224x224-v1"


def h(i: int | str) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def test_roundtrip_and_layout(tmp_path):
    c = TensorCache(tmp_path, 1 << 20)
    a = np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)
    assert c.get(h(1), KEY) is None
    assert c.put(h(1), KEY, a)
    p = tmp_path / KEY / h(1)[:2] / f"{h(1)}.npy"
    assert p.is_file() and c.path(h(1), KEY) == p
    assert np.array_equal(np.load(p), a)  # a plain .npy
    got = c.get(h(1), KEY, shape=(3, 8, 8), dtype="uint8")
    assert np.array_equal(got, a) and not got.flags.writeable
    f = np.linspace(-1, 1, 96000, dtype=np.float32)
    c.put(h(2), "audio-16000hz-96000-v1", f)
    assert np.array_equal(c.get(h(2), "audio-16000hz-96000-v1"), f)
    s = c.stats()
    assert (s.hits, s.misses, s.puts) == (2, 1, 2)
    assert s.bytes == p.stat().st_size + c.path(h(2), "audio-16000hz-96000-v1").stat().st_size
    assert not [q for q in tmp_path.rglob("*") if ".tmp." in q.name]  # no temp files left
    assert (h(1), KEY) in c and (h(3), KEY) not in c
    assert default_root(Path("/x/cache")) == Path("/x/cache/tensors")


@pytest.mark.parametrize("mmap", [False, True])
def test_read_modes_are_read_only_and_equal(tmp_path, mmap):
    c = TensorCache(tmp_path, 1 << 20, mmap=mmap)
    a = np.random.default_rng(0).random((5, 7)).astype(np.float32)
    c.put(h(1), KEY, a)
    for kw in ({}, {"shape": (5, 7), "dtype": "float32"}):
        got = c.get(h(1), KEY, **kw)
        assert np.array_equal(got, a) and got.dtype == np.float32 and not got.flags.writeable
    assert isinstance(c.get(h(1), KEY), np.memmap) == mmap


@pytest.mark.parametrize("bad_sha", ["ABC", "../" + "0" * 61, "g" * 64, h(1).upper()])
def test_bad_sha_rejected(tmp_path, bad_sha):
    with pytest.raises(ValueError):
        TensorCache(tmp_path, 100).path(bad_sha, KEY)


@pytest.mark.parametrize("bad_key", ["", "a/b", "..", "a..b", "/abs", ".hidden", "x" * 300])
def test_bad_key_rejected(tmp_path, bad_key):
    with pytest.raises(ValueError):
        TensorCache(tmp_path, 100).path(h(1), bad_key)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[:-10]),  # torn
        lambda p: p.write_bytes(b""),  # empty
        lambda p: p.write_bytes(b"garbage" * 20),  # not an npy
        lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True),  # a pickle
    ],
)
def test_corrupt_file_is_a_miss_and_deleted(tmp_path, damage):
    c = TensorCache(tmp_path, 1 << 20)
    c.put(h(1), KEY, np.ones((3, 4, 4), np.uint8))
    p = c.path(h(1), KEY)
    damage(p)
    assert c.get(h(1), KEY) is None
    assert not p.exists()
    assert c.stats().corrupt == 1


def test_wrong_shape_or_dtype_is_a_miss(tmp_path):
    c = TensorCache(tmp_path, 1 << 20)
    c.put(h(1), KEY, np.ones((3, 4, 4), np.uint8))
    assert c.get(h(1), KEY, shape=(3, 4, 5)) is None and not c.path(h(1), KEY).exists()
    c.put(h(1), KEY, np.ones((3, 4, 4), np.uint8))
    assert c.get(h(1), KEY, dtype="float32") is None


def _age(c: TensorCache, i: int, seconds_ago: float) -> None:
    t = time.time() - seconds_ago
    os.utime(c.path(h(i), KEY), (t, t))


def test_lru_eviction_under_max_bytes(tmp_path):
    entry = np.zeros(1000, np.uint8)  # 1128 bytes on disk with the .npy header
    size = 1000 + 128
    c = TensorCache(tmp_path, max_bytes=5 * size, low_water=0.6)
    for i in range(5):
        c.put(h(i), KEY, entry)
        _age(c, i, 100 - i)  # 0 is the oldest
    assert c.stats().evictions == 0
    assert c.get(h(0), KEY) is not None  # a hit makes 0 the newest
    c.put(h(5), KEY, entry)  # 6 entries > max: evict oldest down to 0.6 * max = 3 entries
    left = {i for i in range(6) if (h(i), KEY) in c}
    assert left == {0, 4, 5}
    s = c.stats()
    assert s.evictions == 3 and s.bytes == 3 * size <= c.max_bytes
    assert not c.put(h(9), KEY, np.zeros(10 * size, np.uint8))  # larger than the whole cache


def test_scan_sees_other_writers_and_cleans_stale_temp_files(tmp_path):
    a = TensorCache(tmp_path, 1 << 20)
    b = TensorCache(tmp_path, 1 << 20)
    a.put(h(1), KEY, np.zeros(100, np.uint8))
    assert b.stats().bytes == a.path(h(1), KEY).stat().st_size
    stale = a.path(h(1), KEY).with_name("x.npy.tmp.1.abc")
    stale.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    fresh = a.path(h(1), KEY).with_name("y.npy.tmp.1.abc")
    fresh.write_bytes(b"in progress")
    a.evict()
    assert not stale.exists() and fresh.exists()


def _hammer(root: str, worker: int, rounds: int) -> None:
    """Write and read the same few keys as fast as possible (runs in a spawned process)."""
    c = TensorCache(Path(root), max_bytes=6 * 50_128, low_water=0.5)  # evicts all the time
    for r in range(rounds):
        for i in range(8):
            value = (i * 7 + worker) % 251
            c.put(h(i), KEY, np.full(50_000, value, np.uint8))
            got = c.get(h((i + r) % 8), KEY, shape=(50_000,), dtype="uint8")
            if got is not None:
                v = int(got[0])
                assert (got == v).all(), "torn read"
                assert v in {(((i + r) % 8) * 7 + w) % 251 for w in (0, 1)}, "foreign value"


def test_two_processes_do_not_corrupt_each_other(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path), w, 25)) for w in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    c = TensorCache(tmp_path, 1 << 30)
    for i in range(8):
        got = c.get(h(i), KEY)
        if got is not None:
            assert (got == got[0]).all() and int(got[0]) in {(i * 7) % 251, (i * 7 + 1) % 251}
    assert c.stats().corrupt == 0
    assert not [q for q in tmp_path.rglob("*.tmp.*")]


def test_cache_root_removed_under_a_live_instance(tmp_path):
    import shutil

    c = TensorCache(tmp_path / "t", 1 << 20)
    assert c.put(h(1), KEY, np.zeros(4, np.uint8))
    shutil.rmtree(tmp_path / "t")
    assert c.get(h(1), KEY) is None
    assert c.put(h(1), KEY, np.ones(4, np.uint8))
    assert c.get(h(1), KEY).tolist() == [1, 1, 1, 1]
