"""BlockWatcher (polling, jumps, stalls, reconnects, stop) and IntervalSchedule (properties)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gas.chain.base import ChainError, ChainUnavailable
from gas.chain.watcher import BlockWatcher, IntervalSchedule

BT = 0.02  # seconds per fake block


class ScriptedChain:
    """A fake chain: ``block()`` walks a script of heights (or exceptions), then repeats the last."""

    network = "fake"
    netuid = 7
    identity = None

    def __init__(self, script, *, block_time: float = BT, on_reconnect=None) -> None:
        self.script = list(script)
        self._bt = block_time
        self.calls = 0
        self.reconnects = 0
        self.height = 0
        self.on_reconnect = on_reconnect
        self._lock = threading.Lock()

    def block_time(self) -> float:
        return self._bt

    def block(self) -> int:
        with self._lock:
            self.calls += 1
            item = self.script.pop(0) if self.script else self.height
        if isinstance(item, BaseException):
            raise item
        self.height = item
        return item

    def reconnect(self) -> None:
        self.reconnects += 1
        if self.on_reconnect is not None:
            self.on_reconnect(self)

    def close(self) -> None:
        pass


class ClockChain:
    """A fake chain whose height follows the clock (one block per ``block_time``) unless stalled/down."""

    network = "clock"
    netuid = 3
    identity = None

    def __init__(self, block_time: float = BT) -> None:
        self._bt = block_time
        self.t0 = time.monotonic()
        self.offset = 0
        self.frozen_at: int | None = None
        self.down = False
        self.reconnects = 0
        self.thaw_on_reconnect = False

    def block_time(self) -> float:
        return self._bt

    def _now_height(self) -> int:
        return int((time.monotonic() - self.t0) / self._bt) + self.offset

    def block(self) -> int:
        if self.down:
            raise ChainUnavailable("ws://fake:9944", "connection refused")
        if self.frozen_at is not None:
            return self.frozen_at
        return self._now_height()

    def freeze(self) -> None:
        self.frozen_at = self._now_height()

    def thaw(self) -> None:
        self.frozen_at = None

    def reconnect(self) -> None:
        self.reconnects += 1
        if self.thaw_on_reconnect:
            self.thaw()

    def close(self) -> None:
        pass


async def collect(watcher: BlockWatcher, n: int, timeout: float = 3.0) -> list[int]:
    out: list[int] = []

    async def run() -> None:
        async for b in watcher.blocks():
            out.append(b)
            if len(out) >= n:
                watcher.stop()

    await asyncio.wait_for(run(), timeout)
    return out


# ------------------------------------------------------------------------------------------------
# BlockWatcher
# ------------------------------------------------------------------------------------------------
def test_yields_new_blocks_once_in_order_with_jumps():
    chain = ScriptedChain([1, 1, 2, 2, 2, 5, 5, 6, 13, 13, 14])
    watcher = BlockWatcher(chain, poll_interval=0.001)
    got = asyncio.run(collect(watcher, 6))
    assert got == [1, 2, 5, 6, 13, 14]
    assert watcher.last_block == 14
    assert chain.reconnects == 0


def test_never_goes_backwards():
    chain = ScriptedChain([5, 3, 4, 5, 6, 2, 7])
    got = asyncio.run(collect(BlockWatcher(chain, poll_interval=0.001), 3))
    assert got == [5, 6, 7]


def test_follows_a_clock_chain_strictly_increasing():
    chain = ClockChain()
    got = asyncio.run(collect(BlockWatcher(chain), 5))
    assert got == sorted(set(got)) and len(got) == 5
    assert chain.reconnects == 0


def test_default_poll_interval_is_half_a_block_with_a_floor():
    w = BlockWatcher(ScriptedChain([1]))
    w.block_time = 12.0
    assert w.poll_interval == 6.0 and w.stale_after == 60.0
    w.block_time = 0.02
    assert w.poll_interval == 0.05


def test_errors_warn_reconnect_and_resume(caplog):
    chain = ScriptedChain([1, 2, ChainUnavailable("ws://x:9944", "refused"), ChainError("boom"),
                           OSError("reset by peer"), 3, 4])
    watcher = BlockWatcher(chain, poll_interval=0.001, max_backoff=0.01)
    with caplog.at_level(logging.WARNING, logger="gas.chain.watcher"):
        got = asyncio.run(collect(watcher, 4))
    assert got == [1, 2, 3, 4]
    assert chain.reconnects == 3 == watcher.reconnects
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert all("network 'fake' (netuid 7)" in m for m in warnings)
    assert "ws://x:9944 is unavailable" in warnings[0] and "reconnecting" in warnings[0]
    assert "OSError" in warnings[2]


def test_stalled_chain_triggers_reconnect_then_resumes(caplog):
    chain = ClockChain()
    chain.thaw_on_reconnect = True  # a stall that a reconnect cures
    watcher = BlockWatcher(chain, stale_after_blocks=3, max_backoff=0.05)
    seen: list[int] = []

    async def run() -> None:
        async for b in watcher.blocks():
            seen.append(b)
            if len(seen) == 2:
                chain.freeze()  # the chain stops advancing until the watcher reconnects
            elif len(seen) > 2:
                watcher.stop()

    with caplog.at_level(logging.WARNING, logger="gas.chain.watcher"):
        asyncio.run(asyncio.wait_for(run(), 3.0))
    assert chain.reconnects >= 1
    assert seen == sorted(set(seen)) and seen[-1] > seen[1]
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no new block" in m and f"after block {seen[1]}" in m and "network 'clock'" in m for m in msgs)


def test_outage_backs_off_exponentially_up_to_the_cap():
    chain = ClockChain()
    chain.down = True
    watcher = BlockWatcher(chain, poll_interval=0.01, max_backoff=0.04)

    async def main() -> list[int]:
        task = asyncio.create_task(collect(watcher, 1))
        await asyncio.sleep(0.35)
        assert chain.reconnects >= 3
        # backoffs 0.01, 0.02, 0.04, 0.04, ...: ~10 attempts in 0.35 s, never hundreds
        assert chain.reconnects <= 14
        chain.down = False
        return await task

    got = asyncio.run(main())
    assert len(got) == 1


def test_reconnect_failure_is_survived(caplog):
    def broken(_chain):
        raise ChainUnavailable("ws://x:1", "still down")

    chain = ScriptedChain([ChainError("gone"), 9], on_reconnect=broken)
    with caplog.at_level(logging.WARNING, logger="gas.chain.watcher"):
        got = asyncio.run(collect(BlockWatcher(chain, poll_interval=0.001, max_backoff=0.01), 1))
    assert got == [9]
    assert any("reconnect failed" in r.getMessage() for r in caplog.records)


def test_block_time_failure_falls_back(caplog):
    chain = ScriptedChain([4])

    def bad_block_time() -> float:
        raise ChainUnavailable("ws://x:1")

    chain.block_time = bad_block_time
    w = BlockWatcher(chain, poll_interval=0.001)
    with caplog.at_level(logging.WARNING, logger="gas.chain.watcher"):
        assert asyncio.run(collect(w, 1)) == [4]
    assert w.block_time == 12.0
    assert any("could not read the block time" in r.getMessage() for r in caplog.records)


def test_stop_from_another_task_ends_a_sleeping_watcher_promptly():
    chain = ScriptedChain([1], block_time=10.0)  # default poll interval: 5 s
    watcher = BlockWatcher(chain)

    async def main() -> tuple[list[int], float]:
        seen: list[int] = []

        async def consume() -> None:
            async for b in watcher:
                seen.append(b)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        t = time.monotonic()
        watcher.stop()
        await asyncio.wait_for(task, 1.0)
        return seen, time.monotonic() - t

    seen, took = asyncio.run(main())
    assert seen == [1] and took < 0.5 and watcher.stopped
    # sticky: a stopped watcher yields nothing more
    assert asyncio.run(collect(watcher, 1, timeout=0.5)) == []


def test_cancellation_ends_cleanly():
    watcher = BlockWatcher(ClockChain())

    async def main() -> None:
        async def consume() -> None:
            async for _ in watcher.blocks():
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert watcher.last_block is not None


def test_rejects_bad_arguments():
    for kw in ({"poll_interval": 0}, {"stale_after_blocks": 0}, {"max_backoff": -1}):
        with pytest.raises(ValueError):
            BlockWatcher(ScriptedChain([1]), **kw)


# ------------------------------------------------------------------------------------------------
# IntervalSchedule
# ------------------------------------------------------------------------------------------------
def test_interval_schedule_basics():
    s = IntervalSchedule(10)
    assert s.due(3) and s.next_due() is None
    s.mark(3)
    assert not s.due(9) and s.due(10) and s.next_due() == 10
    s.mark(12)  # a missed boundary still fires at the first observed block after it
    assert not s.due(19) and s.due(27)
    assert not s.due(5)  # an earlier bucket (chain went backwards) is never due
    restored = IntervalSchedule.from_state(s.state())
    assert restored.last_run == 12 and restored.interval == 10 and not restored.due(15)
    s.reset()
    assert s.due(0)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            IntervalSchedule(bad)


def test_not_modulo_based():
    s = IntervalSchedule(100, last_run=250)
    assert s.due(301)  # 300 was missed; block % 100 == 0 would skip this period entirely


increasing_blocks = st.lists(st.integers(min_value=0, max_value=500), min_size=0, max_size=60).map(
    lambda xs: sorted(set(xs))
)


@given(interval=st.integers(min_value=1, max_value=50), blocks=increasing_blocks,
       last_run=st.one_of(st.none(), st.integers(min_value=0, max_value=500)))
def test_runs_once_per_bucket_at_first_observed_block(interval, blocks, last_run):
    s = IntervalSchedule(interval, last_run=last_run)
    ran: list[int] = []
    for b in blocks:
        if s.due(b):
            s.mark(b)
            ran.append(b)

    def bucket(b: int) -> int:
        return b // interval

    eligible = [b for b in blocks if last_run is None or bucket(b) > bucket(last_run)]
    expected_buckets = sorted({bucket(b) for b in eligible})
    # exactly once per crossed bucket that holds an observed block
    assert [bucket(b) for b in ran] == expected_buckets
    # ... at the first observed block of that bucket
    first_in_bucket = {}
    for b in eligible:
        first_in_bucket.setdefault(bucket(b), b)
    assert ran == [first_in_bucket[k] for k in expected_buckets]


@given(interval=st.integers(min_value=1, max_value=50), blocks=increasing_blocks,
       cut=st.integers(min_value=0, max_value=60))
def test_restart_with_persisted_last_run_loses_nothing(interval, blocks, cut):
    """Running with a restart (state persisted and restored) equals running without one."""
    whole = IntervalSchedule(interval)
    ran_whole = [b for b in blocks if whole.due(b) and (whole.mark(b) or True)]

    first = IntervalSchedule(interval)
    ran = [b for b in blocks[:cut] if first.due(b) and (first.mark(b) or True)]
    second = IntervalSchedule.from_state(first.state())
    ran += [b for b in blocks[cut:] if second.due(b) and (second.mark(b) or True)]
    assert ran == ran_whole
