"""Checks a validator runs on media that miners send: C2PA provenance (more checks arrive later)."""

from gas.verification.c2pa import C2paReport, TrustAnchorError, load_trust_anchors, verify_c2pa

__all__ = ["C2paReport", "TrustAnchorError", "load_trust_anchors", "verify_c2pa"]
