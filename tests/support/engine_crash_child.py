"""Runs a TaskEngine in its own process, for the kill -9 test in tests/generation/test_engine.py.

``--prompts '[...]'``: start the engine, submit one image task per prompt (webhook URL
``<webhook>/<prompt>``), print ``{"task_id", "prompt"}`` per task and ``submitted``, then run until
killed. Without ``--prompts``: start on the existing store, run until no task is pending or
processing and no webhook is pending, print ``{"calls": [...]}`` (what the service was asked) and
exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from bittensor_core import Keypair
from fake_generation import FakeService, FakeServices

from gas.generation.engine import TaskEngine
from gas.generation.task_store import TaskStore
from gas.protocol.webhooks import WebhookSender


async def main(args: argparse.Namespace) -> int:
    store = TaskStore(args.db)
    service = FakeService(delay=args.delay)
    sender = WebhookSender(Keypair.create_from_uri("//Bob"), stats=store, retry_delay=args.retry_delay,
                           max_retries=args.max_retries, timeout=5.0)
    engine = TaskEngine(store, FakeServices(service), sender, max_concurrent=args.concurrency, task_timeout=30.0)
    await engine.start()
    if args.prompts:
        for prompt in json.loads(args.prompts):
            rec = engine.submit("image", prompt, {"seed": 1}, f"{args.webhook}/{prompt}", args.validator)
            print(json.dumps({"task_id": rec.task_id, "prompt": prompt}), flush=True)
        print("submitted", flush=True)
        await asyncio.Event().wait()  # until kill -9
        return 1
    while True:
        stats = store.stats()
        if stats["tasks"]["pending"] == stats["tasks"]["processing"] == stats["webhooks"]["pending"] == 0:
            break
        await asyncio.sleep(0.02)
    await engine.wait_idle(timeout=10)
    calls = [{"task_id": c.task_id, "prompt": c.prompt, "checkpoint": c.checkpoint} for c in service.calls]
    print(json.dumps({"calls": calls}), flush=True)
    await engine.stop()
    await sender.aclose()
    store.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--webhook", required=True)
    parser.add_argument("--validator", required=True)
    parser.add_argument("--prompts", default="")
    parser.add_argument("--delay", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--retry-delay", type=float, default=0.3)
    parser.add_argument("--max-retries", type=int, default=8)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    sys.exit(asyncio.run(main(parser.parse_args())))
