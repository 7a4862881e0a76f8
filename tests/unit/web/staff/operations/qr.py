"""Reading a printed QR code back: the SVG's path drawn as pixels and decoded by zxing-cpp.

The path is rasterised here from its own commands (segno draws dark runs as horizontal
strokes: "M x y", "m dx dy", "h n"), so the check goes through what the page prints, not
through segno's matrix.
"""

from __future__ import annotations

import re

import numpy as np
import zxingcpp

_VIEWBOX = re.compile(r'viewBox="0 0 (\d+) (\d+)"')
_PATH = re.compile(r' d="([^"]+)"')
_COMMAND = re.compile(r"([MmHhVv])\s*(-?[\d.]+)(?:\s+(-?[\d.]+))?")


def svg_pixels(svg: str, scale: int = 8) -> np.ndarray:
    width, height = (int(n) for n in _VIEWBOX.search(svg).groups())
    image = np.full((height, width), 255, dtype=np.uint8)
    x = y = 0.0
    for command, a, b in _COMMAND.findall(_PATH.search(svg).group(1)):
        if command == "M":
            x, y = float(a), float(b)
        elif command == "m":
            x, y = x + float(a), y + float(b)
        elif command in "hH":
            end = x + float(a) if command == "h" else float(a)
            row = int(y - 0.5)  # strokes are 1 unit wide, centred on y
            image[row, int(min(x, end)) : int(max(x, end))] = 0
            x = end
    return np.kron(image, np.ones((scale, scale), dtype=np.uint8))


def decoded(svg: str) -> list[str]:
    """The texts of every QR code zxing-cpp finds in the SVG."""
    return [result.text for result in zxingcpp.read_barcodes(svg_pixels(svg))]
