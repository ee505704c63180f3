"""`usermodel bench train`: training and inference speed of the news-ranking models (and the
CLI of every family's speed benchmark: CTR models are measured by `pipeline/bench_ctr.py`).

FUM's efficiency claim (Qi et al., 2022, the efficiency table of Section 4) is that modeling the
user's clicked news as one 1,600-token document with Fastformer costs about as much as models
that only see news-level vectors. This benchmark checks that claim on this machine: every model
trains on the same synthetic batches at the paper-style setting (batch 32, 50-click histories,
30-token titles, one click + 4 negatives per sample, 50-d word embeddings as NRMS's reference
GloVe setup), and reports

* training samples/s: median over timed windows of `steps` optimizer steps (the compiled train
  step of `fit`, run by `train_on_batch` on ready tensors), after a warm-up window that absorbs
  tracing and (with `--jit-compile`) XLA compilation; a sample is one click
  with its 4 negatives and its history. The models' windows are interleaved, so all of them see
  the same background load (this machine is shared);
* inference samples/s of the full model (every article encoded) and of serving-style scoring
  (news vectors cached, only the user encoder runs; 100 candidates per user), each the median
  over timed windows.

Random inputs, not data, so only speed is meaningful; the inputs change between steps so no
cache helps. At 50-d the word embeddings start from GloVe 6B (the reference setup). Title and
abstract lengths and history sizes are uniform by default (titles 10-30 of 30 tokens,
histories 30-50 of 50 clicks), or drawn from a MIND-format directory (`--lengths-from`): the
models skip padding (trainer/news/models/padding.py), so their speed depends on how full the
inputs are.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import re
from typing import Any

import numpy as np

from pipeline import bench_timing
from pipeline.bench_timing import Subject, TimingConfig
from trainer.news.config import NewsTrainingConfig, NewsTransformConfig

#: Benchmark variants: registry name and config overrides at the paper-style setting.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "nrms": ("nrms", {"num_heads": 20, "head_dim": 20}),
    "lstur": ("lstur", {}),
    "fum": ("fum", {}),
    "fum_title": ("fum", {"use_abstract": False}),
    "fum_no_fine": ("fum_no_fine", {}),
    "fum_no_coarse": ("fum_no_coarse", {}),
}


@dataclasses.dataclass
class BenchConfig(TimingConfig):
    """The paper-style setting of the news speed benchmark."""

    models: list[str] = dataclasses.field(default_factory=lambda: ["nrms", "lstur", "fum_title", "fum"])
    """Variants to measure (keys of `VARIANTS`)."""
    history_length: int = NewsTransformConfig.history_length
    """Clicks per history (the papers: 50; the Transform's default)."""
    title_length: int = NewsTransformConfig.title_length
    """Title tokens (NRMS/FUM: 30; the Transform's default)."""
    abstract_length: int = NewsTransformConfig.abstract_length
    """Abstract tokens, for models that read abstracts (FUM's official code: 50; the Transform's)."""
    negatives: int = NewsTrainingConfig.negatives
    """Negatives per click (the news trainer's default: 4)."""
    embedding_dim: int = 50
    """Word-embedding width (NRMS reference setup: 50-d GloVe)."""
    vocab_size: int = 30_000
    """Word vocabulary size."""
    num_categories: int = 20
    """Category vocabulary (MIND: 18 + reserved ids)."""
    num_subcategories: int = 300
    """Sub-category vocabulary (MIND-small: ~270 + reserved ids)."""
    num_users: int = 50_000
    """User vocabulary (MIND-small: 50k users)."""
    inference_candidates: int = 100
    """Candidates per user in the serving-style inference measurement."""
    lengths_from: str | None = None
    """A MIND-format directory (news.tsv, behaviors.tsv): draw title/abstract lengths and
    history sizes from its distributions instead of the default uniform ones."""


def length_pools(directory: str) -> dict[str, np.ndarray]:
    """Observed title/abstract token counts and history sizes of a MIND-format directory.

    Tokens are counted as the Transform splits them (words and punctuation marks).
    """
    from components.errors import UserError

    word = re.compile(r"[^\W_]+|[^\w\s]|_")
    pools: dict[str, list[int]] = {"title": [], "abstract": [], "history": []}
    try:
        with open(f"{directory}/news.tsv", encoding="utf-8") as f:
            for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(row) >= 5:
                    pools["title"].append(len(word.findall(row[3])))
                    pools["abstract"].append(len(word.findall(row[4])))
        with open(f"{directory}/behaviors.tsv", encoding="utf-8") as f:
            for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(row) >= 4:
                    pools["history"].append(len(row[3].split()))
    except OSError as err:
        raise UserError(f"--lengths-from: {err}") from None
    empty = [k for k, v in pools.items() if not v]
    if empty:
        raise UserError(f"--lengths-from {directory}: no rows for {', '.join(empty)} (is it MIND format?)")
    return {k: np.array(v) for k, v in pools.items()}


def _sizes(rng: np.random.Generator, pools: dict | None, key: str, limit: int, shape, low: int) -> np.ndarray:
    """Lengths: from the observed pool (capped at `limit`) or uniform in [low, limit]."""
    if pools is None:
        return rng.integers(low, limit + 1, shape)
    return np.minimum(rng.choice(pools[key], shape), limit)


def _news(rng: np.random.Generator, cfg: BenchConfig, shape: tuple[int, ...], pools=None) -> dict[str, np.ndarray]:
    def text(field: str, length: int) -> np.ndarray:
        tokens = rng.integers(2, cfg.vocab_size, shape + (length,)).astype("int32")
        lengths = _sizes(rng, pools, field, length, shape, length // 3)
        return np.where(np.arange(length) < lengths[..., None], tokens, 0).astype("int32")

    return {
        "title": text("title", cfg.title_length),
        "abstract": text("abstract", cfg.abstract_length),
        "category": rng.integers(2, cfg.num_categories, shape).astype("int32"),
        "subcategory": rng.integers(2, cfg.num_subcategories, shape).astype("int32"),
    }


def synthetic_batch(
    rng: np.random.Generator, cfg: BenchConfig, fields: tuple[str, ...], pools: dict | None = None
) -> tuple[dict, np.ndarray]:
    """One training batch: 1 + K candidates, click slot labels; titles 1/3 to fully used and
    histories 60-100 % full, or lengths drawn from `pools` (`length_pools`).

    Padded history slots are all-padding articles, as the Transform writes them.
    """
    b, h, c = cfg.batch_size, cfg.history_length, 1 + cfg.negatives
    hist, cand = _news(rng, cfg, (b, h), pools), _news(rng, cfg, (b, c), pools)
    filled = _sizes(rng, pools, "history", h, (b,), int(0.6 * h))
    if pools is not None:
        filled = np.maximum(filled, 1)
    real = np.arange(h) < filled[:, None]
    for f in hist:
        hist[f] = hist[f] * (real if hist[f].ndim == 2 else real[..., None])
    x = {f"hist_{f}": hist[f] for f in fields}
    x.update({f"cand_{f}": cand[f] for f in fields})
    x["hist_mask"] = real.astype("float32")
    x["cand_mask"] = np.ones((b, c), "float32")
    x["user_index"] = rng.integers(2, cfg.num_users, b).astype("int32")
    return x, rng.integers(0, c, b).astype("int32")


GLOVE = "glove-6b-50d"


def glove_matrix(cfg: BenchConfig) -> np.ndarray:
    """GloVe rows for a stand-in vocabulary of the `cfg.vocab_size - 2` most frequent GloVe words.

    The benchmark is GloVe-initialised like the reference setup; the init does not change the
    speed, but the setting is the issue's.
    """
    from trainer import word_vectors

    vocabulary = word_vectors.most_frequent(GLOVE, cfg.vocab_size - 2)
    return word_vectors.aligned_matrix(vocabulary, GLOVE).matrix


def build(variant: str, cfg: BenchConfig):
    """The Keras model of a benchmark variant at the paper-style setting."""
    from trainer import word_vectors
    from trainer.news.models import build_model, make_config

    name, overrides = VARIANTS[variant]
    sizes = {"vocab_size": cfg.vocab_size, "num_categories": cfg.num_categories,
             "num_subcategories": cfg.num_subcategories, "num_users": cfg.num_users,
             "embedding_dim": cfg.embedding_dim}
    declared = {f.name for f in dataclasses.fields(make_config(name))}
    if cfg.embedding_dim == word_vectors.SOURCES[GLOVE] and "pretrained_embeddings" in declared:
        sizes["pretrained_embeddings"] = glove_matrix(cfg)
    return build_model(name, None, **{k: v for k, v in {**sizes, **overrides}.items() if k in declared})


class _NewsSubject(Subject):
    """A news model under test: training and full inference (`Subject`), plus serving-style
    scoring from cached news vectors."""

    kinds = ("train", "full", "cached")

    def __init__(self, variant: str, cfg: BenchConfig):
        import tensorflow as tf

        model = build(variant, cfg)
        rng = np.random.default_rng(cfg.seed)
        pools = length_pools(cfg.lengths_from) if cfg.lengths_from else None
        pool = [synthetic_batch(rng, cfg, tuple(model.news_fields), pools) for _ in range(4)]
        super().__init__(variant, model, pool, cfg)

        # Serving-style scoring: clicks' and candidates' vectors come from a cache.
        num_news = 10_000
        width = int(model.encode_news({f: pool[0][0][f"cand_{f}"][:, 0] for f in model.news_fields}).shape[-1])
        vectors = tf.constant(rng.normal(size=(num_news, width)).astype("float32"))

        @tf.function(jit_compile=cfg.jit_compile)
        def cached_score(inputs, history, candidates):
            cached = lambda ids: tf.cast(tf.gather(vectors, ids), model.compute_dtype)  # noqa: E731
            user = model.user_representation(cached(history), inputs, training=False)
            return model.score(user, cached(candidates))

        self.cached_score = cached_score
        self.cached_calls = []
        for x in self.inputs:
            history = rng.integers(2, num_news, tuple(x["hist_mask"].shape))
            candidates = rng.integers(2, num_news, (cfg.batch_size, cfg.inference_candidates))
            user_inputs = {k: v for k, v in x.items() if k.startswith("hist_") or k == "user_index"}
            self.cached_calls.append((user_inputs, tf.constant(history), tf.constant(candidates)))
        self.cached_score(*self.cached_calls[0])

    def cached_step(self, i: int) -> None:
        self.cached_score(*self.cached_calls[i % len(self.cached_calls)]).numpy()


def measure(cfg: BenchConfig, progress=None) -> list[dict[str, Any]]:
    """Training and inference rates of the news variants `cfg.models` (medians over
    `cfg.windows`, windows interleaved: `bench_timing.measure`)."""
    return bench_timing.measure(cfg, _NewsSubject, progress)


def markdown(results: list[dict[str, Any]], cfg: BenchConfig) -> str:
    """The results as a Markdown table, with rates relative to the first model."""
    return bench_timing.markdown(results, {
        "full_inference_samples_per_s": "full inference samples/s",
        "cached_inference_users_per_s": f"cached scoring users/s ({cfg.inference_candidates} candidates)",
    })


def _family(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The family and models of a `bench train` call: the models name their family (news
    variants or CTR registry names); `--family` alone picks that family's default models."""
    from components.errors import UserError
    from trainer.ctr.models import MODELS as CTR_MODELS

    models = [m for arg in args.models or [] for m in arg.split(",") if m]
    known = {"news": list(VARIANTS), "ctr": list(CTR_MODELS)}
    unknown = [m for m in models if not any(m in names for names in known.values())]
    if unknown:
        raise UserError(f"--models: unknown {unknown}; known: news {', '.join(known['news'])}; "
                        f"ctr {', '.join(known['ctr'])}")
    families = {family for family, names in known.items() for m in models if m in names}
    if args.family:
        families.add(args.family)
    if len(families) > 1:
        raise UserError(f"--models/--family: {sorted(families)}; one family per run, since the families' "
                        "models train on different batches")
    return (families.pop() if families else "news"), models


def _run(args: argparse.Namespace) -> int:
    from components.errors import UserError

    family, models = _family(args)
    given = {"steps": args.steps, "embedding_dim": args.embedding_dim, "models": models or None}
    common = dict(windows=args.windows, jit_compile=args.jit_compile, mixed_precision=args.mixed_precision,
                  batch_size=args.batch_size, **{k: v for k, v in given.items() if v is not None})
    if family == "ctr":
        from pipeline import bench_ctr

        if args.lengths_from:
            raise UserError("--lengths-from reads MIND-format lengths, for news models only; the CTR "
                            "benchmark's shapes follow ml-latest-small (pipeline/bench_ctr.py)")
        cfg = bench_ctr.CTRBenchConfig(**common)
        results = bench_ctr.measure(cfg, progress=lambda line: print(line, flush=True))
        table = bench_ctr.markdown(results)
    else:
        cfg = BenchConfig(lengths_from=args.lengths_from, **common)
        results = measure(cfg, progress=lambda line: print(line, flush=True))
        table = markdown(results, cfg)
    print()
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"family": family, "config": dataclasses.asdict(cfg), "results": results}, f, indent=2)
    return 0


def add_bench_train_parser(bench_sub: argparse._SubParsersAction) -> None:
    """Adds `usermodel bench train` to the `bench` subcommand group."""
    from components.errors import positive, writable_file

    parser = bench_sub.add_parser("train", help="training/inference speed of news or CTR models on the same batches")
    parser.add_argument("--models", nargs="+",
                        help=f"comma/space-separated models of one family; news: {', '.join(VARIANTS)} "
                             "(default nrms,lstur,fum_title,fum); ctr: any CTR model (embedding_mlp, din, mfn, "
                             "mfn_no_combination, mfn_no_pretrain, ...)")
    parser.add_argument("--family", choices=("news", "ctr"),
                        help="the family's default models when --models is not given (ctr: embedding_mlp,din,mfn)")
    parser.add_argument("--steps", type=positive(int), help="optimizer steps per timed window (news 10, ctr 50)")
    parser.add_argument("--windows", type=positive(int), default=5, help="timed windows (median reported)")
    parser.add_argument("--batch-size", type=positive(int), default=32)
    parser.add_argument("--embedding-dim", type=positive(int),
                        help="news: word-embedding width (default 50, GloVe-initialised, the NRMS reference setup; "
                             "FUM's paper uses 300, randomly initialised here); ctr: width per item field (default 64)")
    parser.add_argument("--jit-compile", action="store_true", help="compile steps with XLA")
    parser.add_argument("--mixed-precision", action="store_true", help="bfloat16 compute, float32 weights")
    parser.add_argument("--lengths-from", metavar="DIR",
                        help="news: draw title/abstract lengths and history sizes from this MIND-format directory")
    parser.add_argument("--json", type=writable_file, help="also write the results here")
    parser.set_defaults(fn=_run)
