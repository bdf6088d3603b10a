"""pm2 wrapper logic that needs no pm2 daemon."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gascli import pm2 as pm2mod
from gascli.app import app
from gascli.pm2 import PM2Error, PM2NotFound, find_pm2, parse_jlist


def test_missing_pm2_gives_one_line_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pm2mod, "project_root", lambda: tmp_path)  # no .node/ there
    env = {"PATH": str(tmp_path)}
    with pytest.raises(PM2NotFound) as exc:
        find_pm2(env)
    assert "install.sh" in str(exc.value) and "\n" not in str(exc.value)

    monkeypatch.setenv("PATH", str(tmp_path))
    res = CliRunner().invoke(app, ["status"])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [f"error: {exc.value}"]


def test_find_prefers_path_then_project_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = tmp_path / "proj" / ".node" / "bin"
    local.mkdir(parents=True)
    (local / "pm2").write_text("#!/bin/sh\n")
    (local / "pm2").chmod(0o755)
    monkeypatch.setattr(pm2mod, "project_root", lambda: tmp_path / "proj")
    assert find_pm2({"PATH": str(tmp_path / "empty")}) == local / "pm2"
    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "pm2").write_text("#!/bin/sh\n")
    (on_path / "pm2").chmod(0o755)
    assert find_pm2({"PATH": str(on_path)}) == on_path / "pm2"
    with pytest.raises(PM2Error, match="GAS_PM2"):
        find_pm2({"GAS_PM2": str(tmp_path / "missing")})


def test_parse_jlist_skips_banner_and_trailing_warning() -> None:
    out = "banner [PM2] Spawning daemon\n[PM2] ok\n[{\"name\": \"a\", \"pm_id\": 0}]\x1b[33m[PM2][WARN] x\n"
    assert parse_jlist(out) == [{"name": "a", "pm_id": 0}]
    assert parse_jlist("[]") == []
    with pytest.raises(PM2Error, match="no process list"):
        parse_jlist("[PM2] something went wrong")


def test_failing_pm2_surfaces_its_message(tmp_path: Path) -> None:
    fake = tmp_path / "pm2"
    fake.write_text("#!/bin/sh\necho 'boom: disk full' >&2\nexit 3\n")
    fake.chmod(0o755)
    client = pm2mod.PM2(fake, home=tmp_path / "h")
    with pytest.raises(PM2Error, match=r"'pm2 stop x' failed \(exit 3\): boom: disk full"):
        client.stop("x")
    assert client.env["PM2_HOME"] == str(tmp_path / "h")
