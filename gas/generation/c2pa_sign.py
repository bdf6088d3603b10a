"""C2PA signing of generated media (PNG, JPEG, H.264 MP4) with a local certificate.

Used by the local diffusers service: it signs what it generates so validators can check, offline,
that the bytes are unchanged since signing and who signed them. API providers sign their own output
and the miner forwards it untouched; it never re-signs.

The manifest says what a validator needs and nothing more: ``claim_generator_info`` (this
software), a title, and one ``c2pa.actions`` assertion with ``c2pa.created``, the IPTC
``trainedAlgorithmicMedia`` digital source type, ``softwareAgent`` = the model and ``when`` = the
signing time (ISO 8601, UTC). No thumbnail (c2pa embeds one by default: hundreds of KB for nothing)
and no time-stamp authority (that would need the network at every signing).

The credentials are checked when the signer is built (:meth:`MediaSigner.from_files`), so a
miner with a broken certificate fails at startup with a message that says what to fix, not at its
first task with a c2pa error code.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: IPTC digital source type for media made by a trained model.
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

#: MIME types :meth:`MediaSigner.sign` accepts.
SUPPORTED_MIME = ("image/png", "image/jpeg", "video/mp4")
_MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}

#: Extended key usages c2pa-rs accepts for a claim signer (C2PA 2.x, "Certificate profile"):
#: emailProtection, documentSigning, C2PA claim signing, Microsoft's C2PA signing.
USABLE_EKUS = {
    "1.3.6.1.5.5.7.3.4": "emailProtection",
    "1.3.6.1.5.5.7.3.36": "documentSigning",
    "1.3.6.1.4.1.62558.2.1": "c2pa-kp-claimSigning",
    "1.3.6.1.4.1.311.76.59.1.9": "Microsoft C2PA signing",
}

#: Prompts longer than this are cut in the manifest (they are informational; the manifest stays small).
MAX_PROMPT_CHARS = 2000

#: Warn at startup when the signing certificate expires sooner than this.
_EXPIRY_WARNING = dt.timedelta(days=14)


def _probe_png() -> bytes:
    """A valid 1x1 PNG, signed once when a signer is built so c2pa itself vets the credentials."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x80\x80\x80")  # filter byte + one grey RGB pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


