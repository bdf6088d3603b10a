"""The dev chain shared by several OS processes: no lost writes, state survives restarts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gas.chain.devchain import DevChain

REPO = Path(__file__).resolve().parents[2]

# One worker: wait for a common start time, then register and commit each hotkey it was given, and
# tap the faucet, all as fast as it can. argv[1] is a JSON job.
WORKER = r"""
import json, sys, time
from gas.chain.base import Identity
from gas.chain.devchain import DevChain
job = json.loads(sys.argv[1])
time.sleep(max(0.0, job["start_at"] - time.time()))
uids = []
for hotkey in job["hotkeys"]:
    chain = DevChain(job["path"], identity=Identity(hotkey=hotkey, coldkey=job["coldkey"]))
    uids.append(chain.register())
    chain.set_commitment(f"model of {hotkey}")
    chain.fund(job["tap"], 0.5)
    chain.close()
print(json.dumps(uids))
"""

# Reopen a chain in a fresh process and dump everything a restart must keep; optionally write.
DUMP = r"""
import json, sys
from gas.chain.base import Identity
from gas.chain.devchain import DevChain
job = json.loads(sys.argv[1])
chain = DevChain(job["path"])
mg = chain.metagraph()
state = {
    "neurons": [[n.uid, n.hotkey, n.coldkey, n.stake, n.validator_permit, n.axon, n.last_update,
                 n.registered_at] for n in mg.neurons],
    "commitments": {hk: [c.block, c.data.hex()] for hk, c in chain.commitments().items()},
    "weights": {str(k): {str(u): v for u, v in row.items()} for k, row in chain.weights(raw=True).items()},
    "balances": {ck: chain.balance(ck) for ck in job["coldkeys"]},
    "info": chain.subnet_info().as_dict(),
}
if job.get("commit_as"):
    hk, ck, data = job["commit_as"]
    DevChain(job["path"], identity=Identity(hotkey=hk, coldkey=ck)).set_commitment(bytes.fromhex(data))
print(json.dumps(state))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _python(script: str, job: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(job)],
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _result(proc: subprocess.Popen, timeout: float = 60) -> object:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_concurrent_processes_register_and_commit_without_losing_writes(tmp_path, identities):
    path = tmp_path / "devchain" / "shared.db"
    admin = DevChain.init(path, block_time=0.05, commitment_rate_limit=0, burn_cost=1.0)
    workers, per_worker = 4, 6
    people = identities(workers * per_worker, "proc")
    payer = people[0].coldkey  # one coldkey pays every burn: a lost update would show in its balance
    tap = identities(1, "tap")[0].coldkey
    admin.fund(payer, workers * per_worker * 1.0)
    start_at = time.time() + 2.0  # every worker is imported and waiting by then
    procs = [
        _python(WORKER, {
            "path": str(path), "coldkey": payer, "tap": tap, "start_at": start_at,
            "hotkeys": [p.hotkey for p in people[w * per_worker:(w + 1) * per_worker]],
        })
        for w in range(workers)
    ]
    uids = [uid for proc in procs for uid in _result(proc)]
    total = workers * per_worker
    assert sorted(uids) == list(range(total))
    mg = admin.metagraph()
    assert [n.uid for n in mg.neurons] == list(range(total))
    assert sorted(mg.hotkeys) == sorted(p.hotkey for p in people)
    commitments = admin.commitments()
    assert {hk: c.text for hk, c in commitments.items()} == {p.hotkey: f"model of {p.hotkey}" for p in people}
    assert len(admin.commitment_history()) == total
    assert len(admin.registration_history()) == total
    assert admin.balance(payer) == 0.0  # exactly one burn per registration
    assert admin.balance(tap) == pytest.approx(0.5 * total)  # every faucet call counted
    assert mg.block > 0  # the real clock moved blocks meanwhile
    admin.close()


def test_state_survives_closing_and_reopening_in_another_process(tmp_path, identities):
    path = tmp_path / "dev.db"
    # a long block keeps the height fixed while the two processes compare notes
    admin = DevChain.init(path, block_time=3600.0, weights_rate_limit=0, commitment_rate_limit=0, tempo=360)
    vali, miner, late = identities(3, "persist")
    for who, stake in ((vali, 2.0), (miner, 0.0)):
        admin.fund(who.coldkey, 10.0)
        DevChain(path, identity=who).register()
        if stake:
            admin.add_stake(who.hotkey, stake)
    v = DevChain(path, identity=vali)
    m = DevChain(path, identity=miner)
    m.serve_axon("127.0.0.1", 8091)
    m.set_commitment(b"\xffraw\x00bytes")
    v.set_weights([1], [1.0], 0)
    admin.fund(late.coldkey, 3.0)
    DevChain(path, identity=late).register()
    before = {
        "neurons": [[n.uid, n.hotkey, n.coldkey, n.stake, n.validator_permit, n.axon, n.last_update,
                     n.registered_at] for n in admin.metagraph().neurons],
        "commitments": {hk: [c.block, c.data.hex()] for hk, c in admin.commitments().items()},
        "weights": {str(k): {str(u): x for u, x in row.items()} for k, row in admin.weights(raw=True).items()},
        "balances": {p.coldkey: admin.balance(p.coldkey) for p in (vali, miner, late)},
        "info": admin.subnet_info().as_dict(),
    }
    for chain in (admin, v, m):
        chain.close()
    job = {
        "path": str(path),
        "coldkeys": [p.coldkey for p in (vali, miner, late)],
        "commit_as": [late.hotkey, late.coldkey, b"from the child".hex()],
    }
    after = _result(_python(DUMP, job))
    assert after == before
    assert before["neurons"][1][5] == "127.0.0.1:8091" and before["weights"] == {"0": {"1": 65535}}
    # what the child wrote is here after reopening
    reopened = DevChain(path)
    assert reopened.commitments()[late.hotkey].data == b"from the child"
    assert reopened.commitments()[miner.hotkey].data == b"\xffraw\x00bytes"
    reopened.close()
