"""PNG images as inputs, read with Pillow (the ``viz`` extra: ``pip install "reflrp[viz]"``).

An image becomes a float64 array in ``[0, 1]`` of shape (channels, height, width): greyscale (and greyscale with
alpha, and 1-bit) as one channel, everything else (RGB, RGBA, palette) as three; alpha is dropped; 8-bit samples
are divided by 255, 16-bit greyscale by 65535.  Its size is read from the header and checked against
:data:`MAX_PIXELS` before anything is decoded, so a small file that claims a huge image is refused at once;
Pillow's own limits (``Image.MAX_IMAGE_PIXELS``) are left as the caller set them.  Whatever Pillow cannot read is
one :class:`ReflrpError`.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from reflrp.errors import ReflrpError
from reflrp.importers.common import require

MAX_PIXELS = 1 << 26  # 64 megapixels: an 8192 x 8192 image
MAX_FILE_BYTES = 1 << 30
_GREY = {"1": "L", "L": "L", "LA": "L", "I": "I", "I;16": "I;16", "I;16B": "I;16", "I;16L": "I;16"}


def read_png(path, max_pixels=MAX_PIXELS):
    """A PNG image as a float64 array in ``[0, 1]`` of shape (channels, height, width) (module docstring)."""
    image_module = require("PIL.Image", "viz", "reading PNG images")
    where = repr(str(path))
    if os.path.getsize(path) > MAX_FILE_BYTES:
        raise ReflrpError(f"{where}: larger than {MAX_FILE_BYTES} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on palettes and transparency
            warnings.simplefilter("error", image_module.DecompressionBombWarning)
            with image_module.open(path, formats=["PNG"]) as image:  # reads the header only
                width, height = image.size
                if width * height > max_pixels:
                    raise ReflrpError(f"{where}: the image has more than {max_pixels} pixels ({width}x{height}; "
                                      f"refused before decoding)")
                mode = _GREY.get(image.mode, "RGB")
                pixels = np.asarray(image.convert(mode) if mode != image.mode else image)
    except ReflrpError:
        raise
    except image_module.UnidentifiedImageError:
        raise ReflrpError(f"{where} is not a PNG file") from None
    except (image_module.DecompressionBombError, image_module.DecompressionBombWarning) as error:
        raise ReflrpError(f"{where}: the image has more than {max_pixels} pixels (refused before decoding: "
                          f"{error})") from None
    except Exception as error:  # a corrupt or truncated file: whatever Pillow raised, one line
        raise ReflrpError(f"{where}: not a readable PNG ({type(error).__name__}: {str(error)[:200]})") from None
    scale = 65535.0 if mode in ("I", "I;16") else 255.0  # a PNG's samples have 8 or 16 bits
    channels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(channels, dtype=np.float64) / scale


__all__ = ["MAX_PIXELS", "read_png"]
