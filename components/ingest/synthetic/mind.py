"""Synthetic MIND data (``generate_mind``): news.tsv, behaviors.tsv, entity_embedding.vec.

The files follow the MIND release's format byte for byte, so every parser, ExampleGen and
pipeline runs on them unchanged; the same config (seed included) always gives byte-identical
files. The package docstring (``components.ingest.synthetic``) says why they exist.

The planted structure that tests and model-learning tests rely on:

* **Topics.** ``num_topics`` latent topics. Each owns ``categories_per_topic`` categories,
  ``subcategories_per_topic`` sub-categories (each under one of the topic's categories, named
  ``<category>_<word>``), ``topic_vocab_size`` title words, ``entities_per_topic`` entities
  whose 100-d vectors cluster around a topic centroid, and each sub-category owns
  ``subcategory_vocab_size`` words of its own. ``filler_vocab_size`` generic words are shared.
  Words are made-up lowercase consonant-vowel words (``kabeto``), entity labels two capitalized
  ones (``Muradi Tesoka``), so no tokenizer splits them and no word carries outside meaning.
* **Articles.** Each belongs to one topic (topics are balanced) and one of its sub-categories
  (uniform). A title has ``title_length`` words, each a topic word with probability
  ``text_topic_share``, a word of its sub-category with ``text_subcategory_share``, otherwise a
  filler word; with probability ``entity_mention_prob`` one entity of the topic is inserted
  between two words and listed in ``title_entities`` with its character offset. Abstracts are
  drawn the same way (``abstract_length`` words, own entity mention, a final period).
* **Users.** Each has ``interests_per_user`` distinct interest topics, one preferred
  sub-category inside each, and ``preferred_words_per_user`` fine-grained preferred words drawn
  (half and half) from the vocabularies of those topics and of those sub-categories.
* **Click model.** For user u and article a::

      logit(u, a) = click_bias + topic_weight       * [topic(a) in topics(u)]
                               + subcategory_weight * [subcategory(a) in subcategories(u)]
                               + word_weight        * |preferred_words(u) & title_words(a)|

  ``oracle_scores`` returns sigmoid(logit): the best score any model can learn. Labels are
  drawn from sigmoid(logit + e), e ~ N(0, noise_std^2) per candidate, which no model sees.
  Topic match dominates; the sub-category and word terms decide among articles of the user's
  topics, so word-level (fine-grained) user models are rewarded over category-level ones.
* **History.** One per user, shared by all their impressions as in MIND: ``history_length``
  distinct articles picked without replacement, with weights exp(logit), from 2 x max-length
  proposals drawn from the user's topics with probability ``history_match_share`` and from all
  articles otherwise. Histories therefore reveal the topics, sub-categories and words.
* **Impressions.** The user is drawn by activity (log-normal weights, ``user_activity_sigma``,
  so some users appear once, some only on the last day). ``candidates_per_impression``
  candidates, each from the user's topics with probability ``candidate_match_share`` else from
  all articles, never twice in one impression, labels as above; an impression that drew no
  click gets one (picked with probability proportional to its click probability), because
  MIND impressions always have a click. Click slots are random.
* **Time.** Impression times are uniform over ``num_days`` days from ``start_date`` (00:00);
  impression ids 1..n follow time order. The last day is the eval split (~1/num_days).
* **Unknown ids.** A share ``missing_news_fraction`` of all articles is withheld from news.tsv
  but still appears in histories and impressions (and keeps its topic), so about that share of
  history and candidate ids have no news row, as in the real data.

Formats (as in the MIND release): news.tsv ``news_id, category, subcategory, title, abstract,
url, title_entities, abstract_entities`` (entities: JSON lists of objects with keys Label,
Type, WikidataId, Confidence, OccurrenceOffsets, SurfaceForms); behaviors.tsv ``impression_id,
user_id, time (11/9/2019 9:05:58 AM), history (space-separated ids), impressions (N12-1 N34-0)``;
entity_embedding.vec ``Q<id>`` then 100 tab-separated floats and, as in the release, a trailing
tab. Ids: ``N<k>``, ``U<k>`` (k = latent index + 1), ``Q<random>``.

Scale: articles and users are held as NumPy arrays (memory grows with users and news, not
impressions); impressions are generated, vectorised, in fixed-size chunks and streamed to disk.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import pathlib
from typing import Any, Iterator, Sequence, TextIO

import numpy as np

from components.ingest.synthetic.common import (
    _BEHAVIOR_STREAM,
    _SECONDS_PER_DAY,
    _TEXT_STREAM,
    _WORLD_STREAM,
    _check_range,
    _check_share,
    _make_words,
    _preset,
    _rng,
)

_ENTITY_TYPES = ("P", "O", "G", "L", "U")
_PAD = -1  # pads rows of word ids, topics and sub-categories
_IMPRESSION_CHUNK = 32_768  # impressions per vectorised chunk (bounds memory, not output)
_USER_CHUNK = 4_096  # users per vectorised history chunk
_NEWS_CHUNK = 16_384  # articles per rendering chunk
_DEDUPE_ROUNDS = 8  # resampling rounds for repeated candidates before the rest are dropped


# ----------------------------------------------------------------------------- MIND config


@dataclasses.dataclass
class SyntheticMindConfig:
    """Sizes and signal strengths of a synthetic MIND data set.

    The defaults are the ``demo`` preset; the module docstring describes what each knob plants.
    Range fields are inclusive ``(low, high)`` pairs (lists from YAML/JSON are accepted).
    """

    seed: int = 0
    """Seed of every random draw: the same config gives byte-identical files."""
    num_users: int = 2_000
    """Users of the latent world; those never drawn for an impression are absent from the files."""
    num_news: int = 3_000
    """Rows of news.tsv (withheld articles, see ``missing_news_fraction``, come on top)."""
    num_impressions: int = 20_000
    """Rows of behaviors.tsv."""
    num_days: int = 7
    """Days the impressions span; MIND-small has 6 days of train and 1 day of eval."""
    start_date: str = "2019-11-09"
    """ISO date of the first day (MIND-small's train period starts on 2019-11-09)."""
    num_topics: int = 12
    """Latent interest topics."""
    categories_per_topic: int = 1
    """Categories each topic owns (the category id is then a coarse topic signal)."""
    subcategories_per_topic: int = 4
    """Sub-categories each topic owns, spread over its categories."""
    interests_per_user: tuple[int, int] = (1, 3)
    """Range of a user's number of interest topics."""
    preferred_words_per_user: int = 8
    """Fine-grained preferred words per user (duplicates collapse, so at most this many)."""
    history_length: tuple[int, int] = (5, 50)
    """Range of a user's history length."""
    candidates_per_impression: tuple[int, int] = (5, 30)
    """Range of candidates per impression (fewer only if repeats cannot be resampled away)."""
    title_length: tuple[int, int] = (8, 14)
    """Range of title words, not counting an inserted entity mention."""
    abstract_length: tuple[int, int] = (15, 40)
    """Range of abstract words, not counting an inserted entity mention."""
    topic_vocab_size: int = 40
    """Title words owned by each topic."""
    subcategory_vocab_size: int = 12
    """Title words owned by each sub-category."""
    filler_vocab_size: int = 300
    """Generic words shared by all topics (noise for word-level models)."""
    entities_per_topic: int = 10
    """Entities owned by each topic."""
    entity_dim: int = 100
    """Width of the entity vectors (MIND's TransE vectors have 100)."""
    text_topic_share: float = 0.5
    """Share of title and abstract words drawn from the article's topic words."""
    text_subcategory_share: float = 0.25
    """Share drawn from the article's sub-category words; the rest are filler."""
    entity_mention_prob: float = 0.5
    """Probability that a title (and, independently, an abstract) mentions a topic entity."""
    user_activity_sigma: float = 1.0
    """Log-normal sigma of user activity: 0 draws users uniformly, larger skews more."""
    history_match_share: float = 0.8
    """Share of history proposals drawn from the user's topics."""
    candidate_match_share: float = 0.3
    """Share of candidates drawn from the user's topics (the rest from all articles)."""
    click_bias: float = -5.0
    """Logit of a click on an article outside the user's interests."""
    topic_weight: float = 3.0
    """Logit added when the article's topic is one of the user's."""
    subcategory_weight: float = 1.0
    """Logit added when the article's sub-category is one the user prefers."""
    word_weight: float = 1.5
    """Logit added per preferred word of the user in the article's title."""
    noise_std: float = 0.5
    """Std of the per-candidate logit noise no model can see."""
    missing_news_fraction: float = 0.0
    """Share of all articles withheld from news.tsv while still used in behaviors.tsv."""

    def __post_init__(self) -> None:
        for name in ("interests_per_user", "history_length", "candidates_per_impression",
                     "title_length", "abstract_length"):  # fmt: skip
            setattr(self, name, tuple(getattr(self, name)))
        _check_range("interests_per_user", self.interests_per_user, 1)
        _check_range("history_length", self.history_length, 0)
        _check_range("candidates_per_impression", self.candidates_per_impression, 1)
        _check_range("title_length", self.title_length, 1)
        _check_range("abstract_length", self.abstract_length, 1)
        positive = ("num_users", "num_news", "num_impressions", "num_days", "num_topics",
                    "categories_per_topic", "topic_vocab_size", "subcategory_vocab_size",
                    "filler_vocab_size", "entities_per_topic", "entity_dim")  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.subcategories_per_topic < self.categories_per_topic:
            raise ValueError("subcategories_per_topic must be >= categories_per_topic")
        if self.interests_per_user[1] > self.num_topics:
            raise ValueError("interests_per_user cannot exceed num_topics")
        if self.num_news < self.num_topics:
            raise ValueError("num_news must be >= num_topics (every topic needs an article)")
        for name in ("text_topic_share", "text_subcategory_share", "entity_mention_prob",
                     "history_match_share", "candidate_match_share"):  # fmt: skip
            _check_share(name, getattr(self, name))
        if self.text_topic_share + self.text_subcategory_share > 1.0:
            raise ValueError("text_topic_share + text_subcategory_share must be <= 1")
        if not 0.0 <= self.missing_news_fraction < 1.0:
            raise ValueError("missing_news_fraction must be in [0, 1)")
        datetime.date.fromisoformat(self.start_date)

    @classmethod
    def preset(cls, name: str) -> SyntheticMindConfig:
        """Returns a named preset: ``tiny`` (unit tests), ``demo`` (default pipeline run on a
        2-core CPU), ``small`` and ``large`` (about MIND-small / MIND-large train sizes).

        Raises:
            ValueError: ``name`` is not a preset; the message lists the valid ones.
        """
        return _preset(cls, MIND_PRESETS, name)

    @property
    def num_missing_news(self) -> int:
        """Articles withheld from news.tsv so that they are ``missing_news_fraction`` of all."""
        share = self.missing_news_fraction
        return round(self.num_news * share / (1.0 - share))

    @property
    def num_subcategories(self) -> int:
        """Sub-categories over all topics."""
        return self.num_topics * self.subcategories_per_topic


MIND_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(num_users=200, num_news=600, num_impressions=2_000, history_length=(5, 30)),
    "demo": {},
    "small": dict(num_users=50_000, num_news=51_282, num_impressions=156_965, num_topics=18),
    "large": dict(
        num_users=711_222, num_news=101_527, num_impressions=2_232_748, num_topics=18,
        subcategories_per_topic=8,
    ),
}
"""Preset name -> overrides of the ``SyntheticMindConfig`` defaults (``demo`` is the default)."""


