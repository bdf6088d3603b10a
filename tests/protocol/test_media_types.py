import io

import av
import numpy as np
import pytest
from PIL import Image

from gas.protocol.media_types import extension_for, sniff_mime, webhook_content_type


def _image(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def _mp4() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif"),
     ("BMP", "image/bmp"), ("TIFF", "image/tiff")],
)
def test_real_images_are_recognised(fmt, mime):
    data = _image(fmt)
    assert sniff_mime(data) == mime
    assert webhook_content_type(data, "image") == mime


def test_real_mp4_is_video():
    data = _mp4()
    assert sniff_mime(data) == "video/mp4"
    assert webhook_content_type(data, "video") == "video/mp4"
    assert extension_for("video/mp4") == ".mp4"


def test_unknown_bytes_fall_back_per_modality():
    assert sniff_mime(b"hello world") is None
    assert webhook_content_type(b"hello", "video") == "video/mp4"
    assert webhook_content_type(b"hello", "image") == "image/png"
    assert extension_for(None) == ".bin"


def test_audio_is_not_sent_as_image_content_type():
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt "
    assert sniff_mime(wav) == "audio/wav"
    assert webhook_content_type(wav, "image") == "image/png"
