"""DecodePool: order, cache first, error records, hard timeout and crash isolation in processes."""

from __future__ import annotations

import time

import numpy as np
import pytest
from media_fixtures import (
    crashing_decoder,
    tiny_decoder,
    exploding_decoder,
    failing_worker_init,
    hanging_decoder,
    make_index_clip,
    make_jpeg,
    make_png,
    write_samples,
)

from gas.bench import decode_pool as dp
from gas.bench.decode_pool import DecodePool, decode_all
from gas.bench.preprocess import DecodeError, decode_and_preprocess
from gas.bench.tensor_cache import TensorCache
from gas.bench.types import PreprocessKey
from gas.types import Modality

KEY = PreprocessKey(Modality.IMAGE, height=64, width=64)


@pytest.fixture(scope="module")
def blobs() -> list[bytes]:
    # big and small files interleaved, so worker completion order differs from input order
    return [make_jpeg(i, (900, 1200) if i % 3 == 0 else (120, 160)) if i % 4 else make_png(i, (200, 150))
            for i in range(10)]


def _expected(blobs):
    return [decode_and_preprocess(b, KEY) for b in blobs]


def test_inline_order_results_and_cache_writes(tmp_path, blobs):
    samples = write_samples(tmp_path / "d", blobs, Modality.IMAGE)
    cache = TensorCache(tmp_path / "c", 1 << 30)
    calls = []

    def counting(data, key):
        calls.append(len(data))
        return decode_and_preprocess(data, key)

    with DecodePool(workers=0, cache=cache, decoder=counting) as pool:
        got = list(pool.imap(samples, KEY))
        assert [s.sample_id for s, _, _ in got] == [s.sample_id for s in samples]
        for (_, arr, dt), want in zip(got, _expected(blobs), strict=True):
            assert np.array_equal(arr, want) and dt > 0
        assert len(calls) == 10 and cache.stats().puts == 10
        again = list(pool.imap(samples, KEY))  # every sample is a cache hit now
        assert len(calls) == 10
        assert all(np.array_equal(a, b) for (_, a, _), (_, b, _) in zip(got, again, strict=True))
    assert cache.stats().hits == 10


def test_process_pool_in_order_and_warm_cache_skips_workers(tmp_path, blobs):
    samples = write_samples(tmp_path / "d", blobs, Modality.IMAGE)
    cache = TensorCache(tmp_path / "c", 1 << 30)
    with DecodePool(workers=2, prefetch=4, cache=cache) as pool:
        got = list(pool.imap(samples, KEY))
    assert [s.sample_id for s, _, _ in got] == [s.sample_id for s in samples]
    for (_, arr, _), want in zip(got, _expected(blobs), strict=True):
        assert isinstance(arr, np.ndarray) and np.array_equal(arr, want)
    # the workers wrote the cache; a second pass never reaches a decoder
    with DecodePool(workers=2, cache=TensorCache(tmp_path / "c", 1 << 30), decoder=exploding_decoder) as pool:
        res = decode_all(samples, KEY, pool)
    assert list(res) == [s.sample_id for s in samples]
    assert all(np.array_equal(res[s.sample_id], g[1]) for s, g in zip(samples, got, strict=True))


