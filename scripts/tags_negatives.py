"""Trains one tags model in process on a finished tags run's Transform output and prints its
reference Prec@K, with or without sampled negatives (docs/tags.md, "Why the models sat at chance").

Kinds of negatives, `--negatives k` per labelled article, each with the same user's fields:
* ``tags``: pseudo-articles of N tags drawn uniformly from the vocabulary, exactly the Trainer's
  `TagsTrainingConfig.sampled_negatives` (`trainer/tags/input.py: training_dataset`);
* ``articles``: real catalog articles drawn uniformly (drawn once, before training), the
  alternative that docs/tags.md measured and rejected.

Usage: PYTHONPATH=$PWD .venv/bin/python scripts/tags_negatives.py RUN_DIR MODEL [--epochs 1]
[--negatives 4] [--kind tags|articles] [--learning-rate 0.003] [--seed 1]
(RUN_DIR: a `usermodel run`/`table` seed folder whose pipeline ran a tags Transform).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
import types

import numpy as np
import tensorflow_transform as tft

from trainer import loop
from trainer.tags import input as tags_input
from trainer.tags import run as tags_run
from trainer.tags.config import TagsTrainingConfig
from trainer.transform_ops import FIRST_ID


def _only(pattern: str) -> str:
    found = sorted(glob.glob(pattern))
    if not found:
        raise SystemExit(f"nothing matches {pattern}: is this a tags run's folder?")
    return found[-1]


def with_article_negatives(samples: tags_input.TrainingSamples, table: tags_input.ItemTable, k: int,
                           seed: int) -> tags_input.TrainingSamples:
    """k uniformly drawn tagged catalog articles per labelled article, label 0."""
    rng = np.random.default_rng(seed)
    tagged = np.flatnonzero((table.tags >= FIRST_ID).any(-1))
    rows = np.repeat(np.arange(samples.samples), k)
    extra = {name: value[rows] for name, value in samples.inputs.items()}
    extra["article_tags"] = table.tags[rng.choice(tagged, size=len(rows))]
    inputs = {name: np.concatenate([samples.inputs[name], extra[name]]) for name in samples.inputs}
    clicks = np.concatenate([samples.clicks, np.zeros(len(rows), samples.clicks.dtype)])
    return tags_input.TrainingSamples(inputs, clicks, samples.counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("model")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--negatives", type=int, default=0)
    parser.add_argument("--kind", choices=("tags", "articles"), default="tags")
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    transform = os.path.join(args.run_dir, "pipeline", "Transform.tags")
    graph = _only(os.path.join(transform, "transform_graph", "*"))
    examples = os.path.join(transform, "transformed_examples", os.path.basename(graph), "Split-train", "*")
    sampled = args.negatives if args.kind == "tags" else 0
    cfg = TagsTrainingConfig.from_dict({"model": args.model, "learning_rate": args.learning_rate, "epochs": args.epochs,
                                        "seed": args.seed, "sampled_negatives": sampled})
    tft_output = tft.TFTransformOutput(graph)
    fn_args = types.SimpleNamespace(train_files=[examples])
    data = tags_run.HOOKS.prepare(fn_args, cfg, tft_output)
    if args.kind == "articles" and args.negatives:
        data.train = with_article_negatives(data.train, data.table, args.negatives, args.seed)
    model = tags_run.HOOKS.build(cfg, data, tft_output)
    tags_run.HOOKS.compile(model, cfg)
    start = time.time()
    model.fit(tags_run.HOOKS.training_dataset(cfg, data, model), verbose=0,
              steps_per_epoch=cfg.total_steps(data.samples, None), epochs=1)
    metrics = tags_run.HOOKS.evaluate(model, cfg, data, loop.split_files(fn_args.train_files, "eval"))
    print(json.dumps({"model": args.model, "epochs": args.epochs, "negatives": args.negatives, "kind": args.kind,
                      **{k: round(v, 4) for k, v in metrics.items() if k.startswith("prec")},
                      "seconds": round(time.time() - start)}))


if __name__ == "__main__":
    main()
