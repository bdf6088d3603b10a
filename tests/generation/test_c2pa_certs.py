"""init_c2pa: the dev CA and signer it writes, file modes, and refusing to overwrite."""

from __future__ import annotations

import datetime as dt
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from media_fixtures import make_png

from gas.generation.c2pa_certs import C2paCertError, init_c2pa
from gas.generation.c2pa_sign import MediaSigner
from gas.verification.c2pa import load_trust_anchors, verify_c2pa


def _ext(cert: x509.Certificate, cls):
    return cert.extensions.get_extension_for_class(cls)


def test_writes_ca_and_signer_with_c2pa_profile(tmp_path):
    out = tmp_path / "c2pa"
    paths = init_c2pa(out, organization="Acme", days=30)
    assert {p.name for p in out.iterdir()} == {"ca.pem", "ca.key", "signer.pem", "signer.key"}
    assert stat.S_IMODE(paths.signer_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.ca_key.stat().st_mode) == 0o600

    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    chain = x509.load_pem_x509_certificates(paths.signer_cert.read_bytes())
    assert len(chain) == 2 and chain[1] == ca  # leaf, then CA
    leaf = chain[0]
    leaf.verify_directly_issued_by(ca)
    key = serialization.load_pem_private_key(paths.signer_key.read_bytes(), password=None)
    assert key.public_key() == leaf.public_key()

    bc = _ext(ca, x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = _ext(ca, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    _ext(ca, x509.SubjectKeyIdentifier)

    assert not _ext(leaf, x509.BasicConstraints).value.ca
    lku = _ext(leaf, x509.KeyUsage)
    assert lku.critical and lku.value.digital_signature and not lku.value.key_cert_sign
    assert list(_ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    aki = _ext(leaf, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(ca, x509.SubjectKeyIdentifier).value.digest

    lifetime = leaf.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(days=29) < lifetime <= dt.timedelta(days=30)
    assert ca.not_valid_after_utc > leaf.not_valid_after_utc
    assert "Acme" in leaf.subject.rfc4514_string()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_signer_from_init_is_trusted_by_its_ca(tmp_path):
    paths = init_c2pa(tmp_path)
    signer = MediaSigner.from_files(paths.signer_cert, paths.signer_key)
    signed = signer.sign(make_png(1, (64, 64)), "image/png", claim_generator="gas-node/0.1.0", model_name="m")
    report = verify_c2pa(signed, trust_anchors_pem=load_trust_anchors([paths.ca_cert], anchor_dir=tmp_path / "none"))
    assert report.passed, report.reason


def test_refuses_to_overwrite_and_names_the_files(tmp_path):
    paths = init_c2pa(tmp_path)
    before = {p: p.read_bytes() for p in paths.all()}
    with pytest.raises(C2paCertError) as err:
        init_c2pa(tmp_path)
    for p in paths.all():
        assert str(p) in str(err.value)
    assert {p: p.read_bytes() for p in paths.all()} == before

    # one leftover file is enough to refuse
    for p in (paths.ca_cert, paths.ca_key, paths.signer_cert):
        p.unlink()
    with pytest.raises(C2paCertError, match="signer.key"):
        init_c2pa(tmp_path)

    new = init_c2pa(tmp_path, overwrite=True)
    assert new.signer_key.read_bytes() != before[paths.signer_key]
    assert new.ca_cert.exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(C2paCertError, match="days"):
        init_c2pa(tmp_path, days=0)
    with pytest.raises(C2paCertError, match="organization"):
        init_c2pa(tmp_path, organization="  ")
    assert not list(tmp_path.iterdir())
