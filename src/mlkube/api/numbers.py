"""Numeric limits shared by the request checks and the schemas that document them."""

from __future__ import annotations

import struct

# the largest finite float32 and float16 (bit patterns 0x7f7fffff and 0x7bff), without importing numpy
FLOAT32_MAX: float = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
FLOAT16_MAX: float = struct.unpack("<e", b"\xff\x7b")[0]
