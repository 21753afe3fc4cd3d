"""Input images (image to image): read safely, checked, made the model's size. What a caller hands genimg, a path,
bytes or a PIL image, is refused with a message that says what to send instead, never half-decoded."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps

from genimg.errors import InvalidRequest

MAX_IMAGE_BYTES = 10 * 2**20  # an upload larger than this is refused before it is read
MAX_IMAGE_PIXELS = 4096 * 4096  # width x height from the header; a decompression bomb claims far more
FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}  # PIL's format name -> what the message calls it
BACKGROUND = (255, 255, 255)  # the models draw emoji on white: transparency and padding become white


def read_image(source, size: tuple[int, int] | None) -> Image.Image:
    """``source`` (a file path, bytes, or a PIL image) as an RGB image of ``size`` (width, height): transparency on
    white, the whole image kept (fitted in the centre, the rest white), Lanczos-resampled. ``size`` None: its own.

    Refused with InvalidRequest: files over MAX_IMAGE_BYTES, anything but PNG, JPEG or WebP (judged by content, not
    by name), images over MAX_IMAGE_PIXELS (checked from the header, before any pixel is decoded), broken files."""
    image = source if isinstance(source, Image.Image) else _open(source)
    _check_pixels(image.size)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = ImageOps.exif_transpose(image)  # a phone photo's rotation flag, applied
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise InvalidRequest(f"The image could not be decoded ({error}); send an intact PNG, JPEG or WebP.") from error
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, BACKGROUND)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    if size is None:
        return flat
    return ImageOps.pad(flat, size, method=Image.Resampling.LANCZOS, color=BACKGROUND)


def _open(source) -> Image.Image:
    """The image's header read from a path or bytes, after the byte-size check; pixels are decoded later."""
    if isinstance(source, (bytes, bytearray)):
        size, stream = len(source), io.BytesIO(source)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise InvalidRequest(f"No image file at {str(path)!r}.")
        size, stream = path.stat().st_size, path
    else:
        raise InvalidRequest(f"The image must be a file path, bytes or a PIL image, not {type(source).__name__}.")
    if size > MAX_IMAGE_BYTES:
        raise InvalidRequest(f"The image file is {size / 2**20:.1f} MiB; the limit is {MAX_IMAGE_BYTES / 2**20:.0f} "
                             "MiB. Send a smaller file (the model draws 64x64 pixels).")
    if size == 0:
        raise InvalidRequest("The image file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream, formats=list(FORMATS))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise InvalidRequest(f"The image claims too many pixels ({error}); send one of at most "
                             f"{MAX_IMAGE_PIXELS:,} pixels.") from error
    except (OSError, SyntaxError, ValueError) as error:  # UnidentifiedImageError is an OSError
        raise InvalidRequest(f"That file is not a PNG, JPEG or WebP image ({type(error).__name__}); "
                             f"image to image takes {', '.join(FORMATS.values())}.") from error
    return image


def _check_pixels(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise InvalidRequest(f"The image is {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS:,} pixels "
                             "(e.g. 4096x4096). Send a smaller image.")
    if width < 1 or height < 1:
        raise InvalidRequest(f"The image is {width}x{height} pixels: it has no pixels to start from.")
