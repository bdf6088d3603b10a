"""The README's dev-chain walkthrough, run line by line as a newcomer would (fresh cache and wallets)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _walkthrough() -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(r"<!-- walkthrough:start -->\s*```bash\n(.*?)```\s*<!-- walkthrough:end -->", text, re.S)
    assert m, "README lost its walkthrough block"
    return m.group(1)


def test_readme_walkthrough(tmp_path: Path) -> None:
    env = {**os.environ, "GAS_CACHE_DIR": str(tmp_path / "cache"), "GAS_WALLET_PATH": str(tmp_path / "wallets")}
    script = "set -euo pipefail\n" + _walkthrough()
    res = subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "registered" in res.stdout and "as uid 1" in res.stdout

    def gascli(*args: str) -> object:
        out = subprocess.run([str(REPO / ".venv" / "bin" / "gascli"), *args, "--json"], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)

    neurons = gascli("chain", "metagraph")["neurons"]
    assert [n["uid"] for n in neurons] == [0, 1]
    vali, miner = neurons
    assert vali["validator_permit"] and vali["stake"] == 50.0
    assert not miner["validator_permit"]
    assert miner["incentive"] == pytest.approx(1.0)
    commits = gascli("chain", "commitments")
    assert [(c["hotkey"], c["text"]) for c in commits] == [(miner["hotkey"], "model:v1")]
    (row,) = gascli("chain", "weights")
    assert row["uid"] == 0 and row["weights"] == {"1": 1.0}
