""".env.gen_miner.template: read by the same settings model as the miner, and it documents every setting."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values
from pydantic import AliasChoices

from gas.config import GeneratorSettings, env_var_name, load_settings

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / ".env.gen_miner.template"
ASSIGN = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def _variables(field: str) -> set[str]:
    info = GeneratorSettings.model_fields[field]
    if isinstance(info.validation_alias, AliasChoices):
        return {c for c in info.validation_alias.choices if isinstance(c, str) and c.isupper()}
    return {env_var_name(field)}


def _assignments() -> tuple[dict[str, str], dict[str, str]]:
    active, commented = {}, {}
    for line in TEMPLATE.read_text().splitlines():
        m = ASSIGN.match(line.strip())
        if m:
            (commented if m.group(1) else active)[m.group(2)] = m.group(3)
    return active, commented


def test_template_loads_and_shows_the_defaults() -> None:
    from_template = load_settings(GeneratorSettings, env_file=TEMPLATE)
    defaults = load_settings(GeneratorSettings, env_file=False)
    assert from_template.model_dump() == defaults.model_dump()


def test_template_covers_every_setting() -> None:
    active, commented = _assignments()
    named = set(active) | set(commented)
    missing = [f for f in GeneratorSettings.model_fields if not (_variables(f) & named)]
    assert missing == [], f"not in .env.gen_miner.template: {missing}"
    unknown = [v for v in named if not any(v in _variables(f) for f in GeneratorSettings.model_fields)]
    assert unknown == [], f"the template sets variables no setting reads: {unknown}"


def test_commented_examples_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAS_CACHE_DIR")
    active, commented = _assignments()
    env_file = tmp_path / "all.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in {**active, **commented}.items()))
    settings = load_settings(GeneratorSettings, env_file=env_file)
    assert settings.netuid == 34 and settings.external_ip == "203.0.113.7"
    assert settings.c2pa_cert_path == Path("/etc/gas/c2pa/signer.pem")
    assert settings.openai_api_key is not None and settings.runway_api_key is not None


@pytest.mark.skipif(shutil.which("node") is None, reason="node is needed for the pm2 ecosystem file")
def test_pm2_reads_the_template_like_python(tmp_path: Path) -> None:
    out = subprocess.run(
        ["node", "-e", f"console.log(JSON.stringify(require({json.dumps(str(REPO / 'gen_miner.config.js'))})))"],
        env={"GAS_ENV_FILE": str(TEMPLATE), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True,
    ).stdout
    (app,) = json.loads(out)["apps"]
    expected = dotenv_values(TEMPLATE)
    assert {k: v for k, v in app["env"].items() if k in expected} == expected
