"""``gascli data``: synth, import (folder, hf://, registry name), list, verify; errors and exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pytest
from fake_hf_hub import FakeHub
from PIL import Image
from typer.testing import CliRunner

from gas.bench.dataset import LocalDataset, load_registry
from gascli.commands.data import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def run(*args: str):
    return runner.invoke(app, list(args))


def png(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GAS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def hub(monkeypatch):
    """A fake Hub answering at the default endpoint, so the CLI's own ``HfApi()`` talks to it (every
    request goes to the fake's transport; nothing reaches the network)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_TOKEN", "hf_cli_token")
    fake = FakeHub(endpoint=huggingface_hub.constants.ENDPOINT, repo_id="org/pics", repo_type="dataset")
    fake.add_files({f"img/{i}.png": png((i * 20, 0, 0)) for i in range(6)})
    with fake.installed():
        yield fake


def test_module_import_is_light():
    code = "import sys, gascli.commands.data; print(sorted(m for m in ('torch', 'diffusers', 'av', 'pyarrow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_synth_then_list(cache):
    result = run("synth", "--n", "1", "--modality", "audio")
    assert result.exit_code == 0, result.output
    assert "synth-real-audio" in result.stdout and "synth-fake-audio" in result.stdout
    root = cache / "datasets"
    assert len(LocalDataset(root / "synth-real-audio")) == 1

    listed = run("list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert set(load_registry()) <= set(rows)  # every registry entry is listed
    assert rows["synth-real-audio"] | {"size_bytes": 0} == {
        "name": "synth-real-audio", "modality": "audio", "label": "real", "source": "local:synth-real-audio",
        "registered": True, "imported": True, "samples": 1, "size_bytes": 0,
        "path": str(root / "synth-real-audio"), "error": None,
    }
    assert rows["synth-real-audio"]["size_bytes"] > 1000
    assert rows["afhq"]["imported"] is False and rows["afhq"]["source"] == "hf://bitmind/AFHQ"
    assert rows["synth-real-images"]["imported"] is False

    table = run("list")
    assert table.exit_code == 0 and "synth-fake-audio" in table.stdout and "yes" in table.stdout


def test_synth_rejects_a_bad_modality(cache):
    result = run("synth", "--modality", "smell")
    assert result.exit_code == 2 and "--modality must be image, video or audio" in result.stderr


def test_import_folder_keeps_bytes_and_lists_unregistered(cache, tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.png").write_bytes(png((0, i * 50, 0)))
    (src / "junk.jpg").write_bytes(b"junk")
    result = run("import", str(src), "--modality", "image", "--label", "synthetic")
    assert result.exit_code == 0, result.output
    assert "imported 3 image file(s) as 'photos' (synthetic)" in result.stdout
    assert "skipped 1" in result.stderr and "junk.jpg" in result.stderr
    ds = LocalDataset(cache / "datasets" / "photos")
    assert sorted(s.path.read_bytes() for s in ds.samples()) == sorted((src / f"{i}.png").read_bytes() for i in range(3))

    again = run("import", str(src), "--modality", "image", "--label", "real")
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert run("import", str(src), "-m", "image", "-l", "real", "--overwrite", "--name", "p2", "--max-samples", "2").exit_code == 0
    assert len(LocalDataset(cache / "datasets" / "p2")) == 2

    rows = {r["name"]: r for r in json.loads(run("list", "--json").stdout)}
    assert rows["photos"]["registered"] is False and rows["photos"]["samples"] == 3
    assert rows["photos"]["label"] == "synthetic" and rows["photos"]["source"] == "(unregistered)"


def test_import_usage_errors(cache, tmp_path):
    (tmp_path / "f").mkdir()
    missing = run("import", str(tmp_path / "f"), "--label", "real")
    assert missing.exit_code == 2 and "--modality is required" in missing.stderr
    bad = run("import", str(tmp_path / "f"), "-m", "image", "-l", "fake")
    assert bad.exit_code == 2 and "--label must be one of real, synthetic, semisynthetic" in bad.stderr
    unknown = run("import", "no-such-thing")
    assert unknown.exit_code == 2 and "not a folder, an hf://org/repo URL or a registry dataset name" in unknown.stderr
    local = run("import", "synth-real-images")
    assert local.exit_code == 1 and "gascli data synth" in local.stderr


def test_import_hf_url(cache, hub):
    result = run("import", "hf://org/pics", "--name", "pics", "-m", "image", "-l", "real", "--max-samples", "4")
    assert result.exit_code == 0, result.output
    assert "imported 4 image file(s) as 'pics' (real)" in result.stdout and hub.head()[:12] in result.stdout
    ds = LocalDataset(cache / "datasets" / "pics")
    assert len(ds) == 4 and all(s.source.startswith(f"hf://org/pics@{hub.head()}/img/") for s in ds.samples())
    assert "Bearer hf_cli_token" in hub.auth


def test_import_registry_name_uses_the_entry(cache, hub, tmp_path):
    reg = tmp_path / "reg.yaml"
    reg.write_text(
        "datasets:\n"
        "  - name: fake-pics\n    modality: image\n    label: semisynthetic\n    source: hf://org/pics\n"
        "    media_type: png\n    caps: {small: 2, full: 5}\n"
    )
    small = run("import", "fake-pics", "--registry", str(reg))
    assert small.exit_code == 0, small.output
    ds = LocalDataset(cache / "datasets" / "fake-pics")
    assert len(ds) == 2 and ds.labels == {ds.samples()[0].label} and ds.samples()[0].label.value == "semisynthetic"
    full = run("import", "fake-pics", "--registry", str(reg), "--mode", "full", "--overwrite")
    assert full.exit_code == 0 and len(LocalDataset(cache / "datasets" / "fake-pics")) == 5
    rows = {r["name"]: r for r in json.loads(run("list", "--json", "--registry", str(reg)).stdout)}
    assert rows["fake-pics"]["imported"] is True and rows["fake-pics"]["samples"] == 5
    assert "afhq" not in rows  # only the given registry


def test_import_hf_missing_repo(cache, hub):
    result = run("import", "hf://org/absent", "-m", "image", "-l", "real")
    assert result.exit_code == 1 and "hf://org/absent: no such dataset repo" in result.stderr


def test_registry_errors_name_the_file(cache, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  - name: x\n    modality: image\n    label: fake\n    source: hf://o/x\n")
    result = run("list", "--registry", str(bad))
    assert result.exit_code == 1
    assert f"{bad}: entry 0 ('x'): label" in result.stderr


def test_verify_detects_tampering(cache, tmp_path):
    src = tmp_path / "p"
    src.mkdir()
    (src / "a.png").write_bytes(png("red"))
    (src / "b.png").write_bytes(png("blue"))
    assert run("import", str(src), "-m", "image", "-l", "real").exit_code == 0
    ok = run("verify")
    assert ok.exit_code == 0 and "p: 2/2 ok" in ok.stdout
    (cache / "datasets" / "p" / "samples" / "a.png").write_bytes(png("green"))
    bad = run("verify", "p")
    assert bad.exit_code == 1 and "p: 1/2 ok" in bad.stdout and "a.png" in bad.stderr
    assert run("verify", "nope").exit_code == 1
