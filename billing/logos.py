"""The workspace's logo: checked once at upload and stored at the size a PDF needs.

An image's file size says little about what decoding it costs: a 12 KB PNG of 10,000 × 10,000
pixels decodes to 400 MB. So an upload is judged by its header (format, dimensions) before any
pixel is decoded, then decoded once, downscaled to fit LOGO_BOX and stored as PNG; a render then
only ever reads a small image.
"""

from __future__ import annotations

import io
import warnings

from django.core.files import File
from PIL import Image, ImageOps, UnidentifiedImageError

LOGO_MAX_BYTES = 500 * 1024
LOGO_MAX_SIDE = 4000  # pixels, either side: what an upload may be before it is downscaled
LOGO_MAX_PIXELS = 12_000_000  # width × height: at most ~48 MB decoded (RGBA), once, at upload
LOGO_BOX = (600, 200)  # pixels: 18 mm high on the PDF at ~280 dpi, sharp when printed
LOGO_FORMATS = frozenset({"PNG", "JPEG"})


class LogoError(ValueError):
    """An upload that is not a usable logo; the message is for the person who uploaded it."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _open(data: bytes) -> Image.Image:
    """Pillow's view of the file's header only (no pixels decoded yet); bombs refused."""
    with warnings.catch_warnings():
        # Pillow only warns below twice its limit: here every bomb is an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def prepare_logo(upload: File) -> bytes:
    """A PNG of the uploaded PNG or JPEG that fits LOGO_BOX (never enlarged). Raises LogoError."""
    if upload.size > LOGO_MAX_BYTES:  # judged before it is read
        raise LogoError(
            f"The logo is {upload.size // 1024} KB: {LOGO_MAX_BYTES // 1024} KB at most, please.", "too_large"
        )
    upload.seek(0)
    return _downscaled(upload.read())


def _downscaled(data: bytes) -> bytes:
    not_an_image = LogoError("That file is not a PNG or JPEG image.", "invalid_image")
    try:
        image = _open(data)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_big() from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise not_an_image from None
    with image:
        if image.format not in LOGO_FORMATS:
            raise LogoError(f"That is a {image.format} image: upload a PNG or JPEG.", "invalid_format")
        width, height = image.size
        if max(width, height) > LOGO_MAX_SIDE or width * height > LOGO_MAX_PIXELS:
            raise _too_big(width, height)
        try:
            with _open(data) as whole:
                # Reads every chunk: a truncated PNG fails here, while decoding it would not once
                # WeasyPrint is imported (it sets ImageFile.LOAD_TRUNCATED_IMAGES for the process).
                whole.verify()
            if image.format == "JPEG":
                image.draft("RGB", LOGO_BOX)  # let the decoder skip what the downscale would drop
            image.load()  # the one decode; a truncated or corrupt file fails here
            return _fit(image)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            raise not_an_image from None


def _too_big(width: int = 0, height: int = 0) -> LogoError:
    size = f"{width:,} × {height:,} pixels" if width else "too large"
    return LogoError(
        f"The logo is {size}: {LOGO_MAX_SIDE:,} pixels a side at most ({LOGO_MAX_PIXELS // 1_000_000} million in all), "
        "please; it is shown 18 mm high.",
        "too_many_pixels",
    )


def _fit(image: Image.Image) -> bytes:
    image = ImageOps.exif_transpose(image)  # a phone photo's rotation, applied before it is dropped
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    image.thumbnail(LOGO_BOX, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def logo_for_pdf(data: bytes) -> bytes | None:
    """What a render embeds: the stored logo, as it is when it fits LOGO_BOX (every logo uploaded
    since uploads are downscaled); an older, larger one downscaled in memory; None for one no
    upload would accept today (a render never decodes a huge image)."""
    try:
        with _open(data) as image:
            fits = image.format in LOGO_FORMATS and image.width <= LOGO_BOX[0] and image.height <= LOGO_BOX[1]
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, UnidentifiedImageError, OSError):
        return None
    if fits:
        return data
    try:
        return _downscaled(data)
    except LogoError:
        return None
