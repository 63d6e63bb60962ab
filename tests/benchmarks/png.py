"""A PNG reader of our own (no imaging library): chunks with their CRCs, the IHDR header, the
IDAT stream inflated and unfiltered (PNG spec section 9), so a test sees real pixels."""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}     # colour type -> samples a pixel (8-bit, no palette)


@dataclass
class Image:
    width: int
    height: int
    channels: int
    rows: list[bytes]

    def colours(self) -> set[bytes]:
        c = self.channels
        return {row[i:i + c] for row in self.rows[::4] for i in range(0, len(row), c * 4)}


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def unfilter(data: bytes, width: int, height: int, bpp: int) -> list[bytes]:
    stride, rows, prior = width * bpp, [], bytearray(width * bpp)
    assert len(data) == height * (stride + 1), f"{len(data)} bytes of pixels for {width}x{height}"
    for y in range(height):
        kind, line = data[y * (stride + 1)], bytearray(data[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        assert kind <= 4, f"row {y}: filter type {kind}"
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prior[i], prior[i - bpp] if i >= bpp else 0
            add = (0, left, up, (left + up) // 2, paeth(left, up, corner))[kind]
            line[i] = (line[i] + add) & 0xFF
        rows.append(bytes(line))
        prior = line
    return rows


def read(blob: bytes) -> Image:
    assert blob[:8] == SIGNATURE, "not a PNG signature"
    at, chunks = 8, []
    while at < len(blob):
        length, kind = struct.unpack(">I4s", blob[at:at + 8])
        body = blob[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", blob[at + 8 + length:at + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        at += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND", [k for k, _ in chunks]
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and colour in CHANNELS and interlace == 0, (depth, colour, interlace)
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    return Image(width, height, CHANNELS[colour], unfilter(pixels, width, height, CHANNELS[colour]))
