"""A small, strict PNG reader and writer (8-bit, non-interlaced greyscale, grey+alpha, RGB, RGBA).

Why not Pillow: reflrp's core depends on numpy and numba only, and the command line must read an image without
optional extras.  So this reader carries the same defences a well-kept decoder has: the image size is checked
against :data:`MAX_PIXELS` from the IHDR chunk before anything is inflated; inflation is bounded to exactly the
size the header implies (a decompression bomb stops after that many bytes); chunk lengths, checksums, filter
types and the data size are all checked; anything else is a :class:`ReflrpError`.  Unfiltering runs as a
compiled kernel (linear in the image size).
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from reflrp._jit import jit
from reflrp.errors import ReflrpError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 1 << 26  # 64 megapixels: an 8192 x 8192 image
MAX_FILE_BYTES = 1 << 30
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # greyscale, RGB, greyscale + alpha, RGBA


def _chunks(data, where):
    pos = len(SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if pos + 12 + length > len(data):
            raise ReflrpError(f"{where}: truncated PNG")
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise ReflrpError(f"{where}: corrupt PNG (bad checksum in {kind.decode(errors='replace')} chunk)")
        yield kind, body
        pos += 12 + length


@jit
def _unfilter(raw, height, stride, bpp):
    """Undo PNG's per-row filters.

    Parameters
    ----------
    raw : ndarray of uint8, shape (height * (stride + 1),)
        Each row: a filter type byte, then ``stride`` filtered bytes.
    bpp : int
        Bytes per pixel.

    Returns
    -------
    out : ndarray of uint8, shape (height, stride)
    bad_row : int
        -1, or the first row with an unknown filter type.
    """
    out = np.zeros((height, stride), dtype=np.uint8)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        if kind > 4:
            return out, y
        for x in range(stride):
            value = np.int64(raw[start + 1 + x])
            left = np.int64(out[y, x - bpp]) if x >= bpp else np.int64(0)
            up = np.int64(out[y - 1, x]) if y > 0 else np.int64(0)
            if kind == 1:
                value += left
            elif kind == 2:
                value += up
            elif kind == 3:
                value += (left + up) // 2
            elif kind == 4:
                corner = np.int64(out[y - 1, x - bpp]) if (y > 0 and x >= bpp) else np.int64(0)
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                value += left if (pa <= pb and pa <= pc) else (up if pb <= pc else corner)
            out[y, x] = value & 255
    return out, -1


def read_png(path, max_pixels=MAX_PIXELS):
    """An 8-bit PNG as a float64 array in [0, 1] of shape (channels, height, width); alpha is dropped."""
    where = repr(str(path))
    if os.path.getsize(path) > MAX_FILE_BYTES:
        raise ReflrpError(f"{where}: larger than {MAX_FILE_BYTES} bytes")
    with open(path, "rb") as handle:
        data = handle.read()
    if not data.startswith(SIGNATURE):
        raise ReflrpError(f"{where} is not a PNG file")
    header, compressed = None, []
    for kind, body in _chunks(data, where):
        if kind == b"IHDR":
            if len(body) != 13:
                raise ReflrpError(f"{where}: corrupt PNG (IHDR chunk of {len(body)} bytes)")
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ReflrpError(f"{where}: corrupt PNG (no IHDR)")
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in _CHANNELS or interlace:
        raise ReflrpError(f"{where}: only 8-bit, non-interlaced greyscale/RGB(A) PNGs are supported")
    if width == 0 or height == 0:
        raise ReflrpError(f"{where}: corrupt PNG (an empty {width}x{height} image)")
    if width * height > max_pixels:
        raise ReflrpError(f"{where}: a {width}x{height} image has more than {max_pixels} pixels (refused before "
                          f"decoding)")
    channels = _CHANNELS[color]
    expected = height * (width * channels + 1)
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(b"".join(compressed), expected + 1)  # never inflates more than the image needs
    except zlib.error as error:
        raise ReflrpError(f"{where}: corrupt PNG ({error})") from None
    if len(raw) != expected:
        raise ReflrpError(f"{where}: corrupt PNG (image data of {len(raw)} bytes, its header implies {expected})")
    pixels, bad_row = _unfilter(np.frombuffer(raw, dtype=np.uint8), height, width * channels, channels)
    if bad_row >= 0:
        raise ReflrpError(f"{where}: corrupt PNG (unknown filter type in row {bad_row})")
    pixels = pixels.reshape(height, width, channels)
    if channels in (2, 4):
        pixels = pixels[..., :-1]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float64) / 255.0


def write_png(path, image):
    """Write a (height, width) or (height, width, 3|4) array in [0, 1] as an 8-bit PNG."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ReflrpError(f"write_png: image must be (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    color = {1: 0, 3: 2, 4: 6}[image.shape[2]]
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height, width = pixels.shape[:2]
    with open(path, "wb") as handle:
        handle.write(SIGNATURE)
        handle.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)))
        handle.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        handle.write(chunk(b"IEND", b""))
