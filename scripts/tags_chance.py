"""Chance levels of the tag family's Prec@1 on a finished run: a random history tag and a random tag.

The gate's floor (`families.tags.gate.min_value`) must sit above what ranking at random reaches,
which depends on the data (docs/tags.md, "Floors"). Per eval user, a random history tag hits
with probability ``|clicked ∩ history| / |history|`` and a random tag with ``|clicked| / real
tags``; the script averages them over the users that have a value, with the clicked and history
tags from a pushed model's `labels` signature on the run's raw eval split.

    PYTHONPATH=$PWD .venv/bin/python scripts/tags_chance.py OUTPUT_DIR SAVED_MODEL_DIR
"""

from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np
import tensorflow as tf

from pipeline.summary import _Metadata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", help="a `usermodel run --output-dir` of a run with a tag model")
    parser.add_argument("model_dir", help="a pushed tag SavedModel (its `labels` signature)")
    args = parser.parse_args()
    with open(os.path.join(args.output_dir, "config.json")) as f:
        name = json.load(f)["pipeline_name"]
    md = _Metadata(os.path.join(args.output_dir, "metadata.sqlite"), name)
    uri = md.outputs("ExampleGen.tags")["examples"][0].uri
    files = glob.glob(os.path.join(uri, "Split-eval", "*.gz"))
    examples = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    out = tf.saved_model.load(args.model_dir).signatures["labels"](examples=tf.constant(examples))
    clicked, history = out["clicked_tags"].numpy() > 0, out["candidate_tags"].numpy() > 0
    has_click = clicked.any(1)
    both = has_click & history.any(1)
    hits = (clicked & history).sum(1)[both]
    print(f"{len(examples)} eval users, {int(has_click.sum())} with a clicked tag, {int(both.sum())} also with "
          f"history tags ({history.sum(1)[both].mean():.2f} on average, {hits.mean():.2f} of them clicked)")
    print(f"random history tag: Prec@1 {np.mean(hits / history.sum(1)[both]):.3f}")
    print(f"random tag: Prec@1 {np.mean(clicked.sum(1)[has_click] / (clicked.shape[1] - 2)):.3f}")


if __name__ == "__main__":
    main()
