"""`usermodel bench train` for the CTR family: training speed of Embedding&MLP, DIN and MFN.

Issue 12 asks what MFN's two levels of similarity and combination interests cost per training
step against DIN (target: at most 2x DIN's step on this CPU) and the Base. Every model trains on
the same synthetic batches (`bench_timing`: interleaved windows, medians) at a MovieLens
setting, the data the CTR family trains on:

* catalogue sizes of ml-latest-small: 9,742 movies, 20 genres, 9,223 distinct title words
  (without the year), each + the padding and unknown ids;
* the Transform's shapes (`trainer/ctr/config.py`): 50 history slots, up to 4 categories and 16
  title words per item; an item has 1-4 genres (1 + Poisson(1.27), mean ~2.3, as ml-latest-small's
  2.27) and 1-16 title words (1 + Poisson(2.4), mean ~3.4, as its 3.39);
* history fill as the trainer's samples from ml-latest-small (every rated event after a user's
  first is a target, its history the up to 50 events before it): 70 % of samples have a full
  history, the rest are uniform in 0-49 slots, so batches carry padding and empty histories;
* 5 % unknown item ids (id 1) and 5 % unknown title words; clicks drawn at 50 %;
* the models' paper defaults (64-d embeddings per field, DIN's Dice, MFN's K = 4) at batch 32
  (DIN, Section 6: SGD with batch 32).

MFN with pretraining (`mfn`, `mfn_no_combination`) gets random fixed tables and centers, drawn
the way the model tests draw them: fixed id tables as wide as the trainable ones (the pipeline
takes them from the Base), 50-d fixed word vectors (GloVe 6B-50d's width). Only their values
differ from a pipeline run; the work per step is the same.

The batches are random, not data: only speed is meaningful. The CTR models compute on the
padded `[B, H]` layout (they do not skip padding), so the fill changes little.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from pipeline import bench_timing
from pipeline.bench_timing import Subject, TimingConfig
from trainer.ctr.config import CTRTransformConfig

DEFAULT_MODELS = ("embedding_mlp", "din", "mfn")
"""`usermodel bench train --family ctr` without `--models`: the Base, DIN and MFN."""


@dataclasses.dataclass
class CTRBenchConfig(TimingConfig):
    """The MovieLens setting of the CTR speed benchmark (module docstring for the sources)."""

    models: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_MODELS))
    """CTR registry names (`trainer/ctr/models`)."""
    embedding_dim: int = 64
    """Width of each field's embedding (`CTRConfig`'s default, the DIN authors' code)."""
    steps: int = 50
    """Optimizer steps per timed window (a CTR step takes milliseconds, so more than news)."""
    history_length: int = CTRTransformConfig.history_length
    """History slots (the Transform's default: 50)."""
    max_categories: int = CTRTransformConfig.max_categories
    """Category slots per item (the Transform's default: 4)."""
    title_length: int = CTRTransformConfig.title_length
    """Title-word slots per item (the Transform's default: 16)."""
    num_items: int = 9_742 + 2
    """Item table rows: ml-latest-small's movies + padding and unknown."""
    num_categories: int = 20 + 2
    """Category table rows: ml-latest-small's genres + padding and unknown."""
    vocab_size: int = 9_223 + 2
    """Title-word table rows: ml-latest-small's title words + padding and unknown."""
    full_history: float = 0.7
    """Share of samples whose history fills every slot (ml-latest-small's training samples: 70 %)."""
    word_dim: int = 50
    """Width of MFN's fixed word vectors (GloVe 6B-50d)."""


def catalogue(rng: np.random.Generator, cfg: CTRBenchConfig) -> tuple[np.ndarray, np.ndarray]:
    """Categories `[num_items, C]` and title words `[num_items, L]` of every item id, padded with 0
    (rows 0 and 1, padding and the unknown item, stay empty)."""
    items = cfg.num_items

    def lists(slots: int, mean_extra: float, high: int) -> np.ndarray:
        lengths = np.minimum(1 + rng.poisson(mean_extra, items), slots)
        ids = rng.integers(2, high, (items, slots))
        ids = np.where(np.arange(slots) < lengths[:, None], ids, 0)
        ids[:2] = 0
        return ids.astype("int32")

    categories = lists(cfg.max_categories, 1.27, cfg.num_categories)
    words = lists(cfg.title_length, 2.4, cfg.vocab_size)
    words[(rng.random(words.shape) < 0.05) & (words > 0)] = 1
    return categories, words


