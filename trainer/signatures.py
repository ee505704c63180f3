"""The serving contract, defined once: each family's signatures with their tensor names, types
and shapes (DESIGN.md section 4, docs/serving.md).

The exporters build their endpoints from these specs, the typed client (`serving/client.py`)
sends exactly these inputs and reads these outputs, and the serving tests check exported models
against them, so a renamed input fails a test instead of a production request. Every input and
output is batch-major (first dimension B, which lets the server batch requests) and `""` is
padding in every id input.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One named tensor of a signature: dtype name and shape (`None` = any size)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    def tf_spec(self) -> Any:
        import tensorflow as tf

        return tf.TensorSpec(self.shape, tf.as_dtype(self.dtype), name=self.name)


@dataclasses.dataclass(frozen=True)
class Signature:
    """A serving signature: its name, inputs in call order, and outputs."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def tf_specs(self) -> list[Any]:
        """The inputs as `tf.TensorSpec`s, for `ExportArchive.add_endpoint`."""
        return [t.tf_spec() for t in self.inputs]


def _ids(name: str, *shape: int | None) -> TensorSpec:
    return TensorSpec(name, "string", (None, *shape))


def _floats(name: str, *shape: int | None) -> TensorSpec:
    return TensorSpec(name, "float32", (None, *shape))


SERVING_DEFAULT = Signature("serving_default", (_ids("examples"),), ())
"""Serialized raw tf.Examples `[B]` (what TFMA feeds) → the family's scoring outputs."""

SCORE = Signature(
    "score",
    (_ids("user_id"), _ids("history", None), _ids("candidates", None)),
    (_floats("scores", None), _floats("candidate_mask", None)),
)
"""News: clicked news ids (oldest first) and candidate ids → scores (padding −1e9) and mask."""

ENCODE_NEWS = Signature(
    "encode_news",
    (_ids("title"), _ids("abstract"), _ids("category"), _ids("subcategory"), _ids("entities", None)),
    (_floats("news_vector", None),),
)
"""News: raw articles (entities: Wikidata ids) → cacheable news vectors."""

ENCODE_USER = Signature(
    "encode_user", (_ids("user_id"), _ids("history", None)), (_floats("user_vector", None),)
)
"""News: a user's clicks → user vector; a news score is its dot product with the news vector."""

PCTR = Signature(
    "pctr", (_ids("user_id"), _ids("history", None), _ids("target")), (_floats("pctr"),)
)
"""CTR: behaviour history (item ids) and one target item per row → click probability in (0, 1)."""

ENCODE_INTERESTS = Signature(
    "encode_user", (_ids("user_id"), _ids("history", None)), (_floats("interests", None),)
)
"""CTR models with cacheable interests (MFN): behaviour history (item ids, oldest first) → the
user's interests as one flat row `[B, D]` (D fixed per exported model), to cache per user."""

PCTR_FROM_INTERESTS = Signature(
    "pctr_from_interests", (_floats("interests", None), _ids("candidates", None)), (_floats("pctr", None),)
)
"""CTR models with cacheable interests: cached `interests` `[B, D]` and candidate item ids
`[B, N]` → click probabilities `[B, N]` (0 on `""` padding); one request scores N candidates and
equals `pctr` of the same user and items."""

USER_TAGS = Signature(
    "user_tags",
    (_ids("user_id"), _ids("history", None), _ids("features", None)),
    (_floats("user_embedding", None), _ids("tag_ids", None), _floats("tag_scores", None),
     _ids("history_tag_ids", None), _floats("history_tag_scores", None)),
)
"""Tag profiling: clicked item ids and user fields (`name=value`) → user embedding, the top K
tags among every tag best first (`""` if fewer than K) with their scores, and the top K among the
user's own history tags (UTPM's candidate selection, what the gate's prec@K ranks; `""` and 0
where the user has fewer)."""

BY_FAMILY: dict[str, tuple[Signature, ...]] = {
    "news": (SCORE, ENCODE_NEWS, ENCODE_USER),
    "ctr": (PCTR,),
    "tags": (USER_TAGS,),
}
"""The raw-input signatures each family exports besides `serving_default`."""

CACHED_INTERESTS: tuple[Signature, ...] = (ENCODE_INTERESTS, PCTR_FROM_INTERESTS)
"""Exported besides the CTR family's by the models whose user side can be cached (MFN and its
ablations: `MFN.encode_user` / `MFN.score`)."""