class C2paSigningError(Exception):
    """C2PA credentials are unusable or a file could not be signed; the message says which and why."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


_BUILDER_CONTEXT: Any = None
_BUILDER_CONTEXT_LOCK = threading.Lock()


def _builder_context() -> Any:
    """One c2pa Context for every Builder: thumbnails off. c2pa guards a shared Context itself."""
    global _BUILDER_CONTEXT
    with _BUILDER_CONTEXT_LOCK:
        if _BUILDER_CONTEXT is None:
            import c2pa

            _BUILDER_CONTEXT = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
        return _BUILDER_CONTEXT


class MediaSigner:
    """Signs media with one certificate chain and key. Thread-safe: each call builds its own c2pa
    Signer and Builder (about 0.3 ms), so concurrent tasks sign in parallel."""

    def __init__(
        self,
        cert_chain_pem: bytes,
        key_pem: bytes,
        *,
        source: str = "the certificate",
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        """Check the credentials (see :meth:`from_files`); ``source`` names them in error messages."""
        self._clock = clock
        self._source = source
        certs, key = _load_credentials(cert_chain_pem, key_pem, source)
        leaf = certs[0]
        self._leaf = leaf
        self._alg = _algorithm_for(key, source)
        self._not_before = leaf.not_valid_before_utc
        self._not_after = leaf.not_valid_after_utc
        self.subject = leaf.subject.rfc4514_string()
        self.issuer = leaf.issuer.rfc4514_string()
        self._check_validity()
        _check_leaf_profile(leaf, source)
        _check_chain_order(certs, source)
        from cryptography.hazmat.primitives import serialization

        # c2pa wants the chain as PEM (leaf first) and the key as PKCS#8 PEM
        self._cert_chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
        self._key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            self.sign(_probe_png(), "image/png", claim_generator="gas-node", model_name="probe")
        except C2paSigningError as e:
            raise C2paSigningError(f"c2pa refuses to sign with {source}: {e}") from None
        left = self._not_after - self._clock()
        if left < _EXPIRY_WARNING:
            logger.warning("C2PA signing certificate %s expires in %s (%s)", self.subject, left, source)

    @classmethod
    def from_files(cls, cert_chain: Path, key: Path, **kwargs: Any) -> MediaSigner:
        """Load a PEM chain (signer first, then intermediates/CA) and its unencrypted PEM key.

        Raises :class:`C2paSigningError` for a missing file, a file that is not PEM, a key that does
        not belong to the certificate, a leaf without a C2PA-usable extended key usage, and a
        certificate that has expired or is not valid yet.
        """
        cert_chain, key = Path(cert_chain), Path(key)
        hint = "create them with `gascli generator init-c2pa` or set GAS_C2PA_CERT / GAS_C2PA_KEY"
        for label, path in (("certificate chain", cert_chain), ("private key", key)):
            if not path.is_file():
                raise C2paSigningError(f"C2PA {label} {path} does not exist; {hint}")
        try:
            chain_pem, key_pem = cert_chain.read_bytes(), key.read_bytes()
        except OSError as e:
            raise C2paSigningError(f"cannot read C2PA credentials: {e}") from e
        return cls(chain_pem, key_pem, source=f"{cert_chain} / {key}", **kwargs)

    @property
    def not_after(self) -> dt.datetime:
        """When the signing certificate expires (UTC)."""
        return self._not_after

    @property
    def algorithm(self) -> str:
        return self._alg

    def sign(
        self,
        data: bytes,
        mime: str,
        *,
        claim_generator: str,
        model_name: str,
        prompt: str | None = None,
    ) -> bytes:
        """Return ``data`` with an embedded C2PA manifest (see the module docstring for its content).

        ``claim_generator`` is ``"name/version"`` (or just a name) of the software; ``model_name``
        becomes the action's ``softwareAgent``. ``prompt``, when given, is recorded in the action's
        parameters (cut to :data:`MAX_PROMPT_CHARS`).
        """
        import c2pa

        mime = _MIME_ALIASES.get(mime.strip().lower(), mime.strip().lower())
        if mime not in SUPPORTED_MIME:
            raise C2paSigningError(f"cannot sign {mime!r}: supported types are {', '.join(SUPPORTED_MIME)}")
        if not data:
            raise C2paSigningError("cannot sign empty data")
        from gas.protocol.media_types import sniff_mime

        actual = sniff_mime(data)
        if actual != mime:
            raise C2paSigningError(f"the data is {actual or 'not a recognised media type'}, not {mime}")
        if not model_name or not model_name.strip():
            raise C2paSigningError("model_name must not be empty")
        now = self._check_validity()
        manifest = _manifest(
            claim_generator=claim_generator, model_name=model_name.strip(), prompt=prompt, when=now, mime=mime
        )
        try:
            signer = c2pa.Signer.from_info(
                c2pa.C2paSignerInfo(alg=self._alg.encode(), sign_cert=self._cert_chain, private_key=self._key,
                                    ta_url=None)
            )
        except Exception as e:  # c2pa raises its own error classes, all meaning "unusable credentials"
            raise C2paSigningError(f"c2pa rejected the credentials ({self._source}): {e}") from e
        dst = io.BytesIO()
        try:
            with c2pa.Builder(manifest, context=_builder_context()) as builder:
                builder.sign(signer, mime, io.BytesIO(data), dst)
        except Exception as e:
            raise C2paSigningError(f"c2pa could not sign the {mime} ({len(data)} bytes): {e}") from e
        finally:
            signer.close()
        return dst.getvalue()

    def _check_validity(self) -> dt.datetime:
        now = self._clock()
        if now >= self._not_after:
            raise C2paSigningError(
                f"C2PA signing certificate {self.subject} expired at {self._not_after.isoformat()} "
                f"({self._source}); make a new one (gascli generator init-c2pa --overwrite)"
            )
        if now < self._not_before:
            raise C2paSigningError(
                f"C2PA signing certificate {self.subject} is not valid before {self._not_before.isoformat()} "
                f"({self._source}); check the system clock"
            )
        return now


def _manifest(*, claim_generator: str, model_name: str, prompt: str | None, when: dt.datetime, mime: str) -> dict:
    name, _, version = claim_generator.strip().partition("/")
    info: dict[str, str] = {"name": name or "gas-node"}
    if version:
        info["version"] = version
    action: dict[str, Any] = {
        "action": "c2pa.created",
        "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "softwareAgent": model_name,
        "when": when.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds"),
    }
    if prompt:
        action["parameters"] = {"prompt": prompt[:MAX_PROMPT_CHARS]}
    kind = mime.split("/")[0]
    return {
        "claim_generator_info": [info],
        "title": f"{kind} generated by {model_name}",
        "format": mime,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}],
    }


def _load_credentials(cert_chain_pem: bytes, key_pem: bytes, source: str) -> tuple[list, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certs = x509.load_pem_x509_certificates(cert_chain_pem)
    except ValueError as e:
        raise C2paSigningError(f"{source}: the certificate chain is not valid PEM ({e})") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise C2paSigningError(f"{source}: the private key is encrypted; C2PA signing needs an unencrypted "
                               "PEM key (keep it readable by the miner only, mode 0600)") from None
    except Exception as e:  # cryptography raises ValueError or UnsupportedAlgorithm
        raise C2paSigningError(f"{source}: the private key is not a valid PEM key ({e})") from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, pub) != certs[0].public_key().public_bytes(enc, pub):
        raise C2paSigningError(
            f"{source}: the private key does not belong to the first certificate of the chain "
            f"({certs[0].subject.rfc4514_string()}); the chain must start with the signer's certificate"
        )
    return certs, key


def _algorithm_for(key: Any, source: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name in by_curve:
            return by_curve[key.curve.name]
        raise C2paSigningError(f"{source}: EC curve {key.curve.name} is not allowed by C2PA (use P-256)")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    raise C2paSigningError(f"{source}: unsupported key type {type(key).__name__} (use EC P-256)")


def _check_leaf_profile(leaf: Any, source: str) -> None:
    from cryptography import x509

    subject = leaf.subject.rfc4514_string()
    try:
        bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca:
            raise C2paSigningError(f"{source}: {subject} is a CA certificate; sign with a leaf issued by it")
    except x509.ExtensionNotFound:
        pass
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise C2paSigningError(
            f"{source}: certificate {subject} has no extended key usage; C2PA needs one of "
            f"{', '.join(USABLE_EKUS.values())} (gascli generator init-c2pa makes a suitable one)"
        ) from None
    oids = {o.dotted_string for o in eku}
    if not oids & USABLE_EKUS.keys():
        raise C2paSigningError(
            f"{source}: certificate {subject} has no C2PA-usable extended key usage (has "
            f"{', '.join(sorted(oids))}; needs one of {', '.join(USABLE_EKUS.values())})"
        )


def _check_chain_order(certs: list, source: str) -> None:
    for child, parent in zip(certs, certs[1:], strict=False):
        if child.issuer != parent.subject:
            raise C2paSigningError(
                f"{source}: the chain is out of order: {child.subject.rfc4514_string()} is issued by "
                f"{child.issuer.rfc4514_string()}, but the next certificate is {parent.subject.rfc4514_string()}"
            )
