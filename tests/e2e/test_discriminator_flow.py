"""The discriminative miner's whole flow on the dev chain, as a newcomer runs it:
`gascli d init` → `gascli d validate` → `gascli d push` for all three modalities, then
`gascli chain commitments` shows ONE record holding all three. Hostile packages are refused with
their reason. The package code runs only in the sandbox (the smoke run)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from detector_packages import package_files, write_dir, write_zip

REPO = Path(__file__).resolve().parents[2]
GASCLI = str(REPO / ".venv" / "bin" / "gascli")

pytestmark = pytest.mark.slow


def _run(env, *args, check=True):
    res = subprocess.run([GASCLI, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                         timeout=300)
    if check:
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "GAS_CACHE_DIR": str(tmp_path / "cache"), "GAS_WALLET_PATH": str(tmp_path / "wallets"),
            "COLUMNS": "200"}


def test_init_validate_push_three_modalities(env, tmp_path: Path) -> None:
    _run(env, "chain", "init", "--block-time", "0.1")
    _run(env, "wallet", "create", "--name", "miner", "--hotkey", "default", "--no-password", "--hide-mnemonic")
    _run(env, "chain", "fund", "10", "--wallet-name", "miner")
    _run(env, "chain", "register", "--wallet-name", "miner")

    shas = {}
    for modality in ("image", "video", "audio"):
        pkg = tmp_path / f"pkg_{modality}"
        _run(env, "d", "init", "--modality", modality, str(pkg))
        report = json.loads(_run(env, "d", "validate", str(pkg), "--json").stdout)
        assert report["ok"], report
        smoke = next(r for r in report["checks"] if r["name"] == "smoke")
        assert smoke["ok"] and "isolation" in smoke["detail"]
        shas[modality] = report["sha256"]

    push = _run(env, "d", "push", "--image-model", str(tmp_path / "pkg_image"),
                "--video-model", str(tmp_path / "pkg_video"), "--audio-model", str(tmp_path / "pkg_audio"),
                "--wallet-name", "miner")
    assert "committed image" in push.stdout

    (record,) = json.loads(_run(env, "chain", "commitments", "--json").stdout)
    assert sorted(record["models"]) == ["audio", "image", "video"]
    for modality, sha in shas.items():
        assert record["models"][modality]["sha256"] == sha
        blob = Path(env["GAS_CACHE_DIR"]) / "models"
        assert any(blob.rglob(f"{record['models'][modality]['sha256']}.zip"))

    # the script by path with the same flags is equivalent (identical bytes: nothing new to commit)
    res = subprocess.run([sys.executable, str(REPO / "neurons" / "discriminator" / "push_model.py"),
                          "--image-model", str(tmp_path / "pkg_image"), "--wallet-name", "miner"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (again,) = json.loads(_run(env, "chain", "commitments", "--json").stdout)
    assert again["models"] == record["models"]


HOSTILE_SOURCES = {
    "socket": ("import socket\n", "socket"),
    "subprocess": ("from subprocess import run\n", "subprocess"),
    "dunder-import": ("os = __import__('os')\n", "__import__"),
    "builtins-getattr": ("e = getattr(__builtins__, 'eval')\n", "getattr"),
    "torch-ops": ("import torch\ntorch.ops.load_library('x.so')\n", "torch.ops"),
    "ctypes": ("import ctypes\n", "ctypes"),
    "open-secrets": ("data = open('/etc/passwd').read()\n", "open"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_SOURCES))
def test_hostile_model_code_is_refused_with_its_reason(env, tmp_path: Path, name: str) -> None:
    prefix, reason = HOSTILE_SOURCES[name]
    files = package_files("image")
    files["model.py"] = prefix.encode() + files["model.py"]
    pkg = write_dir(tmp_path / name, files)
    res = _run(env, "d", "validate", str(pkg), "--json", check=False)
    assert res.returncode == 1
    report = json.loads(res.stdout)
    static = next(r for r in report["checks"] if r["name"] == "static")
    assert not static["ok"] and any(reason in p for p in static["problems"]), static
    assert next(r for r in report["checks"] if r["name"] == "smoke")["skipped"]  # never ran


def test_pickle_disguised_as_safetensors_is_refused(env, tmp_path: Path) -> None:
    files = package_files("image")
    files["model.safetensors"] = pickle.dumps({"w": [1, 2, 3]})
    res = _run(env, "d", "validate", str(write_zip(tmp_path / "p.zip", files)), check=False)
    assert res.returncode == 1 and "pickle" in res.stdout
