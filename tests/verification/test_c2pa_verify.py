"""verify_c2pa and load_trust_anchors with real c2pa and self-made CAs.

Trust comes only from the certificate chain: a CA with the very same name as the trusted one, or a
signer calling itself "OpenAI", is still untrusted.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest
from c2pa_fixtures import TRAINED, flip_byte_after, make_ca, sign_with_manifest, utcnow
from media_fixtures import encode_image, make_clip, make_png, photo

from gas.verification import C2paReport, TrustAnchorError, load_trust_anchors, verify_c2pa
from gas.verification.c2pa import anchor_subjects, default_anchor_dir


@pytest.fixture(scope="module")
def ca():
    return make_ca()


@pytest.fixture(scope="module")
def signer(ca):
    return ca.issue().signer()


@pytest.fixture(scope="module")
def png() -> bytes:
    return make_png(0, (64, 64))


@pytest.fixture(scope="module")
def signed_png(signer, png) -> bytes:
    return signer.sign(png, "image/png", claim_generator="gas-node/0.1.0", model_name="tiny-sd")


def test_trusted(ca, signed_png):
    before = utcnow()
    r = verify_c2pa(signed_png, trust_anchors_pem=ca.pem_str)
    assert r.passed and r.reason == "ok"
    assert (r.verified, r.trusted, r.validation_state) == (True, True, "Trusted")
    assert r.hard_binding == "assertion.dataHash.match"
    assert r.failures == [] and r.error is None
    assert r.model_name == "tiny-sd" and r.claim_generator == "gas-node/0.1.0" and r.ai_generated
    assert r.cert_issuer == "CN=GAS test root CA,O=GAS test"
    assert r.cert_subject == "CN=Test signer,O=GAS test"
    assert r.signing_time is not None and r.signing_time.tzinfo is not None
    assert before - dt.timedelta(minutes=5) < r.signing_time <= before
    d = r.to_dict()
    json.dumps(d)
    assert d["passed"] is True and d["signing_time"] == r.signing_time.isoformat() and "manifest" in d
    assert "manifest" not in r.to_dict(include_manifest=False)


def test_signed_by_another_ca_is_untrusted(ca, png):
    other = make_ca()
    signed = other.issue().signer().sign(png, "image/png", claim_generator="gas-node", model_name="m")
    r = verify_c2pa(signed, trust_anchors_pem=ca.pem_str)
    assert not r.passed
    assert r.verified and not r.trusted
    assert r.validation_state == "Valid"
    assert r.failures == ["signingCredential.untrusted"]
    assert "not trusted" in r.reason
    # the same file passes for a validator that trusts the other CA (both anchors in one bundle)
    assert verify_c2pa(signed, trust_anchors_pem=ca.pem_str + other.pem_str).passed


def test_names_do_not_make_a_signer_trusted(ca, png):
    """A CA that copies the trusted CA's name, and a signer named like a provider: both untrusted."""
    twin = make_ca(cn="GAS test root CA", org="GAS test")
    assert twin.cert.subject == ca.cert.subject
    leaf = twin.issue("OpenAI C2PA signer", org="OpenAI")
    signed = leaf.signer().sign(png, "image/png", claim_generator="OpenAI-API/1.0", model_name="gpt-image-1")
    r = verify_c2pa(signed, trust_anchors_pem=ca.pem_str)
    assert r.cert_issuer == "CN=GAS test root CA,O=GAS test"
    assert r.cert_subject == "CN=OpenAI C2PA signer,O=OpenAI"
    assert not r.trusted and not r.passed
    assert "signingCredential.untrusted" in r.failures


def test_no_anchors_trusts_nothing(signed_png):
    r = verify_c2pa(signed_png, trust_anchors_pem="")
    assert r.verified and not r.trusted and not r.passed


def test_tampered_png_fails_hash(ca, signed_png):
    tampered = flip_byte_after(signed_png, b"IDAT", 100)
    r = verify_c2pa(tampered, trust_anchors_pem=ca.pem_str)
    assert not r.passed and not r.verified
    assert r.validation_state == "Invalid"
    assert "assertion.dataHash.mismatch" in r.failures
    assert r.hard_binding is None
    assert "assertion.dataHash.mismatch" in r.reason


def test_mp4_signed_and_tampered(ca, signer):
    clip = make_clip(8, (64, 96))
    signed = signer.sign(clip, "video/mp4", claim_generator="gas-node/0.1.0", model_name="tiny-video")
    r = verify_c2pa(signed, trust_anchors_pem=ca.pem_str)
    assert r.passed, r.reason
    assert r.mime == "video/mp4" and r.hard_binding == "assertion.bmffHash.match"
    assert r.model_name == "tiny-video"
    bad = verify_c2pa(flip_byte_after(signed, b"mdat", 200), trust_anchors_pem=ca.pem_str)
    assert not bad.passed and "assertion.bmffHash.mismatch" in bad.failures


