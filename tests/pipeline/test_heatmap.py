"""The explanation commands' SVG heatmap: well-formed, labelled, shaded by value."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from pipeline.explain.heatmap import heatmap_svg, write_heatmap

_NS = "{http://www.w3.org/2000/svg}"


def test_heatmap_is_valid_svg_with_one_cell_per_value(tmp_path):
    values = np.array([[0.1, 0.9, 0.0], [0.5, 0.25, 0.25]])
    path = write_heatmap(tmp_path / "sub" / "h.svg", values, ["interest 1", "interest 2"], ["a", "b<&>", "c"], "t")
    root = ET.parse(path).getroot()
    cells = [r for r in root.iter(f"{_NS}rect") if r.get("stroke")]
    assert len(cells) == values.size
    texts = [t.text for t in root.iter(f"{_NS}text")]
    assert "b<&>" in texts and "interest 2" in texts and "0.900" in texts
    fills = {float(t.text): c.get("fill") for t, c in zip([t for t in root.iter(f"{_NS}text") if t.text[0] == "0"], cells)}
    assert fills[0.0] == "rgb(255,255,255)"  # the minimum is white
    assert fills[0.9] == "rgb(33,102,172)"  # the maximum is full blue


def test_heatmap_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="do not match"):
        heatmap_svg(np.zeros((2, 3)), ["a"], ["x", "y", "z"])
