"""GloVe initialisation of the word embeddings (trainer/word_vectors.py)."""

from __future__ import annotations

import numpy as np
import pytest

from components.errors import UserError
from pipeline.configs import load_config
from trainer import loop, word_vectors
from trainer.news.models import build_model


def test_rows_follow_the_vocabulary_ids():
    vocabulary = ["the", "news", "qqzzxxq", "president"]
    aligned = word_vectors.aligned_matrix(vocabulary, "glove-6b-50d", seed=1)
    index, glove = word_vectors.load("glove-6b-50d")
    m = aligned.matrix
    assert m.shape == (len(vocabulary) + 2, 50) and m.dtype == np.float32
    np.testing.assert_array_equal(m[0], 0.0)  # padding
    np.testing.assert_allclose(m[1], glove.mean(axis=0), rtol=1e-5)  # unknown word
    for i, word in enumerate(vocabulary):
        if word in index:
            np.testing.assert_array_equal(m[i + 2], glove[index[word]])
    assert (aligned.found, aligned.total) == (3, 4)
    assert 0 < np.abs(m[4]).max() < np.abs(glove).max()  # the unknown word: small, random
    with pytest.raises(ValueError, match="unknown source"):
        word_vectors.aligned_matrix(vocabulary, "word2vec")


def test_the_trainer_builds_models_with_the_aligned_vectors():
    class _Transform:
        def vocabulary_by_name(self, name):
            assert name == "words"
            return [b"the", b"market", b"qqzzxxq"]

    cfg = loop.TrainingConfig(model="nrms", word_vectors="glove-6b-50d")
    extra = loop.pretrained_embeddings(cfg, _Transform())
    model = build_model("nrms", "tiny", vocab_size=5, embedding_dim=50, **extra)
    model.encode_news({"title": np.array([[2, 3, 0]], "int32")})
    table = model.news_encoder.embedding.embeddings.numpy()
    index, glove = word_vectors.load("glove-6b-50d")
    np.testing.assert_array_equal(table[2], glove[index["the"]])
    assert loop.pretrained_embeddings(loop.TrainingConfig(), _Transform()) == {}


def test_config_checks_source_and_width():
    config = load_config("tiny", overrides={"models": ["nrms"], "training": {"word_vectors": "glove-6b-50d"},
                                            "model_configs": {"nrms": {"embedding_dim": 50}}})
    assert config.training.word_vectors == "glove-6b-50d"
    with pytest.raises(UserError, match=r"model_configs.nrms.embedding_dim: 32 .*50-d"):
        load_config("tiny", overrides={"models": ["nrms"], "training": {"word_vectors": "glove-6b-50d"}})
    with pytest.raises(UserError, match="training.word_vectors"):
        load_config("tiny", overrides={"training": {"word_vectors": "fasttext"}})
