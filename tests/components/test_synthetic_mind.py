"""Tests of the synthetic MIND generator: format, determinism, planted structure.

The files are parsed here with small independent parsers (not the project's), so a format slip
in the generator cannot hide behind the same slip in a shared parser.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import filecmp
import json
import pathlib
import re

import numpy as np
import pytest

from components.ingest import synthetic
from components.ingest.synthetic import mind as synthetic_mind

MIND_FILES = ("news.tsv", "behaviors.tsv", "entity_embedding.vec")
ENTITY_KEYS = ["Label", "Type", "WikidataId", "Confidence", "OccurrenceOffsets", "SurfaceForms"]
TIME_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{2}):(\d{2}) (AM|PM)$")
WORD_RE = re.compile(r"[a-z]+")


# ----------------------------------------------------------------------------- helpers


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by pairwise comparison (ties count one half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def mean_impression_auc(impressions: list[dict], score_fn) -> float:
    """MIND's metric: AUC per impression with both labels, averaged."""
    values = []
    for imp in impressions:
        labels = np.array(imp["labels"])
        if 0 < labels.sum() < len(labels):
            values.append(auc(np.asarray(score_fn(imp), dtype=float), labels))
    return float(np.mean(values))


def parse_news(path: pathlib.Path) -> dict[str, dict]:
    news = {}
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
        fields = line.split("\t")
        assert len(fields) == 8, line
        nid, category, subcategory, title, abstract, url, title_ents, abstract_ents = fields
        assert re.fullmatch(r"N\d+", nid) and nid not in news
        assert category and subcategory.startswith(category + "_")
        assert title and abstract.endswith(".") and url.startswith("https://")
        for text, raw in ((title, title_ents), (abstract, abstract_ents)):
            entities = json.loads(raw)
            assert isinstance(entities, list)
            for entity in entities:
                assert list(entity) == ENTITY_KEYS
                assert re.fullmatch(r"Q\d+", entity["WikidataId"])
                assert 0.0 < entity["Confidence"] <= 1.0
                for offset, surface in zip(entity["OccurrenceOffsets"], entity["SurfaceForms"]):
                    assert text[offset : offset + len(surface)] == surface
        news[nid] = dict(
            category=category,
            subcategory=subcategory,
            words=set(WORD_RE.findall(title)),
            entities=[e["WikidataId"] for e in json.loads(title_ents) + json.loads(abstract_ents)],
        )
    return news


def parse_time(text: str) -> datetime.datetime:
    assert TIME_RE.match(text), text
    return datetime.datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p")


def parse_behaviors(path: pathlib.Path) -> list[dict]:
    impressions = []
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
        fields = line.split("\t")
        assert len(fields) == 5, line
        imp_id, user, time, history, candidates = fields
        assert re.fullmatch(r"U\d+", user)
        history_ids = history.split(" ") if history else []
        assert all(re.fullmatch(r"N\d+", h) for h in history_ids)
        tokens = [re.fullmatch(r"(N\d+)-([01])", t) for t in candidates.split(" ")]
        assert all(tokens), candidates
        impressions.append(
            dict(
                id=int(imp_id),
                user=user,
                time=parse_time(time),
                history=history_ids,
                candidates=[t.group(1) for t in tokens],
                labels=[int(t.group(2)) for t in tokens],
            )
        )
    return impressions


def parse_vectors(path: pathlib.Path) -> dict[str, np.ndarray]:
    vectors = {}
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
        qid, *values = line.rstrip("\t").split("\t")
        assert re.fullmatch(r"Q\d+", qid) and len(values) == 100
        vectors[qid] = np.array([float(v) for v in values])
    return vectors


@pytest.fixture(scope="module")
def tiny_config() -> synthetic.SyntheticMindConfig:
    return synthetic.SyntheticMindConfig.preset("tiny")


@pytest.fixture(scope="module")
def tiny_mind(tmp_path_factory, tiny_config):
    out = tmp_path_factory.mktemp("mind")
    generated = synthetic.generate_mind(out, tiny_config)
    return dict(
        generated=generated,
        news=parse_news(out / "news.tsv"),
        impressions=parse_behaviors(out / "behaviors.tsv"),
        vectors=parse_vectors(out / "entity_embedding.vec"),
    )


# ------------------------------------------------------------------------ MIND: config


def test_presets_and_invalid_names():
    tiny = synthetic.SyntheticMindConfig.preset("tiny")
    assert (tiny.num_users, tiny.num_news, tiny.num_impressions) == (200, 600, 2_000)
    assert synthetic.SyntheticMindConfig.preset("demo") == synthetic.SyntheticMindConfig()
    for name in ("small", "large"):
        assert synthetic.SyntheticMindConfig.preset(name).num_impressions > 100_000
    with pytest.raises(ValueError, match="tiny, demo, small, large"):
        synthetic.SyntheticMindConfig.preset("huge")


