"""Follow the chain's block height, and run periodic work every N blocks without ever skipping a period.

:class:`BlockWatcher` polls ``chain.block()`` (in a worker thread: the backends block) and yields
each *new* block number, strictly increasing. It is a watchdog too: when the chain stops advancing
or ``block()`` fails, it logs a warning, calls ``chain.reconnect()``, backs off exponentially and
carries on. Transient failures never end the iteration; :meth:`BlockWatcher.stop` or cancelling the
consuming task does.

Consumers must NOT assume contiguous blocks: a slow poll, a reconnect or a lagging node can jump
from block 10 to 13, and only 13 is yielded. Use :class:`IntervalSchedule` to run work "every N
blocks": it fires at the first observed block of each new interval bucket, so a missed block never
silently skips a period (unlike ``block % N == 0``)::

    watcher = BlockWatcher(chain)
    weights = IntervalSchedule(100, last_run=state.get("weights_last_run"))
    async for block in watcher.blocks():
        if weights.due(block):
            await set_weights()
            weights.mark(block)
            state["weights_last_run"] = weights.last_run   # persist: a restart loses nothing
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from gas.chain.base import Chain, ChainError

log = logging.getLogger(__name__)

#: Seconds per block assumed when ``chain.block_time()`` itself fails.
FALLBACK_BLOCK_TIME = 12.0
#: The shortest poll interval (seconds), whatever the block time.
MIN_POLL_INTERVAL = 0.05


class BlockWatcher:
    """Yield each new block of ``chain`` once, in increasing order; survive stalls and outages.

    - ``poll_interval``: seconds between ``block()`` calls; default ``block_time / 2`` (at least
      :data:`MIN_POLL_INTERVAL`).
    - ``stale_after_blocks``: the chain counts as stalled when no new block arrived for this many
      block times; the watcher then warns and reconnects.
    - ``max_backoff``: ceiling (seconds) of the exponential backoff between recovery attempts.

    Usage: ``async for block in watcher.blocks(): ...`` (or ``async for block in watcher``).
    One iteration at a time per watcher. ``last_block`` is the last yielded block and
    ``reconnects`` counts the recovery attempts so far.
    """

    def __init__(
        self,
        chain: Chain,
        *,
        poll_interval: float | None = None,
        stale_after_blocks: float = 5,
        max_backoff: float = 30.0,
        logger: logging.Logger | None = None,
    ) -> None:
        if poll_interval is not None and poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0 (got {poll_interval})")
        if stale_after_blocks <= 0:
            raise ValueError(f"stale_after_blocks must be > 0 (got {stale_after_blocks})")
        if max_backoff <= 0:
            raise ValueError(f"max_backoff must be > 0 (got {max_backoff})")
        self.chain = chain
        self._poll_interval = poll_interval
        self.stale_after_blocks = stale_after_blocks
        self.max_backoff = max_backoff
        self.log = logger or log
        self.last_block: int | None = None
        self.reconnects = 0
        self.block_time: float | None = None
        self._stopped = False
        self._wake: asyncio.Event | None = None  # created inside the running loop

    # ----------------------------------------------------------------------------------------
    @property
    def where(self) -> str:
        """The chain in words, for log lines: ``network 'test' (netuid 379)``."""
        network = getattr(self.chain, "network", "?")
        netuid = getattr(self.chain, "netuid", None)
        return f"network {network!r}" + (f" (netuid {netuid})" if netuid is not None else "")

    @property
    def poll_interval(self) -> float:
        if self._poll_interval is not None:
            return self._poll_interval
        block_time = self.block_time if self.block_time is not None else FALLBACK_BLOCK_TIME
        return max(block_time / 2, MIN_POLL_INTERVAL)

    @property
    def stale_after(self) -> float:
        """Seconds without a new block after which the chain counts as stalled."""
        block_time = self.block_time if self.block_time is not None else FALLBACK_BLOCK_TIME
        return self.stale_after_blocks * block_time

    def stop(self) -> None:
        """End the iteration: a running ``blocks()`` returns promptly (a sleep is cut short; a
        ``block()`` call already in its thread is waited for, its result dropped). Sticky: a
        stopped watcher stays stopped; make a new one to watch again."""
        self._stopped = True
        if self._wake is not None:
            self._wake.set()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def __aiter__(self) -> AsyncIterator[int]:
        return self.blocks()

    # ----------------------------------------------------------------------------------------
    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once on stop()."""
        if self._stopped:
            return
        if self._wake is None:
            self._wake = asyncio.Event()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=max(seconds, 0.0))
        except asyncio.TimeoutError:
            pass

    async def _read_block_time(self) -> float:
        try:
            value = float(await asyncio.to_thread(self.chain.block_time))
            if value > 0:
                return value
            self.log.warning("%s reported block time %r; assuming %.0f s", self.where, value,
                             FALLBACK_BLOCK_TIME)
        except Exception as exc:  # any failure here is survivable
            self.log.warning("could not read the block time of %s (%s); assuming %.0f s",
                             self.where, exc, FALLBACK_BLOCK_TIME)
        return FALLBACK_BLOCK_TIME

    async def _recover(self, what: str, backoff: float) -> float:
        """Warn, reconnect (in a thread), wait ``backoff`` seconds; return the next backoff."""
        self.reconnects += 1
        self.log.warning("%s: %s; reconnecting (attempt %d), next check in %.2f s",
                         self.where, what, self.reconnects, backoff)
        try:
            await asyncio.to_thread(self.chain.reconnect)
        except Exception as exc:  # retried after the backoff
            self.log.warning("%s: reconnect failed: %s", self.where, exc)
        await self._sleep(backoff)
        return min(backoff * 2, self.max_backoff)

    async def blocks(self) -> AsyncIterator[int]:
        """Yield each new block number once, strictly increasing (gaps possible), until stop()."""
        self._wake = asyncio.Event()
        if self._stopped:
            return
        if self.block_time is None:
            self.block_time = await self._read_block_time()
        base_backoff = min(max(self.poll_interval, MIN_POLL_INTERVAL), self.max_backoff)
        backoff = base_backoff
        last_new_at = time.monotonic()
        while not self._stopped:
            try:
                block = int(await asyncio.to_thread(self.chain.block))
            except ChainError as exc:
                backoff = await self._recover(f"reading the block failed: {exc}", backoff)
                last_new_at = time.monotonic()  # the stale clock restarts after a recovery attempt
                continue
            except Exception as exc:  # a backend leaking a raw error must not kill us
                backoff = await self._recover(
                    f"reading the block failed with {type(exc).__name__}: {exc}", backoff)
                last_new_at = time.monotonic()
                continue
            if self._stopped:
                return
            now = time.monotonic()
            if self.last_block is None or block > self.last_block:
                self.last_block = block
                last_new_at = now
                backoff = base_backoff
                yield block
                await self._sleep(self.poll_interval)
                continue
            if block < self.last_block:
                self.log.debug("%s reports block %d, below the last seen %d; ignored",
                               self.where, block, self.last_block)
            if now - last_new_at >= self.stale_after:
                behind = f" (it now reports {block})" if block != self.last_block else ""
                backoff = await self._recover(
                    f"no new block for {now - last_new_at:.1f} s after block {self.last_block}{behind}",
                    backoff)
                last_new_at = time.monotonic()
                continue
            await self._sleep(self.poll_interval)


