"""Deterministic synthetic MIND and MovieLens data sets with planted, documented structure.

Why: the project must run, test and demo without the real data sets (their licences forbid
redistribution), and model tests need data where the right answer is known. Both generators
write the official file formats byte for byte, so every parser, ExampleGen and pipeline runs on
them unchanged; the same config (seed included) always gives byte-identical files. NumPy only.

* ``mind``: MIND (``generate_mind``): news.tsv, behaviors.tsv, entity_embedding.vec. Its
  docstring documents the planted topics, users, click model, histories, impressions and time.
* ``movielens``: MovieLens (``generate_movielens``): ratings.csv, movies.csv, tags.csv in the
  ml-latest-small format. Its docstring documents the planted genre and tag preferences.
* ``common``: helpers both use (seeded random streams, config checks, presets, made-up words).

The public names of both generators are re-exported here (``synthetic.generate_mind``,
``synthetic.SyntheticMovieLensConfig``, ...).
"""

from components.ingest.synthetic.mind import (
    MIND_PRESETS,
    GeneratedMind,
    MindWorld,
    SyntheticMindConfig,
    generate_mind,
    oracle_scores,
)
from components.ingest.synthetic.movielens import (
    MOVIELENS_GENRES,
    MOVIELENS_PRESETS,
    GeneratedMovieLens,
    MovieLensWorld,
    SyntheticMovieLensConfig,
    generate_movielens,
)

__all__ = [
    "MIND_PRESETS",
    "MOVIELENS_GENRES",
    "MOVIELENS_PRESETS",
    "GeneratedMind",
    "GeneratedMovieLens",
    "MindWorld",
    "MovieLensWorld",
    "SyntheticMindConfig",
    "SyntheticMovieLensConfig",
    "generate_mind",
    "generate_movielens",
    "oracle_scores",
]
