"""A small, strict PNG reader and writer (8-bit, non-interlaced), so the CLI reads images without optional
dependencies.  Anything else gets a clear error."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from reflrp.errors import ReflrpError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # greyscale, RGB, greyscale + alpha, RGBA


def _chunks(data, where):
    pos = len(SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            raise ReflrpError(f"{where}: truncated PNG")
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise ReflrpError(f"{where}: corrupt PNG (bad checksum in {kind.decode(errors='replace')} chunk)")
        yield kind, body
        pos += 12 + length


def _unfilter(raw, height, stride, bpp, where):
    out = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=start + 1).astype(np.int64)
        if kind == 0:
            row = line
        elif kind == 2:
            row = (line + previous) & 255
        elif kind in (1, 3, 4):
            row = np.zeros(stride, dtype=np.int64)
            for x in range(stride):
                left = row[x - bpp] if x >= bpp else 0
                up = previous[x]
                if kind == 1:
                    predict = left
                elif kind == 3:
                    predict = (left + up) // 2
                else:
                    corner = previous[x - bpp] if x >= bpp else 0
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    predict = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                row[x] = (line[x] + predict) & 255
        else:
            raise ReflrpError(f"{where}: corrupt PNG (unknown filter {kind})")
        out[y] = row
        previous = row
    return out


def read_png(path):
    """An 8-bit PNG as a float64 array in [0, 1] of shape (channels, height, width); alpha is dropped."""
    where = repr(str(path))
    with open(path, "rb") as handle:
        data = handle.read()
    if not data.startswith(SIGNATURE):
        raise ReflrpError(f"{where} is not a PNG file")
    header, compressed = None, b""
    for kind, body in _chunks(data, where):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed += body
        elif kind == b"IEND":
            break
    if header is None:
        raise ReflrpError(f"{where}: corrupt PNG (no IHDR)")
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in _CHANNELS or interlace:
        raise ReflrpError(f"{where}: only 8-bit, non-interlaced greyscale/RGB(A) PNGs are supported")
    channels = _CHANNELS[color]
    try:
        raw = zlib.decompress(compressed)
    except zlib.error as error:
        raise ReflrpError(f"{where}: corrupt PNG ({error})") from None
    if len(raw) != height * (width * channels + 1):
        raise ReflrpError(f"{where}: corrupt PNG (image data has the wrong size)")
    pixels = _unfilter(raw, height, width * channels, channels, where).reshape(height, width, channels)
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
