"""MediaSigner: real c2pa signing of PNG, JPEG and H.264 MP4, and clear errors for bad credentials."""

from __future__ import annotations

import datetime as dt
import io
import threading

import numpy as np
import pytest
from c2pa_fixtures import make_ca, utcnow
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from media_fixtures import make_clip, make_jpeg, make_png
from PIL import Image

from gas.generation.c2pa_sign import MAX_PROMPT_CHARS, TRAINED_ALGORITHMIC_MEDIA, C2paSigningError, MediaSigner
from gas.verification.c2pa import verify_c2pa


@pytest.fixture(scope="module")
def ca():
    return make_ca()


@pytest.fixture(scope="module")
def signer(ca):
    return ca.issue().signer()


def _active(report) -> dict:
    store = report.manifest
    return store["manifests"][store["active_manifest"]]


def _created_action(report) -> dict:
    (actions,) = [a for a in _active(report)["assertions"] if a["label"].startswith("c2pa.actions")]
    (action,) = actions["data"]["actions"]
    return action


@pytest.mark.parametrize(
    ("mime", "make", "binding"),
    [
        ("image/png", lambda: make_png(2, (96, 128)), "assertion.dataHash.match"),
        ("image/jpeg", lambda: make_jpeg(3, (96, 128)), "assertion.dataHash.match"),
        ("video/mp4", lambda: make_clip(6, (64, 96)), "assertion.bmffHash.match"),
    ],
)
def test_signs_and_verifies(ca, signer, mime, make, binding):
    data = make()
    signed = signer.sign(data, mime, claim_generator="gas-node/0.1.0", model_name="tiny-sd", prompt="a red fox")
    report = verify_c2pa(signed, trust_anchors_pem=ca.pem_str)
    assert report.passed, report.reason
    assert report.hard_binding == binding
    assert report.mime == mime
    assert report.model_name == "tiny-sd"
    assert report.claim_generator == "gas-node/0.1.0"
    assert report.ai_generated
    # no thumbnail: the manifest adds a few KB, not a preview image
    assert len(signed) - len(data) < 16_000
    assert "thumbnail" not in _active(report)


def test_png_pixels_unchanged(signer):
    data = make_png(4, (64, 64))
    signed = signer.sign(data, "image/png", claim_generator="gas-node", model_name="m")
    a = np.asarray(Image.open(io.BytesIO(data)))
    b = np.asarray(Image.open(io.BytesIO(signed)))
    assert np.array_equal(a, b)


