"""A wall-clock time drawn into a raw video frame as a row of black and white blocks, and read
back from a decoded frame: how the serving benchmark measures glass-to-glass latency.

The stamp is 32 bits of the wall clock in milliseconds (modulo 2**32, ~49 days) and an 8-bit
CRC, one bit per square block across the bottom of the picture. Blocks are at least 8 pixels and
aligned to 8, so a block is whole macroblock partitions: an H.264 encoder at any sensible bitrate
keeps them black and white. Pure byte arithmetic on the luma plane: no `gi`, no numpy.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

DATA_BITS = 32
CHECK_BITS = 8
BITS = DATA_BITS + CHECK_BITS
MODULUS = 1 << DATA_BITS
BLACK = 16  # video-range luma
WHITE = 235
MIN_WIDTH = BITS * 8


@dataclass(frozen=True)
class StampLayout:
    """Where the stamp sits in a frame: `BITS` square blocks of `block` pixels from x = 0,
    rows `top` to `top + block`."""

    width: int
    height: int
    block: int
    top: int

    @classmethod
    def for_frame(cls, width: int, height: int) -> StampLayout:
        """The layout for a `width` x `height` picture (width at least `MIN_WIDTH`)."""
        if width < MIN_WIDTH or height < 16:
            raise ValueError(f"a time stamp needs a picture at least {MIN_WIDTH}x16")
        block = max(8, width // BITS // 8 * 8)
        top = (height - block) // 16 * 16
        return cls(width, height, block, top)


def _check(value: int) -> int:
    # Flipped so that uniform bands (all ones: the CRC-32 of 0xFFFFFFFF is 0xFFFFFFFF; all
    # zeros) do not read as stamps: a grey frame from a decoder missing its references does.
    return (zlib.crc32(value.to_bytes(4, "big")) & 0xFF) ^ 0xA5


def stamp_bits(milliseconds: int) -> list[int]:
    """The stamp's bits, most significant first: the time modulo 2**32, then its CRC."""
    value = milliseconds % MODULUS
    word = (value << CHECK_BITS) | _check(value)
    return [(word >> (BITS - 1 - i)) & 1 for i in range(BITS)]


def luma_band(milliseconds: int, layout: StampLayout, stride: int) -> bytes:
    """The luma rows `layout.top` .. `layout.top + layout.block` of a plane with `stride`
    bytes per row, carrying the stamp (the rest of those rows mid-grey)."""
    blocks = b"".join(
        (WHITE if bit else BLACK).to_bytes(1, "big") * layout.block
        for bit in stamp_bits(milliseconds)
    )
    row = blocks + b"\x80" * (stride - len(blocks))
    return row * layout.block


def read_stamp(plane: bytes | memoryview, stride: int, layout: StampLayout) -> int | None:
    """The stamped time (milliseconds modulo 2**32) from a decoded luma plane, or None when the
    blocks do not carry a valid stamp (no stamp, or damaged beyond the CRC)."""
    quarter = max(1, layout.block // 4)
    rows = (layout.top + layout.block // 2 - quarter, layout.top + layout.block // 2 + quarter)
    word = 0
    for bit in range(BITS):
        centre = bit * layout.block + layout.block // 2
        total = 0
        for y in rows:
            base = y * stride
            total += plane[base + centre - quarter] + plane[base + centre + quarter]
        word = (word << 1) | (1 if total > 4 * (BLACK + WHITE) // 2 else 0)
    value = word >> CHECK_BITS
    return value if _check(value) == word & 0xFF else None


def latency_ms(arrival_ms: int, stamp: int) -> int:
    """Milliseconds from a stamp (as read) to `arrival_ms` (wall clock, same machine); negative
    only if the clocks disagree."""
    delta = (arrival_ms - stamp) % MODULUS
    return delta - MODULUS if delta >= MODULUS // 2 else delta
