"""install.sh: clear failures on a machine without Python/npm, and a quick no-op second run.

The failure cases run a copy of install.sh in a scratch project whose PATH holds only the
tools we choose, with a stand-in for the venv's python, so no package is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("bash", "cat", "cut", "sed", "sha256sum", "dirname", "id", "env", "sh")

FAKE_PYTHON = """#!/bin/sh
# stands in for python: reports version {ver}
case "$1" in
  -V) echo "Python {ver}.0" ;;
  -c) case "$2" in *version_info*) echo "{ver}" ;; *) exit 0 ;; esac ;;
  *) exit 0 ;;
esac
"""


def _scratch(tmp_path: Path, *, py_ver: str = "3.11", node_major: int | None = None, npm: bool = False) -> tuple[Path, dict]:
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(REPO / "install.sh", proj / "install.sh")
    (proj / "pyproject.toml").write_text("[project]\nname='x'\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    py = bindir / "python3"
    py.write_text(FAKE_PYTHON.format(ver=py_ver))
    py.chmod(0o755)
    # a ready .venv whose stamp matches, so the python step is a no-op
    venv_bin = proj / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    shutil.copy(py, venv_bin / "python")
    stamp = hashlib.sha256(((proj / "pyproject.toml").read_text() + "extras=\n" + f"Python {py_ver}.0\n").encode())
    (proj / ".venv" / ".gas-install-stamp").write_text(stamp.hexdigest() + "\n")
    if node_major is not None:
        node = bindir / "node"
        node.write_text(f"#!/bin/sh\necho {node_major}\n")
        node.chmod(0o755)
    if npm:
        fake_npm = bindir / "npm"
        fake_npm.write_text("#!/bin/sh\necho npm should not run >&2; exit 9\n")
        fake_npm.chmod(0o755)
    return proj, {"PATH": str(bindir), "HOME": str(tmp_path)}


def _run(proj: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(proj / "install.sh"), *args], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def test_missing_python_is_named(tmp_path: Path) -> None:
    proj, env = _scratch(tmp_path)
    res = _run(proj, {**env, "PYTHON": "python3.99"}, "--no-system-deps")
    assert res.returncode == 1
    assert "python3.99 not found" in res.stderr and "Python >= 3.10" in res.stderr


def test_old_python_is_refused(tmp_path: Path) -> None:
    proj, env = _scratch(tmp_path, py_ver="3.8")
    res = _run(proj, env)
    assert res.returncode == 1
    assert "Python 3.8 is too old" in res.stderr


def test_missing_npm_is_named(tmp_path: Path) -> None:
    proj, env = _scratch(tmp_path, node_major=20)
    res = _run(proj, env)
    assert res.returncode == 1, res.stdout
    assert "Python packages are up to date" in res.stdout
    assert "npm not found" in res.stderr


def test_old_node_is_refused(tmp_path: Path) -> None:
    proj, env = _scratch(tmp_path, node_major=14, npm=True)
    res = _run(proj, env)
    assert res.returncode == 1
    assert "too old" in res.stderr and ">= 18" in res.stderr


def test_unknown_option(tmp_path: Path) -> None:
    proj, env = _scratch(tmp_path)
    res = _run(proj, env, "--frobnicate")
    assert res.returncode == 1 and "unknown option: --frobnicate" in res.stderr


def test_help_explains_options(tmp_path: Path) -> None:
    proj, env = _scratch(tmp_path)
    res = _run(proj, env, "--help")
    assert res.returncode == 0
    for flag in ("--dev", "--no-system-deps", "--force"):
        assert flag in res.stdout


@pytest.mark.slow
def test_second_run_on_this_checkout_is_a_noop() -> None:
    """The checkout was set up with --dev (README, CI); running it again changes nothing."""
    stamp = REPO / ".venv" / ".gas-install-stamp"
    if not stamp.is_file():
        pytest.skip("this checkout was not set up by install.sh")
    before = (stamp.read_text(), stamp.stat().st_mtime_ns)
    res = subprocess.run(["bash", str(REPO / "install.sh"), "--dev"], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=600, env={**os.environ})
    assert res.returncode == 0, res.stderr
    assert "Python packages are up to date (.venv, [test])" in res.stdout
    assert "pm2 found" in res.stdout
    assert (stamp.read_text(), stamp.stat().st_mtime_ns) == before