class IntervalSchedule:
    """Run something once per ``interval_blocks``-block bucket, at the first block seen in it.

    Due iff it never ran, or an interval boundary lies between the last run and ``block``:
    ``block // interval > last_run // interval``. A block missed by the watcher therefore delays
    the task to the next observed block instead of skipping the period. A block in the same or an
    earlier bucket than ``last_run`` is never due (a chain that went backwards does not re-run
    work; after wiping a dev chain, call :meth:`reset`).

    Persist ``last_run`` (or :meth:`state`) and pass it back on restart so nothing runs twice or
    is lost.
    """

    def __init__(self, interval_blocks: int, *, last_run: int | None = None) -> None:
        if isinstance(interval_blocks, bool) or not isinstance(interval_blocks, int) or interval_blocks < 1:
            raise ValueError(f"interval_blocks must be an int >= 1 (got {interval_blocks!r})")
        self.interval = interval_blocks
        self.last_run = last_run

    def bucket(self, block: int) -> int:
        return block // self.interval

    def due(self, block: int) -> bool:
        return self.last_run is None or self.bucket(block) > self.bucket(self.last_run)

    def mark(self, block: int) -> None:
        """Record that the task ran at ``block``."""
        self.last_run = block

    def next_due(self) -> int | None:
        """The first block of the next bucket (None when it never ran: due at once)."""
        if self.last_run is None:
            return None
        return (self.bucket(self.last_run) + 1) * self.interval

    def reset(self) -> None:
        self.last_run = None

    def state(self) -> dict[str, Any]:
        return {"interval_blocks": self.interval, "last_run": self.last_run}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> IntervalSchedule:
        return cls(int(state["interval_blocks"]), last_run=state.get("last_run"))

    def __repr__(self) -> str:
        return f"IntervalSchedule(interval_blocks={self.interval}, last_run={self.last_run})"


__all__ = ["BlockWatcher", "FALLBACK_BLOCK_TIME", "IntervalSchedule", "MIN_POLL_INTERVAL"]
