"""Small, well-formed stand-ins for the media a simulated pupil sends, and image sizes."""

from __future__ import annotations

import io
import struct
import zlib

from sandbox.errors import bad_request


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG, built by hand so no image library is needed at import."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


PHOTO_PNG = _png(64, 48, (74, 144, 226))
STICKER_WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"  # noqa: E501  # one literal 1x1 WebP
VOICE_OGG = (
    b"OggS\x00\x02" + bytes(20) + b"\x01\x13OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"
)  # an Opus header page
VIDEO_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(8)
DOCUMENT_PDF = b"%PDF-1.4\n% Leerbot sandbox\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"

# kind → (bytes, mime type, file name) for user-sent media in the sandbox.
FAKE_FILES: dict[str, tuple[bytes, str, str]] = {
    "photo": (PHOTO_PNG, "image/png", "foto.png"),
    "sticker": (STICKER_WEBP, "image/webp", "sticker.webp"),
    "voice": (VOICE_OGG, "audio/ogg", "spraakbericht.ogg"),
    "video": (VIDEO_MP4, "video/mp4", "video.mp4"),
    "document": (DOCUMENT_PDF, "application/pdf", "verslag.pdf"),
}


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height of an uploaded photo; Telegram refuses what it cannot decode."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception as exc:
        raise bad_request("IMAGE_PROCESS_FAILED") from exc