def test_error_records_next_to_good_samples(tmp_path, blobs):
    bad = [blobs[1], blobs[2][: len(blobs[2]) // 3], b"random junk", blobs[3], blobs[5]]
    samples = write_samples(tmp_path / "d", bad, Modality.IMAGE)
    samples[3] = type(samples[3])(**{**samples[3].__dict__, "sha256": "0" * 64})  # manifest disagrees
    samples[4].path.unlink()  # file vanished
    cache = TensorCache(tmp_path / "c", 1 << 30)
    for workers in (0, 2):
        with DecodePool(workers=workers, cache=cache) as pool:
            out = [(s.sample_id, r) for s, r, _ in pool.imap(samples, KEY)]
        assert isinstance(out[0][1], np.ndarray)
        assert isinstance(out[1][1], DecodeError) and "corrupt or truncated" in str(out[1][1])
        assert isinstance(out[2][1], DecodeError) and "unsupported" in str(out[2][1])
        assert str(out[3][1]) == "sha256 mismatch"
        assert "cannot read" in str(out[4][1])
    assert len(list((tmp_path / "c").rglob("*.npy"))) == 1  # errors are never cached


def test_hung_decode_times_out_and_workers_are_replaced(tmp_path, blobs, monkeypatch):
    monkeypatch.setattr(dp, "HARD_TIMEOUT_GRACE_S", 0.5)
    data = [blobs[1], b"HANG" + blobs[2], blobs[5], blobs[6], blobs[7]]
    samples = write_samples(tmp_path / "d", data, Modality.IMAGE)
    t0 = time.monotonic()
    with DecodePool(workers=2, timeout_s=1.0, decoder=hanging_decoder) as pool:
        out = list(pool.imap(samples, KEY))
        assert pool.restarts == 1
    assert time.monotonic() - t0 < 20
    assert str(out[1][1]) == "decode timeout"
    assert [s.sample_id for s, _, _ in out] == [s.sample_id for s in samples]
    for i in (0, 2, 3, 4):
        assert np.array_equal(out[i][1], decode_and_preprocess(data[i], KEY))


def test_crashing_worker_is_isolated(tmp_path, blobs):
    data = [blobs[1], blobs[2], b"CRASH" + blobs[5], blobs[6], blobs[7], blobs[9]]
    samples = write_samples(tmp_path / "d", data, Modality.IMAGE)
    with DecodePool(workers=2, prefetch=6, decoder=crashing_decoder) as pool:
        out = list(pool.imap(samples, KEY))
    assert str(out[2][1]) == "decoder process crashed"
    for i in (0, 1, 3, 4, 5):
        assert isinstance(out[i][1], np.ndarray), out[i][1]


def test_workers_that_cannot_start_abort_instead_of_failing_every_sample(tmp_path, blobs):
    # A broken installation is our fault: it must not become "decoder process crashed" on every
    # sample (which would count against the miner), and it must not crawl on until a timeout.
    samples = write_samples(tmp_path / "d", blobs[:4], Modality.IMAGE)
    t0 = time.monotonic()
    with DecodePool(workers=2, prefetch=4, initializer=failing_worker_init) as pool:
        with pytest.raises(dp.DecodeWorkersUnavailable, match="cannot start"):
            list(pool.imap(samples, KEY))
    assert time.monotonic() - t0 < 60


def test_consumer_may_stop_early(tmp_path, blobs):
    samples = write_samples(tmp_path / "d", blobs, Modality.IMAGE)
    t0 = time.monotonic()
    with DecodePool(workers=2, prefetch=8) as pool:
        for n, _ in enumerate(pool.imap(samples, KEY)):
            if n == 1:
                break
        # the pool is still usable after an abandoned iteration
        assert len(decode_all(samples[:3], KEY, pool)) == 3
    assert time.monotonic() - t0 < 20


def test_video_and_audio_keys_through_the_pool(tmp_path):
    from media_fixtures import make_wav

    vids = write_samples(tmp_path / "v", [make_index_clip(6), make_index_clip(2)], Modality.VIDEO)
    vkey = PreprocessKey(Modality.VIDEO, num_frames=4, height=32, width=32)
    auds = write_samples(tmp_path / "a", [make_wav(7.0), make_wav(0.5)], Modality.AUDIO)
    akey = PreprocessKey(Modality.AUDIO)
    with DecodePool(workers=0) as pool:
        v = decode_all(vids, vkey, pool)
        a = decode_all(auds, akey, pool)
    assert all(x.shape == (4, 3, 32, 32) for x in v.values())
    assert all(x.shape == (96000,) and x.dtype == np.float32 for x in a.values())


def test_result_slots_and_pipe_agree_and_leave_nothing_behind(tmp_path, blobs):
    import glob

    before = set(glob.glob("/dev/shm/gas-decode-*")) | set(glob.glob(f"{dp.tempfile.gettempdir()}/gas-decode-*"))
    samples = write_samples(tmp_path / "d", blobs[:6], Modality.IMAGE)
    with DecodePool(workers=2, prefetch=3) as pool:
        via_slots = decode_all(samples, KEY, pool)
        pool.use_slots = False
        via_pipe = decode_all(samples, KEY, pool)
        pool.use_slots = True
        for n, _ in enumerate(pool.imap(samples, KEY)):  # abandoned early: its file goes too
            if n == 1:
                break
    assert all(np.array_equal(via_slots[k], via_pipe[k]) for k in via_slots)
    assert all(v.flags.writeable and v.flags.owndata for v in via_slots.values())  # private copies
    after = set(glob.glob("/dev/shm/gas-decode-*")) | set(glob.glob(f"{dp.tempfile.gettempdir()}/gas-decode-*"))
    assert after <= before


def test_decoder_output_of_another_shape_comes_back_through_the_pipe(tmp_path, blobs):
    samples = write_samples(tmp_path / "d", blobs[:2], Modality.IMAGE)
    with DecodePool(workers=1, decoder=tiny_decoder) as pool:
        out = decode_all(samples, KEY, pool)
    assert all(v.shape == (2, 2) for v in out.values())


def test_defaults():
    pool = DecodePool()
    assert pool.workers >= 1 and pool.prefetch == 4 * pool.workers
    assert DecodePool(workers=0).prefetch == 4
    with pytest.raises(ValueError):
        DecodePool(workers=-1)
    with pytest.raises(ValueError, match="never 'fork'"):
        DecodePool(workers=1, mp_context="fork")
