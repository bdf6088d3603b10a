"""A development C2PA certificate authority: one root CA and one signing certificate issued by it.

The local diffusers service signs its output with C2PA so validators can check where it came from.
Real providers sign with certificates chaining to public roots; an operator running local models
makes their own CA with :func:`init_c2pa` and validators that want to accept that miner add
``ca.pem`` as a trust anchor. Trust is decided by the certificate chain only, so a self-made CA is
trusted exactly where someone chose to trust it and nowhere else.

The certificate profile follows what c2pa-rs requires of a claim signer: EC P-256, a leaf with
``BasicConstraints(ca=False)``, ``KeyUsage(digitalSignature)`` critical and an
``ExtendedKeyUsage`` of ``emailProtection`` (c2pa rejects signers without a suitable EKU).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from gas.storage.files import atomic_write

CA_CERT_NAME = "ca.pem"
CA_KEY_NAME = "ca.key"
SIGNER_CERT_NAME = "signer.pem"
SIGNER_KEY_NAME = "signer.key"

#: Certificates start this long before "now" so a validator whose clock is a little behind accepts them.
_BACKDATE = dt.timedelta(minutes=5)


class C2paCertError(Exception):
    """The C2PA credentials could not be created (existing files, bad arguments, unwritable folder)."""


@dataclass(frozen=True)
class C2paPaths:
    """Where :func:`init_c2pa` wrote the CA and the signer (``signer_cert`` is the chain leaf, CA)."""

    ca_cert: Path
    ca_key: Path
    signer_cert: Path
    signer_key: Path

    def all(self) -> tuple[Path, Path, Path, Path]:
        return (self.ca_cert, self.ca_key, self.signer_cert, self.signer_key)


def c2pa_paths(out_dir: Path) -> C2paPaths:
    """The four file names :func:`init_c2pa` uses inside ``out_dir``."""
    out_dir = Path(out_dir)
    return C2paPaths(
        ca_cert=out_dir / CA_CERT_NAME,
        ca_key=out_dir / CA_KEY_NAME,
        signer_cert=out_dir / SIGNER_CERT_NAME,
        signer_key=out_dir / SIGNER_KEY_NAME,
    )


def init_c2pa(
    out_dir: Path,
    *,
    organization: str = "GAS dev",
    common_name: str | None = None,
    days: int = 365,
    overwrite: bool = False,
) -> C2paPaths:
    """Create a root CA and a C2PA signing certificate in ``out_dir``; refuse to replace existing files.

    ``common_name`` names the signer (default ``"<organization> C2PA signer"``). The leaf is valid for
    ``days``; the CA one day longer, so the chain never outlives its root. Keys are written with mode
    0600, every file atomically (a crash leaves the old file or the new one, never half of one).
    """
    if days < 1:
        raise C2paCertError(f"days must be at least 1 (got {days})")
    if not organization.strip():
        raise C2paCertError("organization must not be empty")
    paths = c2pa_paths(out_dir)
    existing = [p for p in paths.all() if p.exists()]
    if existing and not overwrite:
        names = ", ".join(str(p) for p in existing)
        raise C2paCertError(
            f"C2PA credentials already exist ({names}); pass overwrite=True (gascli: --overwrite) to replace "
            "them. Validators that trust the old ca.pem will not trust media signed by a new CA."
        )
    ca_pem, ca_key_pem, leaf_pem, leaf_key_pem = _make_chain(
        organization=organization.strip(),
        common_name=(common_name or f"{organization.strip()} C2PA signer").strip(),
        days=days,
    )
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(paths.ca_key, ca_key_pem, mode=0o600)
        atomic_write(paths.signer_key, leaf_key_pem, mode=0o600)
        atomic_write(paths.ca_cert, ca_pem, mode=0o644)
        atomic_write(paths.signer_cert, leaf_pem + ca_pem, mode=0o644)
    except OSError as e:
        raise C2paCertError(f"cannot write C2PA credentials to {out_dir}: {e}") from e
    return paths


def _make_chain(*, organization: str, common_name: str, days: int) -> tuple[bytes, bytes, bytes, bytes]:
    """PEMs of (CA cert, CA key, leaf cert, leaf key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start = now - _BACKDATE
    leaf_end = now + dt.timedelta(days=days)
    ca_end = leaf_end + dt.timedelta(days=1)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name(f"{organization} C2PA root CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(ca_end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(leaf_end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    return (
        ca_cert.public_bytes(serialization.Encoding.PEM),
        key_pem(ca_key),
        leaf_cert.public_bytes(serialization.Encoding.PEM),
        key_pem(leaf_key),
    )


