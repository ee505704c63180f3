"""A dependency-free SVG heatmap for the explanation commands (`usermodel explain ...`).

The stack has no plotting library, and an explanation picture is one matrix of weights with
labelled rows and columns (MFN: interests × history items; UTPM: heads × input features), so
the SVG is written directly: one rectangle per cell, shaded white → blue by value, the value
printed in the cell, labels on the left and top. Any browser or docs page shows it.
"""

from __future__ import annotations

import html
import os
from typing import Sequence

import numpy as np

__all__ = ["heatmap_svg", "write_heatmap"]

_CELL_W, _CELL_H, _FONT = 56, 22, 11
_LOW, _HIGH = np.array([255, 255, 255]), np.array([33, 102, 172])


def _colour(fraction: float) -> str:
    r, g, b = (_LOW + (_HIGH - _LOW) * min(max(fraction, 0.0), 1.0)).round().astype(int)
    return f"rgb({r},{g},{b})"


def _text(x: float, y: float, label: str, anchor: str = "start", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{_FONT}" font-family="sans-serif" '
            f'text-anchor="{anchor}"{extra}>{html.escape(label)}</text>')


def heatmap_svg(
    values: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str = "",
) -> str:
    """The SVG text of a heatmap of `values` `[rows, cols]`.

    Shading runs from the matrix's minimum (white) to its maximum (blue), so the strongest
    weights of each picture stand out whatever their scale; each cell also prints its value.

    Raises:
        ValueError: when the labels do not match the matrix shape.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"values {values.shape} do not match {len(row_labels)} row and {len(col_labels)} column labels")
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    span = high - low or 1.0
    left = 8 + _FONT * 0.62 * max((len(label) for label in row_labels), default=0)
    top = 24 + (20 if title else 0) + _FONT * 0.62 * max((len(label) for label in col_labels), default=0) * 0.72
    width = left + _CELL_W * values.shape[1] + 8
    height = top + _CELL_H * values.shape[0] + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}">',
             '<rect width="100%" height="100%" fill="white"/>']
    if title:
        parts.append(_text(8, 18, title, extra=' font-weight="bold"'))
    for j, label in enumerate(col_labels):
        x, y = left + _CELL_W * (j + 0.5), top - 6
        parts.append(_text(x, y, label, extra=f' transform="rotate(-45 {x:.1f} {y:.1f})"'))
    for i, label in enumerate(row_labels):
        y = top + _CELL_H * i
        parts.append(_text(left - 6, y + _CELL_H * 0.68, label, anchor="end"))
        for j in range(values.shape[1]):
            fraction = (values[i, j] - low) / span
            x = left + _CELL_W * j
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{_CELL_W}" height="{_CELL_H}" '
                         f'fill="{_colour(fraction)}" stroke="#ccc"/>')
            ink = ' fill="white"' if fraction > 0.6 else ""
            parts.append(_text(x + _CELL_W / 2, y + _CELL_H * 0.68, f"{values[i, j]:.3f}", anchor="middle", extra=ink))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_heatmap(path: str | os.PathLike[str], values: np.ndarray, row_labels: Sequence[str],
                  col_labels: Sequence[str], title: str = "") -> str:
    """Writes `heatmap_svg(...)` to `path` (parent folders created) and returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(heatmap_svg(values, row_labels, col_labels, title))
    return path