# ------------------------------------------------------------------------------ MIND world


@dataclasses.dataclass(frozen=True, eq=False)
class MindWorld:
    """The latent state behind a synthetic MIND data set, rebuilt from the config alone.

    ``generate_mind`` renders it to files; tests use it as the ground truth (``oracle_scores``).
    Article index k is news id ``N{k+1}``, user index u is ``U{u+1}``.
    """

    config: SyntheticMindConfig
    words: list[str]
    """Vocabulary of title/abstract words: topic words, then sub-category words, then filler."""
    category_names: list[str]
    subcategory_names: list[str]
    subcategory_category: np.ndarray
    """[S] category index of each sub-category."""
    entity_wikidata_ids: list[str]
    entity_labels: list[str]
    entity_types: list[str]
    entity_vectors: np.ndarray
    """[E, entity_dim] float32, clustered by topic."""
    article_topic: np.ndarray
    article_subcategory: np.ndarray
    article_title_words: np.ndarray
    """[A, max title length] word ids, padded with -1."""
    article_title_bits: np.ndarray
    """[A, ceil(vocabulary / 8)] uint8: the title's words as a bitset (bit w % 8 of byte w // 8),
    so the click model tests word membership with one gather instead of a title scan."""
    article_listed: np.ndarray
    """[A] bool: whether the article has a row in news.tsv."""
    topic_articles: np.ndarray
    """Article indices sorted by topic; topic t's are ``[topic_start[t], + topic_count[t])``."""
    topic_start: np.ndarray
    topic_count: np.ndarray
    user_interest_count: np.ndarray
    user_topics: np.ndarray
    """[U, max interests] topic ids, padded with -1."""
    user_subcategories: np.ndarray
    """[U, max interests] preferred sub-category per interest, padded with -1."""
    user_words: np.ndarray
    """[U, preferred_words_per_user] preferred word ids, padded with -1."""
    user_activity: np.ndarray
    """[U] probability that an impression belongs to the user."""

    @property
    def num_articles(self) -> int:
        return len(self.article_topic)

    @property
    def num_users(self) -> int:
        return len(self.user_topics)

    @classmethod
    def build(cls, config: SyntheticMindConfig) -> MindWorld:
        """Draws topics, vocabularies, entities, articles and users from ``config.seed``."""
        c, rng = config, _rng(config.seed, _WORLD_STREAM)
        num_categories = c.num_topics * c.categories_per_topic
        num_entities = c.num_topics * c.entities_per_topic
        vocab = _vocab_bases(c)[-1] + c.filler_vocab_size
        names = _make_words(rng, vocab + num_categories + c.num_subcategories + 2 * num_entities)
        words, names = names[:vocab], names[vocab:]
        categories, names = names[:num_categories], names[num_categories:]
        # Sub-category j of topic t lies under the topic's category j mod categories_per_topic.
        sub_topic, sub_j = np.divmod(np.arange(c.num_subcategories), c.subcategories_per_topic)
        sub_category = sub_topic * c.categories_per_topic + sub_j % c.categories_per_topic
        subcategories = [f"{categories[k]}_{w}" for k, w in zip(sub_category.tolist(), names)]
        names = names[c.num_subcategories :]
        labels = [f"{a.capitalize()} {b.capitalize()}" for a, b in zip(names[0::2], names[1::2])]
        qids = rng.choice(99_000_000, size=num_entities, replace=False) + 1_000_000
        centroids = rng.normal(0.0, 0.1, size=(c.num_topics, c.entity_dim))
        vectors = np.repeat(centroids, c.entities_per_topic, axis=0)
        vectors += rng.normal(0.0, 0.03, size=vectors.shape)

        num_articles = c.num_news + c.num_missing_news
        topic = rng.permutation(np.arange(num_articles) % c.num_topics)
        subcategory = topic * c.subcategories_per_topic + rng.integers(
            c.subcategories_per_topic, size=num_articles
        )
        title_length = rng.integers(c.title_length[0], c.title_length[1] + 1, size=num_articles)
        title_words = _sample_text_words(rng, c, topic, subcategory, title_length)
        listed = np.ones(num_articles, dtype=bool)
        listed[rng.choice(num_articles, size=c.num_missing_news, replace=False)] = False
        topic_count = np.bincount(topic, minlength=c.num_topics)
        return cls(
            config=c,
            words=words,
            category_names=categories,
            subcategory_names=subcategories,
            subcategory_category=sub_category,
            entity_wikidata_ids=[f"Q{q}" for q in qids.tolist()],
            entity_labels=labels,
            entity_types=[str(t) for t in rng.choice(_ENTITY_TYPES, size=num_entities)],
            entity_vectors=vectors.astype(np.float32),
            article_topic=topic,
            article_subcategory=subcategory,
            article_title_words=title_words,
            article_title_bits=_word_bits(title_words, len(words)),
            article_listed=listed,
            topic_articles=np.argsort(topic, kind="stable"),
            topic_start=np.cumsum(topic_count) - topic_count,
            topic_count=topic_count,
            **_draw_users(rng, c),
        )

    def logits(self, users: np.ndarray, articles: np.ndarray) -> np.ndarray:
        """The click model's noise-free logit for each (user index, article index) pair."""
        c = self.config
        topic_match = (self.user_topics[users] == self.article_topic[articles, None]).any(axis=1)
        sub = self.article_subcategory[articles, None]
        sub_match = (self.user_subcategories[users] == sub).any(axis=1)
        # Preferred words are words of the user's topics and sub-categories, so only pairs
        # whose topics match can hit one.
        hits = np.zeros(len(users))
        pairs = np.flatnonzero(topic_match)
        preferred = self.user_words[users[pairs]]
        word = np.maximum(preferred, 0)
        bit = (self.article_title_bits[articles[pairs, None], word >> 3] >> (word & 7)) & 1
        hits[pairs] = (bit * (preferred != _PAD)).sum(axis=1)
        return (
            c.click_bias
            + c.topic_weight * topic_match
            + c.subcategory_weight * sub_match
            + c.word_weight * hits
        )

    def click_probability(self, users: np.ndarray, articles: np.ndarray) -> np.ndarray:
        """sigmoid(logits): the noise-free click probability of each pair."""
        return 1.0 / (1.0 + np.exp(-self.logits(users, articles)))

    def sample_articles(
        self, rng: np.random.Generator, users: np.ndarray, match_share: float
    ) -> np.ndarray:
        """One article per user: from one of the user's topics with probability
        ``match_share`` (topic and article uniform), else uniform over all articles."""
        n = len(users)
        slot = (rng.random(n) * self.user_interest_count[users]).astype(np.int64)
        topic = self.user_topics[users, slot]
        offset = (rng.random(n) * self.topic_count[topic]).astype(np.int64)
        matching = self.topic_articles[self.topic_start[topic] + offset]
        anywhere = rng.integers(self.num_articles, size=n)
        return np.where(rng.random(n) < match_share, matching, anywhere)


