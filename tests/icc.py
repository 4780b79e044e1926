"""Small ICC v2 display profiles (matrix/TRC) written by the tests themselves: the primaries of
Adobe RGB (1998) or Display P3 with a gamma curve, enough for LittleCMS (Pillow's ImageCms) to
convert with, so no profile file has to ship with the tests.

The colorants are each standard's primaries adapted to the D50 white of the profile connection
space, as the published profiles state them (ICC.1:2001-04, sections 6 and 10).
"""

from __future__ import annotations

import struct

D50 = (0.9642, 1.0, 0.8249)
PRIMARIES = {  # name: (rXYZ, gXYZ, bXYZ, gamma)
    "Adobe RGB": (
        (0.60974, 0.31111, 0.01947),
        (0.20528, 0.62567, 0.06087),
        (0.14919, 0.06322, 0.74457),
        563 / 256,  # 2.19921875, the profile's own
    ),
    "Display P3": (
        (0.515102, 0.241196, -0.001053),
        (0.291965, 0.692236, 0.041881),
        (0.157153, 0.066574, 0.784378),
        2.2,  # close to P3's sRGB-like curve; the tests only need one the profile states
    ),
}


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(values: tuple[float, float, float]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in values)


def _curve(gamma: float) -> bytes:
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)


def _description(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    body = struct.pack(">I", len(ascii_text)) + ascii_text
    body += bytes(4) + struct.pack(">I", 0)  # no Unicode description
    body += bytes(2) + bytes(1) + bytes(67)  # no ScriptCode description
    return b"desc" + bytes(4) + body


def matrix_trc_profile(name: str = "Adobe RGB") -> bytes:
    """An RGB display profile with ``name``'s primaries (a key of PRIMARIES) and gamma."""
    red, green, blue, gamma = PRIMARIES[name]
    tags = [
        (b"desc", _description(f"{name} (test profile)")),
        (b"cprt", b"text" + bytes(4) + b"No copyright, test data\0"),
        (b"wtpt", _xyz(D50)),
        (b"rXYZ", _xyz(red)),
        (b"gXYZ", _xyz(green)),
        (b"bXYZ", _xyz(blue)),
        (b"rTRC", _curve(gamma)),
        (b"gTRC", _curve(gamma)),
        (b"bTRC", _curve(gamma)),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)  # every tag starts on a 4-byte boundary
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000)
    header += b"mntrRGB XYZ " + bytes(12) + b"acsp" + bytes(24)
    header += struct.pack(">I", 0) + b"".join(_s15(v) for v in D50) + bytes(48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data
