"""Self-made certificate authorities and C2PA-signed media for tests (real c2pa, no network).

``make_ca()`` builds an EC P-256 root; ``ca.issue(...)`` a signing leaf with any validity window,
EKU or CA flag, so tests can make trusted, untrusted, expired, EKU-less and mismatched credentials.
``sign_with_manifest`` signs with an arbitrary manifest through c2pa directly (for manifests our
MediaSigner would never write, e.g. without softwareAgent).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _name(org: str, cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Leaf:
    key: Any
    cert: x509.Certificate
    ca: TestCA

    @property
    def chain_pem(self) -> bytes:
        return cert_pem(self.cert) + self.ca.pem

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.key)

    def write(self, directory: Path, stem: str = "signer") -> tuple[Path, Path]:
        """Write ``<stem>.pem`` (chain) and ``<stem>.key``; return their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert_path.write_bytes(self.chain_pem)
        key_path.write_bytes(self.key_pem)
        key_path.chmod(0o600)
        return cert_path, key_path

    def signer(self, **kwargs: Any):
        from gas.generation.c2pa_sign import MediaSigner

        return MediaSigner(self.chain_pem, self.key_pem, **kwargs)


@dataclass
class TestCA:
    key: Any
    cert: x509.Certificate
    org: str

    __test__ = False  # not a pytest test class

    @property
    def pem(self) -> bytes:
        return cert_pem(self.cert)

    @property
    def pem_str(self) -> str:
        return self.pem.decode()

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.pem)
        return path

    def issue(
        self,
        cn: str = "Test signer",
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        eku: list | None = None,
        with_eku: bool = True,
        ca: bool = False,
        org: str | None = None,
    ) -> Leaf:
        """A signing certificate issued by this CA (defaults: valid yesterday..+30 days, emailProtection)."""
        now = utcnow()
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(org or self.org, cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(days=1))
            .not_valid_after(not_after or now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, ca, ca, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if with_eku:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage(eku or [ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
            )
        return Leaf(key=key, cert=builder.sign(self.key, hashes.SHA256()), ca=self)


def make_ca(cn: str = "GAS test root CA", org: str = "GAS test") -> TestCA:
    """A self-signed EC P-256 root (valid yesterday..+60 days)."""
    now = utcnow()
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(org, cn)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=60))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return TestCA(key=key, cert=cert, org=org)


def sign_with_manifest(data: bytes, mime: str, leaf: Leaf, manifest: dict) -> bytes:
    """Sign ``data`` with any manifest through c2pa itself (thumbnail off)."""
    import c2pa

    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(alg=b"es256", sign_cert=leaf.chain_pem, private_key=leaf.key_pem, ta_url=None)
    )
    ctx = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    dst = io.BytesIO()
    try:
        with c2pa.Builder(manifest, context=ctx) as builder:
            builder.sign(signer, mime, io.BytesIO(data), dst)
    finally:
        signer.close()
    return dst.getvalue()


def flip_byte_after(data: bytes, marker: bytes, offset: int = 64) -> bytes:
    """``data`` with one byte inverted ``offset`` bytes after the last ``marker`` (e.g. b"IDAT", b"mdat")."""
    i = data.rfind(marker)
    assert i >= 0, f"{marker!r} not in data"
    out = bytearray(data)
    out[i + len(marker) + offset] ^= 0xFF
    return bytes(out)
