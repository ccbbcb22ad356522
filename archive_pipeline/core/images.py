"""Still images (photos, scans, multi-page TIFFs) read page by page with Pillow: upright (EXIF
orientation applied), RGB, one page in memory at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from archive_pipeline.core.errors import PermanentError


class ImageDecodeError(PermanentError, ValueError):
    """The image cannot be opened or one of its pages decoded."""


def iter_pages(path: Path, *, max_pixels: int = 200_000_000) -> Iterator[tuple[int, np.ndarray]]:
    """(page index from 0, upright RGB array) of each page or frame of an image file; pages
    over `max_pixels` (a decompression bomb, or a scan far beyond any OCR need) are errors."""
    from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

    try:
        image = Image.open(path)
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageDecodeError(f"cannot open image: {exc}") from None
    with image:
        try:
            for index, page in enumerate(ImageSequence.Iterator(image)):
                if page.width * page.height > max_pixels:
                    raise ImageDecodeError(
                        f"page {index} is {page.width}x{page.height} pixels, over the "
                        f"{max_pixels:,}-pixel limit"
                    )
                upright = ImageOps.exif_transpose(page)
                if upright.mode != "RGB":
                    # palette/greyscale/CMYK/16-bit scans; transparency over white
                    if upright.mode in ("RGBA", "LA", "P", "PA"):
                        rgba = upright.convert("RGBA")
                        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                        upright = Image.alpha_composite(white, rgba)
                    upright = upright.convert("RGB")
                yield index, np.asarray(upright)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            if isinstance(exc, ImageDecodeError):
                raise
            raise ImageDecodeError(f"cannot decode image: {exc}") from None