def test_config_validation_and_list_ranges():
    config = synthetic.SyntheticMindConfig(history_length=[3, 9])  # as loaded from JSON
    assert config.history_length == (3, 9)
    with pytest.raises(ValueError, match="candidates_per_impression"):
        synthetic.SyntheticMindConfig(candidates_per_impression=(0, 5))
    with pytest.raises(ValueError, match="num_news"):
        synthetic.SyntheticMindConfig(num_news=5, num_topics=12)


# ------------------------------------------------------------------------ MIND: files


def test_mind_determinism(tmp_path, tiny_config):
    first = synthetic.generate_mind(tmp_path / "a", tiny_config)
    synthetic.generate_mind(tmp_path / "b", tiny_config)
    synthetic.generate_mind(tmp_path / "c", dataclasses.replace(tiny_config, seed=1))
    match, mismatch, errors = filecmp.cmpfiles(
        tmp_path / "a", tmp_path / "b", MIND_FILES, shallow=False
    )
    assert sorted(match) == sorted(MIND_FILES) and not mismatch and not errors
    _, mismatch, _ = filecmp.cmpfiles(tmp_path / "a", tmp_path / "c", MIND_FILES, shallow=False)
    assert sorted(mismatch) == sorted(MIND_FILES)
    assert first.news_path == tmp_path / "a" / "news.tsv"


def test_mind_sizes_match_config(tiny_mind, tiny_config):
    generated, news = tiny_mind["generated"], tiny_mind["news"]
    impressions = tiny_mind["impressions"]
    assert len(news) == generated.num_news == tiny_config.num_news
    assert len(impressions) == generated.num_impressions == tiny_config.num_impressions
    users = {imp["user"] for imp in impressions}
    assert len(users) == generated.num_users <= tiny_config.num_users
    assert generated.num_candidates == sum(len(imp["labels"]) for imp in impressions)
    assert generated.num_clicks == sum(sum(imp["labels"]) for imp in impressions)
    assert len(tiny_mind["vectors"]) == generated.num_entities
    low, high = tiny_config.candidates_per_impression
    for imp in impressions:
        assert low <= len(imp["candidates"]) <= high
        assert len(set(imp["candidates"])) == len(imp["candidates"])
        assert sum(imp["labels"]) >= 1
        assert tiny_config.history_length[0] <= len(imp["history"])
        assert len(imp["history"]) <= tiny_config.history_length[1]
    # No unknown ids by default; every entity has a vector.
    ids = {n for imp in impressions for n in imp["history"] + imp["candidates"]}
    assert ids <= set(news)
    entities = {q for article in news.values() for q in article["entities"]}
    assert entities <= set(tiny_mind["vectors"])


def test_mind_time_order_and_last_day_split(tiny_mind, tiny_config):
    impressions = tiny_mind["impressions"]
    assert [imp["id"] for imp in impressions] == list(range(1, len(impressions) + 1))
    times = [imp["time"] for imp in impressions]
    assert times == sorted(times)
    days = collections.Counter(t.date() for t in times)
    start = datetime.date.fromisoformat(tiny_config.start_date)
    assert sorted(days) == [start + datetime.timedelta(days=i) for i in range(7)]
    eval_count = days[max(days)]
    assert eval_count >= 150 and 0.08 <= eval_count / len(impressions) <= 0.25
    # Some clicks land outside slot 0, and the eval day has users unseen in train.
    assert len({imp["labels"].index(1) for imp in impressions}) > 5
    train_users = {imp["user"] for imp in impressions if imp["time"].date() < max(days)}
    eval_users = {imp["user"] for imp in impressions if imp["time"].date() == max(days)}
    assert eval_users & train_users and eval_users - train_users


def test_time_format_has_no_zero_padding():
    dates = ["11/9/2019"]
    seconds = np.array([0, 5 * 3600 + 65, 12 * 3600, 23 * 3600 + 3599])
    assert synthetic_mind._format_times(seconds, dates) == [
        "11/9/2019 12:00:00 AM",
        "11/9/2019 5:01:05 AM",
        "11/9/2019 12:00:00 PM",
        "11/9/2019 11:59:59 PM",
    ]


def test_entity_vectors_cluster_by_topic(tiny_mind, tiny_config):
    world = synthetic.MindWorld.build(tiny_config)
    vectors = np.stack([tiny_mind["vectors"][q] for q in world.entity_wikidata_ids])
    topic = np.repeat(np.arange(tiny_config.num_topics), tiny_config.entities_per_topic)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    same = topic[:, None] == topic[None, :]
    assert similarity[same & ~np.eye(len(topic), dtype=bool)].mean() > 0.5
    assert abs(similarity[~same].mean()) < 0.2


