"""C2PA verification of media a miner returns: is it intact, and was it signed by a signer we trust?

Trust is decided by one thing only: c2pa's own validation of the signing certificate's chain against
the configured trust anchors (PEM roots in ``configs/trust_anchors/`` plus the operator's own). A
manifest passes when c2pa reports the validation state ``Trusted`` with ``signingCredential.trusted``,
no failure code at all, and a validated hard binding (``assertion.dataHash.match``,
``bmffHash.match``, ``boxesHash.match`` or ``collectionHash.match``) that ties the manifest to these
exact bytes. Names in certificates or claim generators are reported, never used to decide trust: the
reference subnet matched issuer names by substring, which anyone can put in a self-made certificate.

Everything runs offline: no OCSP, no remote manifests, no time-stamp fetches. A call parses the
media once (about 1-2 ms for a 512x512 PNG, see docs/c2pa.md); the c2pa Context for a trust-anchor
bundle is built once and shared, so the validator can call :func:`verify_c2pa` for every callback,
from any thread.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Success codes that bind the manifest to the asset's bytes (one is required).
HARD_BINDING_CODES = (
    "assertion.dataHash.match",
    "assertion.bmffHash.match",
    "assertion.boxesHash.match",
    "assertion.collectionHash.match",
)
#: The failure code c2pa gives a valid signature whose chain reaches no anchor.
UNTRUSTED = "signingCredential.untrusted"
TRUSTED = "signingCredential.trusted"
#: digitalSourceType values (last URL segment) that mean "made by a trained model".
AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})
#: Claim-generator tokens that name the C2PA library rather than the product.
_LIBRARY_TOKENS = ("c2pa", "libc2pa", "contentauth", "trustedpublisher")
_MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
#: How many parsed c2pa Contexts (one per distinct anchor bundle) are kept.
_MAX_CONTEXTS = 8


class TrustAnchorError(ValueError):
    """A trust-anchor file is missing or is not a PEM certificate bundle; the message names the file."""


@dataclass
class C2paReport:
    """What :func:`verify_c2pa` found. ``passed`` is the verdict; the rest says why."""

    #: The claim signature and every hash check out (a merely untrusted signer still counts as verified).
    verified: bool = False
    #: c2pa validated the signer's chain up to one of the trust anchors.
    trusted: bool = False
    #: The hard-binding success code (e.g. ``assertion.dataHash.match``), or None.
    hard_binding: str | None = None
    #: ``signature_info.time`` (a time stamp) when present, else the latest action ``when``.
    signing_time: dt.datetime | None = None
    cert_issuer: str | None = None
    cert_subject: str | None = None
    claim_generator: str | None = None
    model_name: str | None = None
    ai_generated: bool = False
    #: c2pa's verdict: ``Trusted``, ``Valid`` (signature fine, signer not trusted) or ``Invalid``.
    validation_state: str | None = None
    #: c2pa failure codes of the active manifest (``assertion.dataHash.mismatch``, ...).
    failures: list[str] = field(default_factory=list)
    #: Why no manifest could be checked at all (unsupported media, no manifest, unreadable).
    error: str | None = None
    #: The manifest store as c2pa reports it (``active_manifest``, ``manifests``, ``validation_results``).
    manifest: dict | None = None
    mime: str | None = None

    @property
    def passed(self) -> bool:
        return self.verified and self.trusted and self.hard_binding is not None and self.error is None

    @property
    def reason(self) -> str:
        """One line for logs and tables: ``ok`` or what failed."""
        if self.error is not None:
            return self.error
        other = [f for f in self.failures if f != UNTRUSTED]
        if other:
            return "validation failed: " + ", ".join(self.failures)
        if not self.trusted:
            return "signer not trusted: its certificate chain reaches no configured trust anchor"
        if self.hard_binding is None:
            return "no validated hard binding (data/BMFF/boxes/collection hash)"
        if not self.verified:
            return f"validation state {self.validation_state}"
        return "ok"

    def to_dict(self, *, include_manifest: bool = True) -> dict[str, Any]:
        """JSON-able form (times as ISO 8601); adds ``passed`` and ``reason``."""
        out = asdict(self)
        out["signing_time"] = self.signing_time.isoformat() if self.signing_time else None
        if not include_manifest:
            out.pop("manifest")
        out["passed"] = self.passed
        out["reason"] = self.reason
        return out


# --- trust anchors -------------------------------------------------------------------------------


def default_anchor_dir() -> Path:
    """``configs/trust_anchors`` of the checkout: the anchors every validator starts from."""
    from gas.config import project_root

    return project_root() / "configs" / "trust_anchors"


def load_trust_anchors(extra: Sequence[Path] = (), *, anchor_dir: Path | None = None) -> str:
    """The PEM bundle of ``configs/trust_anchors/*.pem`` plus ``extra`` (files, or folders of ``*.pem``).

    Every certificate is parsed (c2pa silently skips a garbled one, so a typo would otherwise just
    make a signer untrusted); duplicates are dropped. An empty string means no anchors: then nothing
    is trusted. Raises :class:`TrustAnchorError` naming the file that is missing or not PEM.
    """
    from cryptography.hazmat.primitives import hashes, serialization

    anchor_dir = default_anchor_dir() if anchor_dir is None else Path(anchor_dir)
    files: list[Path] = sorted(anchor_dir.glob("*.pem")) if anchor_dir.is_dir() else []
    for p in extra:
        p = Path(p).expanduser()
        if p.is_dir():
            files.extend(sorted(p.glob("*.pem")))
        elif p.is_file():
            files.append(p)
        else:
            raise TrustAnchorError(f"trust anchor file {p} does not exist")
    seen: set[bytes] = set()
    pems: list[str] = []
    now = dt.datetime.now(dt.timezone.utc)
    for path in files:
        for cert in _read_anchor_file(path):
            fp = cert.fingerprint(hashes.SHA256())
            if fp in seen:
                continue
            seen.add(fp)
            _warn_odd_anchor(cert, path, now)
            pems.append(cert.public_bytes(serialization.Encoding.PEM).decode("ascii"))
    return "".join(pems)


def _read_anchor_file(path: Path) -> list:
    from cryptography import x509

    try:
        raw = path.read_bytes()
    except OSError as e:
        raise TrustAnchorError(f"cannot read trust anchor file {path}: {e}") from None
    try:
        return x509.load_pem_x509_certificates(raw)
    except ValueError as e:
        raise TrustAnchorError(f"trust anchor file {path} is not a PEM certificate bundle: {e}") from None


def _warn_odd_anchor(cert: Any, path: Path, now: dt.datetime) -> None:
    from cryptography import x509

    subject = cert.subject.rfc4514_string()
    if cert.not_valid_after_utc < now:
        logger.warning("trust anchor %s in %s expired at %s", subject, path, cert.not_valid_after_utc)
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        logger.warning("trust anchor %s in %s is not a CA certificate; c2pa trusts chains that end at a CA, "
                       "so signers it issued are trusted but the certificate itself as a signer is not", subject,
                       path)


def anchor_subjects(trust_anchors_pem: str) -> list[str]:
    """Subjects of the certificates in a bundle (for ``verify-c2pa`` output and logs)."""
    from cryptography import x509

    if not trust_anchors_pem.strip():
        return []
    return [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(trust_anchors_pem.encode())]


_CONTEXTS: dict[str, Any] = {}
_CONTEXTS_LOCK = threading.Lock()


def _reader_context(trust_anchors_pem: str) -> Any:
    """The c2pa Context for an anchor bundle, built once (c2pa guards a shared Context itself)."""
    key = hashlib.sha256(trust_anchors_pem.encode()).hexdigest()
    with _CONTEXTS_LOCK:
        ctx = _CONTEXTS.get(key)
        if ctx is not None:
            return ctx
        import c2pa

        settings: dict[str, Any] = {
            "verify": {
                "verify_after_reading": True,
                "verify_trust": True,
                # untrusted bytes must not make the validator fetch anything
                "remote_manifest_fetch": False,
                "ocsp_fetch": False,
            }
        }
        if trust_anchors_pem.strip():  # c2pa rejects an empty bundle; no anchors = nothing trusted
            settings["trust"] = {"trust_anchors": trust_anchors_pem}
        try:
            ctx = c2pa.Context.from_dict(settings)
        except Exception as e:
            raise TrustAnchorError(f"c2pa cannot use the trust anchors: {e}") from None
        if len(_CONTEXTS) >= _MAX_CONTEXTS:
            _CONTEXTS.pop(next(iter(_CONTEXTS)))
        _CONTEXTS[key] = ctx
        return ctx


_SUPPORTED: frozenset[str] | None = None


def _supported_mime() -> frozenset[str]:
    global _SUPPORTED
    if _SUPPORTED is None:
        import c2pa

        _SUPPORTED = frozenset(m for m in c2pa.Reader.get_supported_mime_types() if "/" in m)
    return _SUPPORTED


# --- verification --------------------------------------------------------------------------------


def verify_c2pa(data: bytes, *, trust_anchors_pem: str, mime: str | None = None) -> C2paReport:
    """Check the C2PA manifest embedded in ``data`` against ``trust_anchors_pem`` (from
    :func:`load_trust_anchors`). Never raises for bad media: the report's ``error`` says what was wrong.

    ``mime`` is sniffed from the bytes when not given. Raises :class:`TrustAnchorError` only when the
    anchor bundle itself is unusable (a configuration error, caught at startup by load_trust_anchors).
    """
    import c2pa

    from gas.protocol.media_types import sniff_mime

    report = C2paReport()
    if mime:
        mime = _MIME_ALIASES.get(mime.strip().lower(), mime.strip().lower())
    else:
        mime = sniff_mime(data)
    report.mime = mime
    if not data:
        report.error = "empty media"
        return report
    if mime is None:
        report.error = "unrecognised media: the bytes are not an image or video format C2PA can carry"
        return report
    if mime not in _supported_mime():
        report.error = f"unsupported media type {mime} for C2PA"
        return report
    ctx = _reader_context(trust_anchors_pem)
    try:
        reader = c2pa.Reader(mime, io.BytesIO(data), context=ctx)
    except c2pa.C2paError.ManifestNotFound:
        report.error = "no C2PA manifest found"
        return report
    except Exception as e:  # any c2pa error on hostile or broken bytes becomes a failed report
        report.error = f"c2pa could not read the {mime}: {_one_line(e)}"
        return report
    try:
        with reader:
            state = reader.get_validation_state()
            store = json.loads(reader.json())
            try:
                cr = json.loads(reader.crjson())
            except Exception:  # only used for certificate names
                cr = None
    except Exception as e:
        report.error = f"c2pa could not validate the manifest: {_one_line(e)}"
        return report
    _interpret(report, state, store, cr)
    logger.debug("c2pa %s: %s (state %s, signer %s)", mime, report.reason, state, report.cert_subject)
    return report


def _interpret(report: C2paReport, state: str | None, store: dict, cr: dict | None) -> None:
    report.manifest = store
    report.validation_state = state or store.get("validation_state")
    label = store.get("active_manifest")
    active = (store.get("manifests") or {}).get(label) if label else None
    if not isinstance(active, dict):
        report.error = "the C2PA manifest store has no active manifest"
        return
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    success = _codes(results.get("success"))
    failures = _codes(results.get("failure"))
    if not results and store.get("validation_status"):  # older c2pa report shape
        failures = _codes(store.get("validation_status"))
    report.failures = failures
    report.verified = report.validation_state in ("Valid", "Trusted") and all(f == UNTRUSTED for f in failures)
    report.trusted = report.validation_state == "Trusted" and TRUSTED in success and UNTRUSTED not in failures
    for code in HARD_BINDING_CODES:
        if code in success and code.replace(".match", ".mismatch") not in failures:
            report.hard_binding = code
            break
    actions = list(_actions(active))
    report.claim_generator = _claim_generator(active)
    report.model_name = _model_name(actions) or _product_token(active)
    report.ai_generated = any(
        isinstance(a.get("digitalSourceType"), str) and a["digitalSourceType"].rsplit("/", 1)[-1] in AI_SOURCE_TYPES
        for a, _ in actions
    )
    sig = active.get("signature_info") or {}
    report.signing_time = _parse_time(sig.get("time")) or _latest(_parse_time(a.get("when")) for a, _ in actions)
    report.cert_issuer, report.cert_subject = _cert_names(cr, label, sig)


def _codes(entries: Any) -> list[str]:
    out: list[str] = []
    for e in entries or []:
        code = e.get("code") if isinstance(e, dict) else None
        if isinstance(code, str) and code not in out:
            out.append(code)
    return out


def _actions(manifest: dict) -> Iterable[tuple[dict, list]]:
    """Every action of the manifest's ``c2pa.actions*`` assertions, with that assertion's softwareAgents."""
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        data = assertion.get("data") or {}
        agents = data.get("softwareAgents") if isinstance(data.get("softwareAgents"), list) else []
        for action in data.get("actions") or []:
            if isinstance(action, dict):
                yield action, agents


def _agent_name(agent: Any) -> str | None:
    if isinstance(agent, str) and agent.strip():
        return agent.strip()
    if isinstance(agent, dict) and isinstance(agent.get("name"), str) and agent["name"].strip():
        return agent["name"].strip()
    return None


def _model_name(actions: list[tuple[dict, list]]) -> str | None:
    """``softwareAgent`` of the ``c2pa.created`` action (string, generator-info map, or index)."""
    for action, agents in actions:
        if action.get("action") != "c2pa.created":
            continue
        agent = action.get("softwareAgent")
        idx = action.get("softwareAgentIndex")
        if agent is None and isinstance(idx, int) and 0 <= idx < len(agents):
            agent = agents[idx]
        name = _agent_name(agent)
        if name:
            return name
        params = action.get("parameters") if isinstance(action.get("parameters"), dict) else {}
        for key in ("model_name", "model"):
            if isinstance(params.get(key), str) and params[key].strip():
                return params[key].strip()
    return None


def _claim_generator(manifest: dict) -> str | None:
    infos = manifest.get("claim_generator_info")
    if isinstance(infos, dict):
        infos = [infos]
    if isinstance(infos, list) and infos and isinstance(infos[0], dict) and infos[0].get("name"):
        info = infos[0]
        return f"{info['name']}/{info['version']}" if info.get("version") else str(info["name"])
    cg = manifest.get("claim_generator")
    return cg if isinstance(cg, str) and cg.strip() else None


def _product_token(manifest: dict) -> str | None:
    """The product named by the claim generator, skipping tokens that name the C2PA library."""
    cg = _claim_generator(manifest)
    if not cg:
        return None
    for token in cg.split():
        if not token.lower().startswith(_LIBRARY_TOKENS):
            return token.split("/")[0] or None
    return None


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def _latest(times: Iterable[dt.datetime | None]) -> dt.datetime | None:
    found = [t for t in times if t is not None]
    return max(found) if found else None


def _cert_names(cr: dict | None, label: str | None, sig: dict) -> tuple[str | None, str | None]:
    """Issuer and subject of the signing certificate, from c2pa's crJSON (certificateInfo)."""
    for m in (cr or {}).get("manifests") or []:
        if not isinstance(m, dict) or m.get("label") != label:
            continue
        info = (m.get("signature") or {}).get("certificateInfo") or {}
        return _dn(info.get("issuer")), _dn(info.get("subject"))
    cn = sig.get("common_name")
    return None, (f"CN={_escape_dn(cn)}" if isinstance(cn, str) and cn else None)


def _dn(parts: Any) -> str | None:
    """RFC 4514 form (most specific first, like cryptography's ``Name.rfc4514_string()``)."""
    if isinstance(parts, dict) and parts:
        return ",".join(f"{k}={_escape_dn(str(v))}" for k, v in reversed(list(parts.items())))
    return None


def _escape_dn(value: str) -> str:
    out = "".join("\\" + c if c in ',+"\\<>;' else c for c in value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    return out[:-1] + "\\ " if out.endswith(" ") else out


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__
