"""validate_package: every check recorded, all problems reported at once, the smoke hook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from detector_packages import package_files, write_dir, write_zip

from gas.submissions.package import ModelPackage, PackageLimits
from gas.submissions.validate import CheckResult, validate_package

PRE_RUN = ["layout", "files", "config", "safetensors", "static"]


def test_valid_package_passes_every_check(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "pkg.zip", package_files("video"))
    report = validate_package(z)
    try:
        assert report.ok, report.to_dict()
        assert [r.name for r in report.results] == [*PRE_RUN, "smoke"]
        assert all(r.ok for r in report.results[:5])
        smoke = report.result("smoke")
        assert smoke is not None and smoke.skipped
        assert isinstance(report.package, ModelPackage) and report.package.root.is_dir()
        d = report.to_dict()
        json.dumps(d)
        assert d["ok"] and d["sha256"] == report.package.sha256 and d["modality"] == "video"
        assert {f["name"] for f in d["files"]} == {"model.py", "model.safetensors", "model_config.yaml"}
        assert all(r["duration_s"] >= 0 for r in d["checks"])
    finally:
        root = report.package.root if report.package else None
        report.cleanup()
    assert root is not None and not root.exists()


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    files = package_files()
    files["model.pt"] = b"\x80\x04."
    files["model_config.yaml"] = b"modality: image\nmodel: {num_classes: 0}\n"
    files["model.py"] = b"import os\n\ndef load_model(p):\n    return eval('x')\n"
    files["model.safetensors"] = b"\x80\x04K\x01."
    report = validate_package(write_dir(tmp_path / "pkg", files))
    assert not report.ok and report.package is None
    by = {r.name: r for r in report.results}
    assert by["layout"].ok
    assert not by["files"].ok and "forbidden-file" in by["files"].ids and "model.pt" in by["files"].detail
    assert not by["config"].ok and "model.num_classes: must be >= 1" in by["config"].detail
    assert not by["safetensors"].ok and "pickle" in by["safetensors"].detail
    assert not by["static"].ok and len(by["static"].problems) == 2
    assert "model.py:1:0" in by["static"].problems[0]
    assert by["smoke"].skipped
    assert {r.name for r in report.failures} == {"files", "config", "safetensors", "static"}
    assert "config: model_config.yaml: model.num_classes: must be >= 1" in report.errors
    assert any(e.startswith("static: model.py:1:0: [import-blocked]") for e in report.errors)
    assert str(by["config"]).startswith("config: FAILED: ")


def test_layout_failure_skips_the_rest_and_extracts_nothing(tmp_path: Path) -> None:
    z = write_zip(tmp_path / "pkg.zip", {**package_files(), "../evil.txt": b"x"})
    out = tmp_path / "out"
    called = []
    report = validate_package(z, dest=out, smoke=lambda p: called.append(p) or CheckResult("smoke", True))
    assert not report.ok and not called and not out.exists()
    assert report.results[0].name == "layout" and "zip-slip" in report.results[0].ids
    assert all(r.skipped for r in report.results[1:])


def test_missing_files_skip_dependent_checks(tmp_path: Path) -> None:
    report = validate_package(write_dir(tmp_path / "pkg", {"README.md": b"hi"}))
    by = {r.name: r for r in report.results}
    assert not by["files"].ok and by["files"].ids.count("missing-file") == 3
    assert by["config"].skipped and by["safetensors"].skipped and by["static"].skipped


def test_smoke_callback_gets_the_package(tmp_path: Path) -> None:
    seen: list[ModelPackage] = []

    def smoke(pkg: ModelPackage) -> CheckResult:
        seen.append(pkg)
        return CheckResult("smoke", True, "logits [2, 2]")

    report = validate_package(write_dir(tmp_path / "pkg", package_files()), smoke=smoke)
    assert report.ok and seen == [report.package]
    res = report.result("smoke")
    assert res is not None and res.ok and res.detail == "logits [2, 2]" and res.duration_s >= 0


def test_smoke_failure_or_exception_fails_the_report(tmp_path: Path) -> None:
    d = write_dir(tmp_path / "pkg", package_files())
    report = validate_package(d, smoke=lambda p: CheckResult("smoke", False, "NaN logits"))
    assert not report.ok and report.package is not None and report.failures[0].name == "smoke"

    def boom(pkg: ModelPackage) -> CheckResult:
        raise RuntimeError("sandbox died")

    report = validate_package(d, smoke=boom)
    assert not report.ok and "RuntimeError: sandbox died" in report.failures[0].detail


def test_limits_are_applied(tmp_path: Path) -> None:
    report = validate_package(write_dir(tmp_path / "pkg", package_files()),
                              limits=PackageLimits(max_model_py_bytes=10))
    assert not report.ok and "file-size" in report.result("files").ids  # type: ignore[union-attr]


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_modality_argument(tmp_path: Path, modality: str) -> None:
    files = package_files()
    files["model_config.yaml"] = b"name: ref-style\n"
    report = validate_package(write_dir(tmp_path / "pkg", files), modality=modality)
    assert report.ok and report.package is not None and report.package.modality.value == modality