def test_missing_news_fraction_makes_unknown_ids(tmp_path, tiny_config):
    config = dataclasses.replace(tiny_config, missing_news_fraction=0.1)
    generated = synthetic.generate_mind(tmp_path, config)
    news = parse_news(generated.news_path)
    assert len(news) == config.num_news and generated.num_missing_news == 67
    impressions = parse_behaviors(generated.behaviors_path)
    ids = [n for imp in impressions for n in imp["history"] + imp["candidates"]]
    unknown = np.mean([n not in news for n in ids])
    assert 0.05 < unknown < 0.15
    # The oracle still scores withheld articles.
    missing = next(n for n in ids if n not in news)
    assert 0.0 < synthetic.oracle_scores(config, ["U1"], [missing])[0] < 1.0


# ---------------------------------------------------------------- MIND: planted structure


def oracle(config, impressions):
    """Scores of every impression's candidates, from one batched ``oracle_scores`` call."""
    users = [imp["user"] for imp in impressions for _ in imp["candidates"]]
    candidates = [c for imp in impressions for c in imp["candidates"]]
    scores = synthetic.oracle_scores(config, users, candidates)
    by_id, start = {}, 0
    for imp in impressions:
        by_id[imp["id"]] = scores[start : start + len(imp["candidates"])]
        start += len(imp["candidates"])
    return lambda imp: by_id[imp["id"]]


def word_overlap(news):
    """Baseline: share of a candidate's title words that occur in the history's titles."""

    def score(imp):
        seen = set().union(*(news[h]["words"] for h in imp["history"]))
        return [len(news[c]["words"] & seen) / len(news[c]["words"]) for c in imp["candidates"]]

    return score


def category_frequency(news):
    """Category-level baseline: how often the candidate's category occurs in the history."""

    def score(imp):
        counts = collections.Counter(news[h]["category"] for h in imp["history"])
        return [counts[news[c]["category"]] / len(imp["history"]) for c in imp["candidates"]]

    return score


def test_planted_signal_is_learnable(tiny_mind, tiny_config):
    impressions, news = tiny_mind["impressions"], tiny_mind["news"]
    oracle_auc = mean_impression_auc(impressions, oracle(tiny_config, impressions))
    no_words = dataclasses.replace(tiny_config, word_weight=0.0)  # same world, no word term
    no_words_auc = mean_impression_auc(impressions, oracle(no_words, impressions))
    overlap_auc = mean_impression_auc(impressions, word_overlap(news))
    category_auc = mean_impression_auc(impressions, category_frequency(news))
    print(
        f"AUC oracle={oracle_auc:.3f} oracle-without-words={no_words_auc:.3f} "
        f"word-overlap={overlap_auc:.3f} category={category_auc:.3f}"
    )
    assert oracle_auc >= 0.8
    assert overlap_auc >= 0.65
    # Fine-grained (sub-category, word) preferences leave headroom above category level.
    assert oracle_auc - category_auc >= 0.04
    assert oracle_auc - no_words_auc >= 0.015


def test_histories_follow_user_interests(tiny_mind, tiny_config):
    world = synthetic.MindWorld.build(tiny_config)
    on_topic = []
    for imp in tiny_mind["impressions"][:300]:
        user = int(imp["user"][1:]) - 1
        topics = world.user_topics[user]
        on_topic += [world.article_topic[int(h[1:]) - 1] in topics for h in imp["history"]]
    assert np.mean(on_topic) > 0.9


def test_oracle_follows_the_documented_click_model(tiny_config):
    world = synthetic.MindWorld.build(tiny_config)
    rng = np.random.default_rng(0)
    users = rng.integers(world.num_users, size=500)
    articles = world.sample_articles(rng, users, match_share=0.7)
    scores = synthetic.oracle_scores(
        tiny_config, [f"U{u + 1}" for u in users], [f"N{a + 1}" for a in articles]
    )
    c = tiny_config
    for u, a, score in zip(users, articles, scores):
        preferred = set(world.user_words[u].tolist()) - {-1}
        logit = (
            c.click_bias
            + c.topic_weight * (world.article_topic[a] in world.user_topics[u])
            + c.subcategory_weight * (world.article_subcategory[a] in world.user_subcategories[u])
            + c.word_weight * len(preferred & set(world.article_title_words[a].tolist()))
        )
        assert score == pytest.approx(1.0 / (1.0 + np.exp(-logit)))


def test_several_categories_per_topic(tmp_path, tiny_config):
    config = dataclasses.replace(tiny_config, categories_per_topic=2, num_impressions=50)
    news = parse_news(synthetic.generate_mind(tmp_path, config).news_path)
    assert len({n["category"] for n in news.values()}) == 24
    assert len({n["subcategory"] for n in news.values()}) == 48


def test_oracle_scores_rejects_unknown_ids(tiny_config):
    with pytest.raises(KeyError):
        synthetic.oracle_scores(tiny_config, ["U1"], ["N999999"])
    with pytest.raises(KeyError):
        synthetic.oracle_scores(tiny_config, ["X1"], ["N1"])
