"""What media bytes are, from their magic bytes (never from a file name or a claimed header).

Used for the webhook's ``Content-Type`` (as the reference does), for choosing the C2PA reader's
format, and for file extensions of stored media.
"""

from __future__ import annotations

#: MIME type -> file extension.
EXTENSIONS: dict[str, str] = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
    "image/heic": ".heic",
    "image/avif": ".avif",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "video/x-msvideo": ".avi",
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/flac": ".flac",
    "audio/ogg": ".ogg",
    "audio/mp4": ".m4a",
}

_FTYP_BRANDS: dict[bytes, str] = {
    b"qt  ": "video/quicktime",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heic",
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"M4A ": "audio/mp4",
}


def sniff_mime(data: bytes) -> str | None:
    """The MIME type of ``data`` from its first bytes, or None when unrecognised."""
    head = bytes(data[:64])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:2] == b"BM" and len(head) >= 26:
        return "image/bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return _FTYP_BRANDS.get(brand, "video/mp4")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "video/webm"
    if head[:4] == b"fLaC":
        return "audio/flac"
    if head[:4] == b"OggS":
        return "audio/ogg"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0):
        return "audio/mpeg"
    return None


def extension_for(mime: str | None) -> str:
    """File extension for a MIME type (``.bin`` when unknown)."""
    return EXTENSIONS.get(mime or "", ".bin")


def webhook_content_type(data: bytes, modality: str) -> str:
    """``Content-Type`` for a success webhook: sniffed, else the reference's per-modality fallback."""
    mime = sniff_mime(data)
    if mime is not None and mime.split("/")[0] in ("image", "video"):
        return mime
    return "video/mp4" if modality == "video" else "image/png"