def test_manifest_content(ca):
    fixed = dt.datetime(2026, 3, 1, 12, 30, 15, 250000, tzinfo=dt.timezone.utc)
    leaf = ca.issue(not_before=fixed - dt.timedelta(days=1), not_after=utcnow() + dt.timedelta(days=5))
    signer = leaf.signer(clock=lambda: fixed)
    long_prompt = "x" * (MAX_PROMPT_CHARS + 50)
    signed = signer.sign(make_png(5, (32, 32)), "image/png", claim_generator="gas-node/1.2.3",
                         model_name="stabilityai/sdxl", prompt=long_prompt)
    report = verify_c2pa(signed, trust_anchors_pem=ca.pem_str)
    action = _created_action(report)
    assert action["action"] == "c2pa.created"
    assert action["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert action["softwareAgent"] == "stabilityai/sdxl"
    assert action["when"] == "2026-03-01T12:30:15.250+00:00"
    assert action["parameters"]["prompt"] == "x" * MAX_PROMPT_CHARS
    info = _active(report)["claim_generator_info"][0]
    assert (info["name"], info["version"]) == ("gas-node", "1.2.3")
    assert report.signing_time == fixed
    assert report.cert_subject == signer.subject == "CN=Test signer,O=GAS test"
    assert report.cert_issuer == signer.issuer == "CN=GAS test root CA,O=GAS test"


def test_concurrent_signing_with_one_signer(ca, signer):
    images = [make_png(i, (48, 48)) for i in range(8)]
    out: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            out[i] = signer.sign(images[i], "image/png", claim_generator="gas-node", model_name=f"m{i}")
        except BaseException as e:  # collected and asserted on below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, data in out.items():
        report = verify_c2pa(data, trust_anchors_pem=ca.pem_str)
        assert report.passed and report.model_name == f"m{i}"


# --- input validation ---------------------------------------------------------------------------


def test_missing_files(tmp_path, ca):
    cert, key = ca.issue().write(tmp_path)
    with pytest.raises(C2paSigningError, match="certificate chain .*does not exist.*init-c2pa"):
        MediaSigner.from_files(tmp_path / "nope.pem", key)
    with pytest.raises(C2paSigningError, match="private key .*does not exist"):
        MediaSigner.from_files(cert, tmp_path / "nope.key")
    assert MediaSigner.from_files(cert, key).subject == "CN=Test signer,O=GAS test"


def test_bad_pem(tmp_path, ca):
    cert, key = ca.issue().write(tmp_path)
    bad = tmp_path / "bad.pem"
    bad.write_text("this is not a certificate\n")
    with pytest.raises(C2paSigningError, match="not valid PEM"):
        MediaSigner.from_files(bad, key)
    with pytest.raises(C2paSigningError, match="private key is not a valid PEM key"):
        MediaSigner.from_files(cert, bad)


def test_encrypted_key(ca):
    leaf = ca.issue()
    enc = leaf.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(C2paSigningError, match="encrypted"):
        MediaSigner(leaf.chain_pem, enc)


def test_key_does_not_match_certificate(ca):
    a, b = ca.issue("A"), ca.issue("B")
    with pytest.raises(C2paSigningError, match="does not belong to the first certificate"):
        MediaSigner(a.chain_pem, b.key_pem)


def test_leaf_without_eku(ca):
    leaf = ca.issue(with_eku=False)
    with pytest.raises(C2paSigningError, match="no extended key usage"):
        MediaSigner(leaf.chain_pem, leaf.key_pem)
    server = ca.issue(eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    with pytest.raises(C2paSigningError, match="no C2PA-usable extended key usage"):
        MediaSigner(server.chain_pem, server.key_pem)


def test_ca_certificate_as_signer(ca):
    leaf = ca.issue(ca=True)
    with pytest.raises(C2paSigningError, match="is a CA certificate"):
        MediaSigner(leaf.chain_pem, leaf.key_pem)


def test_chain_out_of_order(ca):
    leaf = ca.issue()
    other = make_ca("Other root")
    with pytest.raises(C2paSigningError, match="out of order"):
        MediaSigner(leaf.chain_pem.replace(ca.pem, other.pem), leaf.key_pem)


def test_expired_and_not_yet_valid(ca):
    now = utcnow()
    expired = ca.issue(not_before=now - dt.timedelta(days=10), not_after=now - dt.timedelta(days=1))
    with pytest.raises(C2paSigningError, match="expired at"):
        MediaSigner(expired.chain_pem, expired.key_pem)
    future = ca.issue(not_before=now + dt.timedelta(days=1), not_after=now + dt.timedelta(days=10))
    with pytest.raises(C2paSigningError, match="not valid before"):
        MediaSigner(future.chain_pem, future.key_pem)


def test_c2pa_itself_refuses_an_expired_leaf(ca):
    """With our own check fooled by a clock in the past, c2pa still refuses (it checks validity at
    signing time against the real clock): the probe signature turns that into C2paSigningError."""
    now = utcnow()
    expired = ca.issue(not_before=now - dt.timedelta(days=10), not_after=now - dt.timedelta(days=1))
    with pytest.raises(C2paSigningError, match="c2pa refuses to sign .*not valid at time of signing"):
        MediaSigner(expired.chain_pem, expired.key_pem, clock=lambda: now - dt.timedelta(days=5))


def test_certificate_expiring_while_running(ca):
    now = utcnow()
    leaf = ca.issue(not_after=now + dt.timedelta(days=2))
    clock = {"t": now}
    signer = leaf.signer(clock=lambda: clock["t"])
    signer.sign(make_png(6, (16, 16)), "image/png", claim_generator="g", model_name="m")
    clock["t"] = now + dt.timedelta(days=3)
    with pytest.raises(C2paSigningError, match="expired at .*init-c2pa --overwrite"):
        signer.sign(make_png(6, (16, 16)), "image/png", claim_generator="g", model_name="m")


def test_bad_sign_arguments(signer):
    png = make_png(7, (16, 16))
    with pytest.raises(C2paSigningError, match="cannot sign 'image/gif'"):
        signer.sign(png, "image/gif", claim_generator="g", model_name="m")
    with pytest.raises(C2paSigningError, match="the data is image/png, not image/jpeg"):
        signer.sign(png, "image/jpeg", claim_generator="g", model_name="m")
    with pytest.raises(C2paSigningError, match="not a recognised media type"):
        signer.sign(b"hello world", "image/png", claim_generator="g", model_name="m")
    with pytest.raises(C2paSigningError, match="empty"):
        signer.sign(b"", "image/png", claim_generator="g", model_name="m")
    with pytest.raises(C2paSigningError, match="model_name"):
        signer.sign(png, "image/png", claim_generator="g", model_name=" ")
    # an alias of a supported type is fine
    jpeg = make_jpeg(8, (16, 16))
    assert signer.sign(jpeg, "image/jpg", claim_generator="g", model_name="m") != jpeg