def synthetic_batch(
    rng: np.random.Generator, cfg: CTRBenchConfig, items: tuple[np.ndarray, np.ndarray]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One training batch in the CTR input contract (`trainer/ctr/models/ctr_model.py`).

    Histories are full with probability `cfg.full_history`, else 0 to H - 1 slots long; the first
    row is always short, so every batch has padding. Padded slots are all zeros, as the input
    pipeline writes them. An item's categories and words come from `items` (`catalogue`) by its
    catalogue id even when its item id is unknown (1), as in the trainer's item table.
    """
    categories, words = items
    b, h = cfg.batch_size, cfg.history_length
    lengths = np.where(rng.random(b) < cfg.full_history, h, rng.integers(0, h, b))
    lengths[0] = rng.integers(0, h)
    real = np.arange(h) < lengths[:, None]
    hist = np.where(real, rng.integers(2, cfg.num_items, (b, h)), 0)
    target = rng.integers(2, cfg.num_items, b)

    def ids(catalogue_ids: np.ndarray) -> np.ndarray:
        unknown = (rng.random(catalogue_ids.shape) < 0.05) & (catalogue_ids > 0)
        return np.where(unknown, 1, catalogue_ids).astype("int32")

    x = {
        "hist_item": ids(hist), "hist_categories": categories[hist], "hist_words": words[hist],
        "hist_mask": real.astype("float32"),
        "target_item": ids(target), "target_categories": categories[target], "target_words": words[target],
    }
    return x, (rng.random(b) < 0.5).astype("float32")


def build(name: str, cfg: CTRBenchConfig, rng: np.random.Generator):
    """CTR model `name` at its paper defaults and the benchmark's sizes; MFN with pretraining
    also gets random fixed tables and centers (module docstring)."""
    from trainer.ctr.models import MFN, MODELS

    sizes = {"num_items": cfg.num_items, "num_categories": cfg.num_categories, "vocab_size": cfg.vocab_size,
             "embedding_dim": cfg.embedding_dim}
    config = MODELS.make_config(name, **sizes)
    model_class = MODELS[name][1]
    if not (issubclass(model_class, MFN) and config.use_pretrain):
        return model_class(config)
    config = dataclasses.replace(config, fixed_dim=cfg.embedding_dim, word_dim=cfg.word_dim)
    fixed = {"item": rng.normal(size=(cfg.num_items, config.fixed_dim)),
             "categories": rng.normal(size=(cfg.num_categories, config.fixed_dim)),
             "words": rng.normal(size=(cfg.vocab_size, config.word_dim))}
    k = config.num_interests
    centers = {"category": rng.normal(size=(k, 2 * config.fixed_dim)), "fine": rng.normal(size=(k, config.word_dim))}
    return model_class(config, fixed_embeddings=fixed, centers=centers)


def batches(cfg: CTRBenchConfig, count: int = 4) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    """The benchmark's batches: the same for every model (drawn from `cfg.seed`)."""
    rng = np.random.default_rng(cfg.seed)
    items = catalogue(rng, cfg)
    return [synthetic_batch(rng, cfg, items) for _ in range(count)]


def make_subject(name: str, cfg: CTRBenchConfig) -> Subject:
    """The timed subject of CTR model `name` (training and full inference)."""
    model = build(name, cfg, np.random.default_rng(cfg.seed + 1))
    return Subject(name, model, batches(cfg), cfg)


def measure(cfg: CTRBenchConfig, progress=None) -> list[dict[str, Any]]:
    """Training and inference rates of the CTR models `cfg.models` (`bench_timing.measure`)."""
    return bench_timing.measure(cfg, make_subject, progress)


def markdown(results: list[dict[str, Any]]) -> str:
    """The results as a Markdown table, with rates relative to the first model."""
    return bench_timing.markdown(results, {"full_inference_samples_per_s": "full inference samples/s"})
