"""The pm2 ecosystem files: evaluated by node, and their env-file parser agrees with python-dotenv."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values

REPO = Path(__file__).resolve().parents[1]
node = shutil.which("node")
pytestmark = pytest.mark.skipif(node is None, reason="node is needed for pm2 ecosystem files")

ENV_TEXT = """\
# a comment
GAS_NETWORK=test
export GAS_WALLET_NAME="my wallet"
GAS_WALLET_HOTKEY='hk 1'
GAS_CALLBACK_PORT=1234 # trailing comment
EMPTY=
OPENAI_API_KEY=sk-abc=def
"""


def _load(config: str, env_file: Path) -> dict:
    out = subprocess.run(
        [node, "-e", f"console.log(JSON.stringify(require({json.dumps(str(REPO / config))})))"],
        env={"GAS_ENV_FILE": str(env_file), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


@pytest.mark.parametrize(
    ("config", "name", "module"),
    [("validator.config.js", "gas-validator", "neurons.validator"),
     ("gen_miner.config.js", "gas-generator", "neurons.generator")],
)
def test_ecosystem_app(tmp_path: Path, config: str, name: str, module: str) -> None:
    env_file = tmp_path / "role.env"
    env_file.write_text(ENV_TEXT)
    (app,) = _load(config, env_file)["apps"]
    assert app["name"] == name
    assert app["namespace"] == "gas"  # what `gascli status` lists
    assert app["args"] == ["-m", module]
    assert app["interpreter"] == "none"
    assert app["cwd"] == str(REPO)
    assert app["env"]["GAS_ENV_FILE"] == str(env_file)
    expected = {k: v for k, v in dotenv_values(env_file).items()}
    got = {k: v for k, v in app["env"].items() if k in expected}
    assert got == expected  # the daemon sees exactly what gas.config would read from the file


def test_malformed_env_line_names_file_and_line(tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text("GAS_NETWORK=test\nthis is not an assignment\n")
    proc = subprocess.run(
        [node, "-e", f"require({json.dumps(str(REPO / 'validator.config.js'))})"],
        env={"GAS_ENV_FILE": str(env_file), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert f"{env_file}:2: expected KEY=VALUE" in proc.stderr