def test_unsigned_and_unreadable_media_give_reports(ca, png, signed_png):
    cases = {
        "unsigned": (png, "no C2PA manifest found"),
        "garbage": (b"definitely not media" * 10, "unrecognised media"),
        "empty": (b"", "empty media"),
        "bmp": (encode_image(photo(1, (16, 16)), "BMP"), "unsupported media type image/bmp"),
        "truncated": (signed_png[: len(signed_png) // 3], "c2pa could not read"),
    }
    for name, (data, expected) in cases.items():
        r = verify_c2pa(data, trust_anchors_pem=ca.pem_str)
        assert isinstance(r, C2paReport), name
        assert not r.passed and r.error is not None, name
        assert expected in r.error, (name, r.error)
        assert r.reason == r.error
        json.dumps(r.to_dict())


def test_mime_argument(ca, signed_png):
    assert verify_c2pa(signed_png, trust_anchors_pem=ca.pem_str, mime="image/png").passed
    r = verify_c2pa(signed_png, trust_anchors_pem=ca.pem_str, mime="application/x-nonsense")
    assert not r.passed and "unsupported media type" in r.error


def test_expired_leaf(ca, png):
    """c2pa refuses to sign with a leaf that is already expired (see test_c2pa_sign), so sign with a
    leaf valid for one more second, wait until it has expired, then verify: without a time stamp
    c2pa checks the certificate against the current time and reports it expired."""
    end = utcnow().replace(microsecond=0) + dt.timedelta(seconds=2)
    leaf = ca.issue(not_after=end)
    signed = leaf.signer().sign(png, "image/png", claim_generator="gas-node", model_name="m")
    assert verify_c2pa(signed, trust_anchors_pem=ca.pem_str).passed
    # c2pa compares whole seconds and wants now > notAfter: about one second past the end
    time.sleep(max(0.0, (end - utcnow()).total_seconds()) + 1.2)
    r = verify_c2pa(signed, trust_anchors_pem=ca.pem_str)
    assert not r.passed and not r.trusted and not r.verified
    assert "signingCredential.expired" in r.failures
    assert r.validation_state == "Invalid"


def test_model_name_and_time_from_other_manifest_shapes(ca, png):
    leaf = ca.issue()
    # softwareAgent as a generator-info map, several actions: the latest `when` is the signing time
    manifest = {
        "claim_generator_info": [{"name": "Acme_Gen", "version": "2.0"}],
        "title": "t",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [
            {"action": "c2pa.created", "digitalSourceType": TRAINED,
             "softwareAgent": {"name": "acme-diffusion", "version": "3"}, "when": "2026-01-02T03:04:05Z"},
            {"action": "c2pa.edited", "when": "2026-01-02T03:09:00+00:00"},
        ]}}],
    }
    r = verify_c2pa(sign_with_manifest(png, "image/png", leaf, manifest), trust_anchors_pem=ca.pem_str)
    assert r.passed, r.reason
    assert r.model_name == "acme-diffusion"
    assert r.signing_time == dt.datetime(2026, 1, 2, 3, 9, tzinfo=dt.timezone.utc)
    assert r.ai_generated

    # no softwareAgent: the claim generator's product; no digitalSourceType: not marked AI; no when
    manifest = {
        "claim_generator_info": [{"name": "Acme_Gen", "version": "2.0"}],
        "title": "t",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [
            {"action": "c2pa.created", "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"}
        ]}}],
    }
    r = verify_c2pa(sign_with_manifest(png, "image/png", leaf, manifest), trust_anchors_pem=ca.pem_str)
    assert r.passed
    assert r.model_name == "Acme_Gen" and r.claim_generator == "Acme_Gen/2.0"
    assert not r.ai_generated
    assert r.signing_time is None


def test_concurrent_verification(ca, signed_png):
    results: list[bool] = []

    def work() -> None:
        for _ in range(10):
            results.append(verify_c2pa(signed_png, trust_anchors_pem=ca.pem_str).passed)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 40


# --- trust anchors -------------------------------------------------------------------------------


def test_load_trust_anchors(tmp_path, ca, signed_png):
    anchor_dir = tmp_path / "anchors"
    anchor_dir.mkdir()
    assert load_trust_anchors(anchor_dir=anchor_dir) == ""
    (anchor_dir / "README.md").write_text("not a certificate, and ignored\n")
    other = make_ca("Other root")
    ca.write(anchor_dir / "ours.pem")
    extra_dir = tmp_path / "extra"
    other.write(extra_dir / "other.pem")
    dup = ca.write(tmp_path / "dup.pem")
    bundle = load_trust_anchors([extra_dir, dup], anchor_dir=anchor_dir)
    assert anchor_subjects(bundle) == ["CN=GAS test root CA,O=GAS test", "CN=Other root,O=GAS test"]
    assert verify_c2pa(signed_png, trust_anchors_pem=bundle).passed


def test_load_trust_anchors_errors_name_the_file(tmp_path, ca):
    anchor_dir = tmp_path / "anchors"
    anchor_dir.mkdir()
    bad = anchor_dir / "broken.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(TrustAnchorError, match="broken.pem is not a PEM certificate bundle"):
        load_trust_anchors(anchor_dir=anchor_dir)
    bad.unlink()
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    with pytest.raises(TrustAnchorError, match="junk.pem"):
        load_trust_anchors([junk], anchor_dir=anchor_dir)
    with pytest.raises(TrustAnchorError, match="missing.pem does not exist"):
        load_trust_anchors([tmp_path / "missing.pem"], anchor_dir=anchor_dir)


def test_shipped_anchor_dir_loads():
    """configs/trust_anchors ships a README and possibly no PEM at all: loading must still work."""
    assert (default_anchor_dir() / "README.md").is_file()
    bundle = load_trust_anchors()
    if list(default_anchor_dir().glob("*.pem")):
        assert anchor_subjects(bundle)
    else:
        assert bundle == ""