def _vocab_bases(c: SyntheticMindConfig) -> tuple[int, int]:
    """Offsets of the sub-category words and of the filler words in the vocabulary."""
    sub_base = c.num_topics * c.topic_vocab_size
    return sub_base, sub_base + c.num_subcategories * c.subcategory_vocab_size


def _sample_text_words(
    rng: np.random.Generator,
    c: SyntheticMindConfig,
    topic: np.ndarray,
    subcategory: np.ndarray,
    lengths: np.ndarray,
) -> np.ndarray:
    """Word ids [n, max length], padded with -1: topic, sub-category or filler words."""
    n, width = len(topic), int(lengths.max(initial=0))
    sub_base, filler_base = _vocab_bases(c)
    kind = rng.random((n, width))
    topic_words = topic[:, None] * c.topic_vocab_size + rng.integers(
        c.topic_vocab_size, size=(n, width)
    )
    sub_words = sub_base + subcategory[:, None] * c.subcategory_vocab_size + rng.integers(
        c.subcategory_vocab_size, size=(n, width)
    )
    filler = filler_base + rng.integers(c.filler_vocab_size, size=(n, width))
    words = np.where(
        kind < c.text_topic_share,
        topic_words,
        np.where(kind < c.text_topic_share + c.text_subcategory_share, sub_words, filler),
    )
    words[np.arange(width) >= lengths[:, None]] = _PAD
    return words.astype(np.int32)


