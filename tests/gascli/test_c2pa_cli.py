"""``verify-c2pa`` and ``init-c2pa`` through typer's CliRunner on a small app built with register()."""

from __future__ import annotations

import json
import os

import pytest
import typer
from c2pa_fixtures import make_ca
from media_fixtures import make_clip, make_png
from typer.testing import CliRunner

from gas.generation.c2pa_sign import MediaSigner
from gascli.commands.c2pa import register

runner = CliRunner(env={"COLUMNS": "300"})  # wide enough that rich does not fold table cells


@pytest.fixture()
def app() -> typer.Typer:
    a = typer.Typer()
    register(a)
    return a


@pytest.fixture()
def env_file(tmp_path):
    p = tmp_path / "gen.env"
    p.write_text("")
    return p


@pytest.fixture()
def media(tmp_path):
    """A trusted PNG, a trusted MP4, an untrusted PNG, and the trusted CA's PEM file."""
    ca, other = make_ca(), make_ca("Other root")
    good = ca.issue().signer()
    ca_pem = ca.write(tmp_path / "anchors" / "ca.pem")
    files = {
        "good.png": good.sign(make_png(1, (48, 48)), "image/png", claim_generator="gas-node/0.1.0", model_name="tiny"),
        "good.mp4": good.sign(make_clip(4, (48, 64)), "video/mp4", claim_generator="gas-node/0.1.0",
                              model_name="tiny-video"),
        "stranger.png": other.issue().signer().sign(make_png(2, (48, 48)), "image/png", claim_generator="x",
                                                     model_name="m"),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    return paths, ca_pem


def test_verify_passing_files_table(app, media, env_file):
    paths, ca_pem = media
    res = runner.invoke(app, ["verify-c2pa", str(paths["good.png"]), str(paths["good.mp4"]),
                              "--trust-anchor", str(ca_pem), "--env-file", str(env_file)])
    assert res.exit_code == 0, res.output
    assert res.output.count("passed") == 2
    assert "tiny-video" in res.output and "GAS test root CA" in res.output
    assert "1 trust anchor" in res.output


def test_verify_json_and_failure_exit_code(app, media, env_file):
    paths, ca_pem = media
    args = ["verify-c2pa", str(paths["good.png"]), str(paths["stranger.png"]), "--trust-anchor", str(ca_pem),
            "--env-file", str(env_file), "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    reports = json.loads(res.stdout)
    assert [(r["file"], r["passed"]) for r in reports] == [(str(paths["good.png"]), True),
                                                           (str(paths["stranger.png"]), False)]
    assert reports[1]["failures"] == ["signingCredential.untrusted"]
    assert reports[0]["model_name"] == "tiny" and reports[0]["hard_binding"] == "assertion.dataHash.match"
    assert all("manifest" not in r for r in reports)
    verbose = json.loads(runner.invoke(app, [*args, "--verbose"]).stdout)
    assert verbose[0]["manifest"]["active_manifest"] in verbose[0]["manifest"]["manifests"]


def test_verify_table_shows_reason_and_manifest(app, media, env_file):
    paths, ca_pem = media
    res = runner.invoke(app, ["verify-c2pa", str(paths["stranger.png"]), "--trust-anchor", str(ca_pem),
                              "--env-file", str(env_file), "--verbose"])
    assert res.exit_code == 1
    assert "failed" in res.output and "not trusted" in res.output
    assert "active_manifest" in res.output


def test_anchors_from_settings(app, media, tmp_path):
    paths, ca_pem = media
    env = tmp_path / "anchors.env"
    env.write_text(f"GAS_C2PA_TRUST_ANCHORS='[\"{ca_pem.parent}\"]'\n")
    res = runner.invoke(app, ["verify-c2pa", str(paths["good.png"]), "--env-file", str(env), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["trusted"] is True


def test_no_anchors_warns_and_fails(app, media, env_file):
    paths, _ = media
    res = runner.invoke(app, ["verify-c2pa", str(paths["good.png"]), "--env-file", str(env_file), "--json"])
    assert res.exit_code == 1
    assert "no trust anchors configured" in res.stderr
    assert json.loads(res.stdout)[0]["reason"].startswith("signer not trusted")


def test_usage_errors_exit_2(app, media, env_file, tmp_path):
    paths, ca_pem = media
    res = runner.invoke(app, ["verify-c2pa", str(tmp_path / "missing.png"), "--env-file", str(env_file)])
    assert res.exit_code == 2 and "no such file" in res.stderr and "missing.png" in res.stderr
    bad = tmp_path / "bad.pem"
    bad.write_text("not pem")
    res = runner.invoke(app, ["verify-c2pa", str(paths["good.png"]), "--trust-anchor", str(bad),
                              "--env-file", str(env_file)])
    assert res.exit_code == 2 and "bad.pem is not a PEM certificate bundle" in res.stderr
    res = runner.invoke(app, ["verify-c2pa", str(paths["good.png"]), "--trust-anchor", str(tmp_path / "nope.pem"),
                              "--env-file", str(env_file)])
    assert res.exit_code == 2 and "nope.pem does not exist" in res.stderr


def test_init_c2pa_default_dir_and_overwrite(app, env_file):
    cache = os.environ["GAS_CACHE_DIR"]  # set per test by tests/conftest.py
    res = runner.invoke(app, ["init-c2pa", "--env-file", str(env_file), "--days", "10"])
    assert res.exit_code == 0, res.output
    out = os.path.join(cache, "c2pa")
    for name in ("ca.pem", "ca.key", "signer.pem", "signer.key"):
        assert os.path.join(out, name) in res.output
    assert "trust anchor" in res.output and "note:" not in res.output
    signer = MediaSigner.from_files(os.path.join(out, "signer.pem"), os.path.join(out, "signer.key"))
    assert signer.algorithm == "es256"

    again = runner.invoke(app, ["init-c2pa", "--env-file", str(env_file)])
    assert again.exit_code == 1 and "already exist" in again.stderr and "--overwrite" in again.stderr
    replaced = runner.invoke(app, ["init-c2pa", "--env-file", str(env_file), "--overwrite"])
    assert replaced.exit_code == 0


def test_init_c2pa_custom_dir_then_verify(app, env_file, tmp_path):
    d = tmp_path / "creds"
    res = runner.invoke(app, ["init-c2pa", "--dir", str(d), "--env-file", str(env_file), "--organization", "Acme"])
    assert res.exit_code == 0, res.output
    assert "note:" in res.output and f"GAS_C2PA_CERT={d / 'signer.pem'}" in res.output
    signed = MediaSigner.from_files(d / "signer.pem", d / "signer.key").sign(
        make_png(3, (32, 32)), "image/png", claim_generator="gas-node/0.1.0", model_name="tiny")
    f = tmp_path / "out.png"
    f.write_bytes(signed)
    res = runner.invoke(app, ["verify-c2pa", str(f), "--trust-anchor", str(d / "ca.pem"), "--env-file",
                              str(env_file), "--json"])
    assert res.exit_code == 0
    assert json.loads(res.stdout)[0]["cert_issuer"] == "CN=Acme C2PA root CA,O=Acme"
    assert runner.invoke(app, ["init-c2pa", "--days", "0", "--env-file", str(env_file)]).exit_code == 2
