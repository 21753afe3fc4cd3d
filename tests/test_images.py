"""Input images for image to image: what is accepted, how it is fitted, and every refusal's message."""
from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from genimg import images
from genimg.errors import InvalidRequest
from genimg.images import read_image


def encoded(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose IHDR says width x height (CRC fixed): a decompression bomb's header, without the bomb."""
    data = encoded(Image.new("L", (1, 1)), "PNG")
    ihdr = data[12:29]  # b"IHDR" + 13 bytes
    patched = b"IHDR" + struct.pack(">II", width, height) + ihdr[12:]
    return data[:12] + patched + struct.pack(">I", zlib.crc32(patched)) + data[33:]


@pytest.mark.parametrize("format", ["PNG", "JPEG", "WEBP"])
def test_png_jpeg_and_webp_become_rgb_at_the_model_size(format, tmp_path):
    path = tmp_path / f"input.{format.lower()}"
    path.write_bytes(encoded(Image.new("RGB", (200, 200), (255, 0, 0)), format))
    for source in (path, str(path), path.read_bytes()):
        image = read_image(source, (64, 64))
        assert image.size == (64, 64) and image.mode == "RGB"
        red, green, blue = image.getpixel((32, 32))
        assert red > 200 and green < 40 and blue < 40


def test_transparency_becomes_white_and_a_wide_image_is_kept_whole_on_white():
    wide = Image.new("RGBA", (128, 64), (0, 0, 255, 255))
    wide.paste((0, 0, 0, 0), (0, 0, 64, 64))  # left half transparent
    image = read_image(encoded(wide, "PNG"), (64, 64))
    assert image.getpixel((32, 2)) == (255, 255, 255)  # padding above the squeezed image
    assert image.getpixel((8, 32)) == (255, 255, 255)  # the transparent half
    assert image.getpixel((56, 32))[2] > 200 and image.getpixel((56, 32))[0] < 40  # the blue half


def test_a_pil_image_is_taken_as_it_is():
    assert read_image(Image.new("L", (10, 20), 0), (64, 64)).getpixel((32, 32)) == (0, 0, 0)


@pytest.mark.parametrize("content, message", [
    (b"hello, not an image", "not a PNG, JPEG or WebP"),
    (encoded(Image.new("RGB", (8, 8)), "GIF"), "not a PNG, JPEG or WebP"),  # judged by content: GIF is refused
    (encoded(Image.new("RGB", (8, 8)), "BMP"), "not a PNG, JPEG or WebP"),
    (b"", "empty"),
    (encoded(Image.new("RGB", (64, 64)), "PNG")[:60], "could not be decoded|not a PNG"),  # truncated
])
def test_a_bad_file_gets_a_clear_message(content, message, tmp_path):
    path = tmp_path / "upload.png"  # the name says PNG; the content decides
    path.write_bytes(content)
    with pytest.raises(InvalidRequest, match=message):
        read_image(path, (64, 64))


def test_a_decompression_bomb_header_is_refused_before_decoding():
    with pytest.raises(InvalidRequest, match="pixels"):
        read_image(png_header_claiming(30_000, 30_000), (64, 64))  # 900 M pixels: PIL's own bomb limit
    with pytest.raises(InvalidRequest, match="the limit is 16,777,216 pixels"):
        read_image(png_header_claiming(5_000, 5_000), (64, 64))  # 25 M pixels: over genimg's cap


def test_files_over_the_size_limit_are_refused_unread(monkeypatch, tmp_path):
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 1000)
    path = tmp_path / "big.png"
    path.write_bytes(b"\0" * 2000)
    with pytest.raises(InvalidRequest, match="limit is 0 MiB|the limit is"):
        read_image(path, (64, 64))


@pytest.mark.parametrize("source, message", [(None, "file path, bytes or a PIL image"), (42, "not int"),
                                             ("/no/such/file.png", "No image file")])
def test_what_is_not_an_image_source_is_refused(source, message):
    with pytest.raises(InvalidRequest, match=message):
        read_image(source, (64, 64))