def _word_bits(words: np.ndarray, vocab_size: int) -> np.ndarray:
    """Packs -1-padded rows of word ids into [rows, ceil(vocab_size / 8)] uint8 bitsets."""
    bits = np.zeros((len(words), (vocab_size + 7) // 8), dtype=np.uint8)
    rows, cols = np.nonzero(words != _PAD)
    word = words[rows, cols]
    np.bitwise_or.at(bits, (rows, word >> 3), (1 << (word & 7)).astype(np.uint8))
    return bits


def _draw_users(rng: np.random.Generator, c: SyntheticMindConfig) -> dict[str, np.ndarray]:
    """Interest topics, preferred sub-categories and words, and activity of every user."""
    n, (low, high) = c.num_users, c.interests_per_user
    count = rng.integers(low, high + 1, size=n)
    topics = np.argsort(rng.random((n, c.num_topics)), axis=1)[:, :high]  # distinct per user
    subs = topics * c.subcategories_per_topic + rng.integers(
        c.subcategories_per_topic, size=(n, high)
    )
    valid = np.arange(high) < count[:, None]
    k = c.preferred_words_per_user
    slot = (rng.random((n, k)) * count[:, None]).astype(np.int64)
    sub_base, _ = _vocab_bases(c)
    from_topic = np.take_along_axis(topics, slot, axis=1) * c.topic_vocab_size + rng.integers(
        c.topic_vocab_size, size=(n, k)
    )
    from_sub = sub_base + np.take_along_axis(subs, slot, axis=1) * c.subcategory_vocab_size
    from_sub += rng.integers(c.subcategory_vocab_size, size=(n, k))
    words = np.sort(np.where(rng.random((n, k)) < 0.5, from_topic, from_sub), axis=1)
    words[:, 1:][words[:, 1:] == words[:, :-1]] = _PAD
    activity = rng.lognormal(0.0, c.user_activity_sigma, size=n)
    return dict(
        user_interest_count=count,
        user_topics=np.where(valid, topics, -1),
        user_subcategories=np.where(valid, subs, -1),
        user_words=words,
        user_activity=activity / activity.sum(),
    )


def _parse_ids(ids: Sequence[str], prefix: str, count: int) -> np.ndarray:
    try:
        index = np.array([int(i[len(prefix) :]) - 1 for i in ids if i[: len(prefix)] == prefix])
    except ValueError as error:
        raise KeyError(f"not a synthetic {prefix}-id: {error}") from None
    if len(index) != len(ids) or ((index < 0) | (index >= count)).any():
        raise KeyError(f"ids outside the synthetic world's {count} {prefix}-ids")
    return index.astype(np.int64)


def oracle_scores(
    config: SyntheticMindConfig, user_ids: Sequence[str], news_ids: Sequence[str]
) -> np.ndarray:
    """Noise-free click probability of each (user id, news id) pair under the planted model.

    This is the best score any model can learn from the generated files (labels add noise and
    Bernoulli draws on top); tests compare it with labels and models with it. Withheld
    articles (not in news.tsv) are scored too. The world is rebuilt on every call (tens of
    milliseconds for ``tiny``): pass all pairs at once, or keep a ``MindWorld`` and call
    ``click_probability`` with indices.

    Args:
        config: the config the files were generated with.
        user_ids: ``U…`` ids, one per pair.
        news_ids: ``N…`` ids, one per pair.

    Raises:
        KeyError: an id is not one of this world's.
    """
    world = MindWorld.build(config)
    users = _parse_ids(user_ids, "U", world.num_users)
    articles = _parse_ids(news_ids, "N", world.num_articles)
    if len(users) != len(articles):
        raise ValueError("user_ids and news_ids must have the same length")
    return world.click_probability(users, articles)


# ------------------------------------------------------------------------------ MIND files


@dataclasses.dataclass(frozen=True)
class GeneratedMind:
    """Where ``generate_mind`` wrote the files, and what they hold."""

    out_dir: pathlib.Path
    news_path: pathlib.Path
    behaviors_path: pathlib.Path
    entity_embedding_path: pathlib.Path
    num_news: int
    """Rows of news.tsv."""
    num_missing_news: int
    """Articles used in behaviors.tsv without a news.tsv row."""
    num_users: int
    """Distinct users in behaviors.tsv."""
    num_impressions: int
    num_candidates: int
    num_clicks: int
    num_entities: int
    """Rows of entity_embedding.vec."""


def generate_mind(out_dir: str | os.PathLike, config: SyntheticMindConfig) -> GeneratedMind:
    """Writes news.tsv, behaviors.tsv and entity_embedding.vec in the MIND format.

    Args:
        out_dir: directory to write into (created if needed; files are overwritten).
        config: sizes, seed and signal strengths; the module docstring describes the structure.

    Returns:
        The paths and counts of what was written.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = MindWorld.build(config)
    paths = (out / "news.tsv", out / "behaviors.tsv", out / "entity_embedding.vec")
    with _open_text(paths[0]) as f:
        _write_news(f, world, _rng(config.seed, _TEXT_STREAM))
    with _open_text(paths[1]) as f:
        counts = _write_behaviors(f, world, _rng(config.seed, _BEHAVIOR_STREAM))
    with _open_text(paths[2]) as f:
        for qid, vector in zip(world.entity_wikidata_ids, world.entity_vectors.tolist()):
            f.write(qid + "\t" + "".join(f"{x:.6f}\t" for x in vector) + "\n")
    return GeneratedMind(
        out, *paths, num_news=config.num_news, num_missing_news=config.num_missing_news,
        num_entities=len(world.entity_wikidata_ids), **counts,
    )  # fmt: skip


def _open_text(path: pathlib.Path) -> TextIO:
    return open(path, "w", encoding="utf-8", newline="\n")


def _write_news(f: TextIO, world: MindWorld, rng: np.random.Generator) -> None:
    """Writes the listed articles, in random order as the release does, chunk by chunk."""
    order = rng.permutation(np.flatnonzero(world.article_listed))
    for start in range(0, len(order), _NEWS_CHUNK):
        f.write("".join(_news_rows(world, rng, order[start : start + _NEWS_CHUNK])))


def _news_rows(world: MindWorld, rng: np.random.Generator, articles: np.ndarray) -> list[str]:
    c, n = world.config, len(articles)
    topic, sub = world.article_topic[articles], world.article_subcategory[articles]
    abstract_length = rng.integers(c.abstract_length[0], c.abstract_length[1] + 1, size=n)
    texts = {
        "title": world.article_title_words[articles],
        "abstract": _sample_text_words(rng, c, topic, sub, abstract_length),
    }
    mentions = {}
    for field, words in texts.items():
        length = (words != _PAD).sum(axis=1)
        entity = topic * c.entities_per_topic + rng.integers(c.entities_per_topic, size=n)
        mentioned = rng.random(n) < c.entity_mention_prob
        confidence = np.where(rng.random(n) < 0.7, 1.0, np.round(rng.uniform(0.8, 1.0, n), 3))
        position = (rng.random(n) * (length + 1)).astype(np.int64)
        mentions[field] = zip(
            np.where(mentioned, entity, -1).tolist(), position.tolist(), confidence.tolist()
        )
    rows = []
    for a, title_words, abstract_words, title_mention, abstract_mention in zip(
        articles.tolist(), texts["title"].tolist(), texts["abstract"].tolist(),
        mentions["title"], mentions["abstract"],
    ):  # fmt: skip
        title, title_entities = _render(world, title_words, *title_mention)
        abstract, abstract_entities = _render(world, abstract_words, *abstract_mention)
        sub = int(world.article_subcategory[a])
        category = world.category_names[world.subcategory_category[sub]]
        url = f"https://synthetic.invalid/mind/N{a + 1}.html"
        rows.append(
            f"N{a + 1}\t{category}\t{world.subcategory_names[sub]}\t{title}\t{abstract}.\t{url}"
            f"\t{title_entities}\t{abstract_entities}\n"
        )
    return rows


def _render(
    world: MindWorld, word_ids: list[int], entity: int, position: int, confidence: float
) -> tuple[str, str]:
    """Joins words, inserting the entity's surface form at ``position``; returns the text and
    its entity list as MIND's JSON (character offsets point at the surface form)."""
    tokens = [world.words[w] for w in word_ids if w != _PAD]
    if entity < 0:
        return " ".join(tokens), "[]"
    label = world.entity_labels[entity]
    tokens.insert(position, label)
    offset = sum(len(t) + 1 for t in tokens[:position])
    record = {
        "Label": label,
        "Type": world.entity_types[entity],
        "WikidataId": world.entity_wikidata_ids[entity],
        "Confidence": confidence,
        "OccurrenceOffsets": [offset],
        "SurfaceForms": [label],
    }
    return " ".join(tokens), json.dumps([record])


def _write_behaviors(f: TextIO, world: MindWorld, rng: np.random.Generator) -> dict[str, int]:
    """Streams impressions, chunk by chunk in time order, and returns the counts."""
    c = world.config
    histories = _sample_histories(world, rng)
    # Token k*2 + label of article k: "N{k+1}-{label}".
    tokens = [f"N{k + 1}-{label}" for k in range(world.num_articles) for label in (0, 1)]
    start = datetime.date.fromisoformat(c.start_date)
    dates = [
        f"{d.month}/{d.day}/{d.year}"
        for d in (start + datetime.timedelta(days=i) for i in range(c.num_days))
    ]
    seen_users = np.zeros(world.num_users, dtype=bool)
    next_id, num_candidates, num_clicks = 1, 0, 0
    for times in _impression_times(c, rng):
        users, counts, articles, labels = _draw_impressions(world, rng, len(times))
        seen_users[users] = True
        num_candidates, num_clicks = num_candidates + len(labels), num_clicks + int(labels.sum())
        chunk_tokens = list(map(tokens.__getitem__, (articles * 2 + labels).tolist()))
        bounds = np.concatenate([[0], np.cumsum(counts)]).tolist()
        lines = [
            f"{next_id + i}\tU{u + 1}\t{when}\t{histories[u]}\t{' '.join(chunk_tokens[b0:b1])}\n"
            for i, (u, when, b0, b1) in enumerate(
                zip(users.tolist(), _format_times(times, dates), bounds[:-1], bounds[1:])
            )
        ]
        f.write("".join(lines))
        next_id += len(times)
    return dict(
        num_users=int(seen_users.sum()),
        num_impressions=next_id - 1,
        num_candidates=num_candidates,
        num_clicks=num_clicks,
    )


def _sample_histories(world: MindWorld, rng: np.random.Generator) -> list[str]:
    """Each user's history as behaviors.tsv writes it: distinct articles picked without
    replacement with weights exp(logit) (Gumbel top-k) among proposals mostly on-topic."""
    c = world.config
    low, high = c.history_length
    lengths = rng.integers(low, high + 1, size=world.num_users)
    proposals_per_user = 2 * high
    histories = []
    for start in range(0, world.num_users, _USER_CHUNK):
        users = np.arange(start, min(start + _USER_CHUNK, world.num_users))
        rows = np.repeat(users, proposals_per_user)
        proposals = world.sample_articles(rng, rows, c.history_match_share)
        keys = world.logits(rows, proposals) + rng.gumbel(size=len(rows))
        keys[_repeated(rows, proposals, world.num_articles)] = -np.inf
        keys = keys.reshape(len(users), proposals_per_user)
        rank = np.argsort(np.argsort(-keys, axis=1, kind="stable"), axis=1)
        chosen = proposals.reshape(keys.shape)[rank < lengths[users, None]] + 1
        bounds = np.concatenate([[0], np.cumsum(lengths[users])]).tolist()
        ids = [f"N{k}" for k in chosen.tolist()]
        histories += [" ".join(ids[b0:b1]) for b0, b1 in zip(bounds[:-1], bounds[1:])]
    return histories


def _repeated(groups: np.ndarray, items: np.ndarray, num_items: int) -> np.ndarray:
    """Marks every repeat of an item within its group (the first occurrence stays unmarked)."""
    key = groups.astype(np.int64) * num_items + items
    order = np.argsort(key, kind="stable")
    repeat_sorted = np.zeros(len(key), dtype=bool)
    repeat_sorted[1:] = key[order][1:] == key[order][:-1]
    repeat = np.empty(len(key), dtype=bool)
    repeat[order] = repeat_sorted
    return repeat


def _impression_times(c: SyntheticMindConfig, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Sorted impression times (seconds from the start), one chunk per equal time window."""
    windows = max(1, math.ceil(c.num_impressions / _IMPRESSION_CHUNK))
    counts = rng.multinomial(c.num_impressions, np.full(windows, 1.0 / windows))
    edges = np.arange(windows + 1) * (c.num_days * _SECONDS_PER_DAY) // windows
    for window, count in enumerate(counts.tolist()):
        yield np.sort(rng.integers(edges[window], edges[window + 1], size=count))


def _format_times(seconds: np.ndarray, dates: list[str]) -> list[str]:
    """MIND's ``11/9/2019 9:05:58 AM`` (no zero padding of month, day and hour)."""
    day, of_day = np.divmod(seconds, _SECONDS_PER_DAY)
    hour, rest = np.divmod(of_day, 3600)
    minute, second = np.divmod(rest, 60)
    return [
        f"{dates[d]} {h % 12 or 12}:{m:02d}:{s:02d} {'AM' if h < 12 else 'PM'}"
        for d, h, m, s in zip(day.tolist(), hour.tolist(), minute.tolist(), second.tolist())
    ]


def _draw_impressions(
    world: MindWorld, rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draws n impressions: users [n], candidate counts [n], and the flat candidate articles
    and labels (impression by impression)."""
    c = world.config
    users = rng.choice(world.num_users, size=n, p=world.user_activity)
    low, high = c.candidates_per_impression
    impression = np.repeat(np.arange(n), rng.integers(low, high + 1, size=n))
    owner = users[impression]
    articles = world.sample_articles(rng, owner, c.candidate_match_share)
    for _ in range(_DEDUPE_ROUNDS):
        repeat = _repeated(impression, articles, world.num_articles)
        if not repeat.any():
            break
        articles[repeat] = world.sample_articles(rng, owner[repeat], c.candidate_match_share)
    keep = ~_repeated(impression, articles, world.num_articles)
    impression, owner, articles = impression[keep], owner[keep], articles[keep]

    logits = world.logits(owner, articles)
    noisy = logits + rng.normal(0.0, c.noise_std, size=len(logits))
    labels = rng.random(len(logits)) < 1.0 / (1.0 + np.exp(-noisy))
    # Impressions without a click get one, picked with probability proportional to the click
    # probability (Gumbel-max per impression; `impression` is sorted, so segments are runs).
    counts = np.bincount(impression, minlength=n)
    clicked = np.bincount(impression, weights=labels, minlength=n) > 0
    keys = -np.log1p(np.exp(-noisy)) + rng.gumbel(size=len(logits))
    best = np.maximum.reduceat(keys, np.cumsum(counts) - counts)
    labels |= (keys == best[impression]) & ~clicked[impression]
    return users, counts, articles, labels.astype(np.int64)
