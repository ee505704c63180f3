"""A generic news-ranking model: news encoder + user encoder + dot-product scorer.

NRMS, LSTUR, FUM and Tiny-NewsRec share one shape (Wu et al., 2019, Section 2;
the same decomposition as microsoft/recommenders): a *news encoder* maps each
article's fields to a vector, a *user encoder* maps the vectors of the clicked
articles to a user vector, and a candidate's score is the dot product of the
two. `NewsRankingModel` fixes that skeleton, the input dict layout
(docs/architecture.md, "Model inputs") and the training loss, so a subclass
only builds its two encoders.

Input dict (for each field `f` in `news_fields`):

| key          | shape         | meaning                                       |
|--------------|---------------|-----------------------------------------------|
| `hist_<f>`   | `[B, H, ...]` | field `f` of the clicked articles             |
| `hist_mask`  | `[B, H]`      | 1.0 for a real clicked article, 0.0 padding   |
| `cand_<f>`   | `[B, C, ...]` | field `f` of the candidate articles           |
| `cand_mask`  | `[B, C]`      | 1.0 for a real candidate, 0.0 padding         |

Only `keras` / `keras.ops` are used, so models run under TensorFlow and JAX.
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
from keras import ops

from trainer.layers.attention import large_negative
from trainer.model_base import ConfiguredModel
from trainer.news.models import padding

__all__ = ["NewsRankingModel", "masked_softmax_cross_entropy"]


def masked_softmax_cross_entropy(
    y_true: Any,
    logits: Any,
    mask: Any | None = None,
    sample_weight: Any | None = None,
) -> Any:
    """Softmax cross-entropy over the real candidates of each row.

    This is the NRMS training loss (Wu et al., 2019, eqs. 11-12): with the
    clicked article's score `y+` and the K negatives' scores `y-_j`,
    `p = exp(y+) / (exp(y+) + sum_j exp(y-_j))` and `L = -sum log p`; padded
    candidates are excluded from the normalizer.

    Args:
        y_true: either the clicked slot per row, integer `[B]` (or `[B, 1]`),
            the training layout (1 click + K negatives, click at a random
            slot); or click labels per candidate `[B, C]`, the evaluation
            layout, in which case the target distribution is the labels
            normalized over the row's real candidates (one click reduces to
            the case above; rows without clicks contribute 0).
        logits: float `[B, C]` scores.
        mask: optional `[B, C]`, nonzero for real candidates. Padded
            candidates get zero probability.
        sample_weight: optional `[B]` per-row weights.

    Returns:
        The scalar mean over rows of the (weighted) per-row loss, float32.
    """
    logits = ops.cast(logits, "float32")
    if mask is not None:
        keep = ops.cast(mask, "bool")
        logits = ops.where(keep, logits, ops.cast(large_negative("float32"), "float32"))
    log_probs = ops.log_softmax(logits, axis=-1)
    num_candidates = logits.shape[-1]
    y_rank = len(y_true.shape)
    is_index = y_rank == 1 or (
        y_rank == 2 and y_true.shape[-1] == 1 and num_candidates != 1
    )
    if is_index:
        index = ops.reshape(ops.cast(y_true, "int32"), (-1, 1))
        per_row = -ops.squeeze(ops.take_along_axis(log_probs, index, axis=-1), axis=-1)
    else:
        labels = ops.cast(y_true, "float32")
        if mask is not None:
            labels = labels * ops.cast(mask, "float32")
        total = ops.sum(labels, axis=-1, keepdims=True)
        target = labels / ops.maximum(total, 1.0)
        per_row = -ops.sum(target * log_probs, axis=-1)
    if sample_weight is not None:
        per_row = per_row * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
    return ops.mean(per_row)


class NewsRankingModel(ConfiguredModel):
    """Base class: news encoder + user encoder + dot-product click predictor.

    Subclasses set `news_fields` and, in `__init__`, the two sub-layers:

    * `self.news_encoder`: a layer/model mapping a dict `{field: [N, ...]}`
      (one entry per name in `news_fields`) to news vectors `[N, D]`. This is
      the cacheable part exported as the `encode_news` signature.
    * `self.user_encoder`: a layer/model called as
      `user_encoder(history_vectors [B, H, D], mask=hist_mask [B, H],
      training=...)` returning user vectors `[B, D]`. Subclasses whose user
      encoder needs more than the clicked news (LSTUR's user id) override
      `user_representation` instead.

    `call` encodes history and candidate articles with **one** batched
    news-encoder call (`B * (H + C)` articles), pools the history into a user
    vector and scores each candidate by a dot product (Wu et al., 2019, the
    click predictor `y = u^T r^c`). Padded candidates score `-1e9` (a finite
    large negative; `-3e4` under float16).

    Training follows the papers: an example is one click plus K negatives of
    the same impression, `y` is the clicked slot (int `[B]`), and
    `paper_loss` is `masked_softmax_cross_entropy`, which
    `ConfiguredModel.compute_loss` adds to the layer losses (the TFRS pattern:
    the loss lives in the model, so `fit`/`evaluate` work without a custom
    loop and subclasses change the loss by overriding `paper_loss`). If a
    `loss` is given to `compile`, Keras' default handling is used instead.

    Args:
        config: the subclass's `config_class` instance, its `to_dict()`, or
            None for the defaults.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    References:
        - [Wu et al., 2019. Neural News Recommendation with Multi-Head
          Self-Attention (NRMS), EMNLP](https://aclanthology.org/D19-1671/),
          Section 2 (click predictor, loss eqs. 11-12).
        - TensorFlow Recommenders' `tfrs.Model` (loss computed by the model).
    """

    #: Names of the news fields the model consumes (keys `hist_<f>`, `cand_<f>`).
    news_fields: ClassVar[tuple[str, ...]] = ()

    news_encoder: keras.layers.Layer
    user_encoder: keras.layers.Layer

    # ------------------------------------------------------------------ parts
    def encode_news(
        self, news: dict[str, Any], training: bool = False, valid: Any | None = None
    ) -> Any:
        """Encodes articles: `{field: [N, ...]}` -> news vectors `[N, D]`.

        Padded token positions are skipped (`trainer/news/models/padding.py`):
        articles are encoded in length groups trimmed to their longest
        title, which gives the same vectors as one padded block.

        Args:
            news: dict with one entry per name in `news_fields` (extra keys
                are ignored).
            training: whether dropout is active.
            valid: optional `[N]`, nonzero for real articles; padded slots
                are encoded as empty articles (their vectors are masked
                downstream).

        Returns:
            Float tensor `[N, D]`.
        """
        fields = {f: news[f] for f in self.news_fields}
        with padding.dynamic_shapes(self.jit_compile):
            return padding.encode_by_length(
                lambda part: self.news_encoder(part, training=training), fields, valid=valid
            )

    def encode_news_sequences(
        self,
        inputs: dict[str, Any],
        prefixes: tuple[str, ...] = ("hist", "cand"),
        training: bool = False,
    ) -> list[Any]:
        """Encodes several `[B, N_i, ...]` article sequences in one call.

        The sequences named by `prefixes` (`<prefix>_<field>`) are
        concatenated along axis 1, flattened to `B * sum(N_i)` articles,
        encoded by a single `encode_news` call and split back.

        Args:
            inputs: the model's input dict.
            prefixes: which sequences to encode, e.g. `("hist", "cand")`.
            training: whether dropout is active.

        Returns:
            One float tensor `[B, N_i, D]` per prefix, in order.
        """
        first = inputs[f"{prefixes[0]}_{self.news_fields[0]}"]
        batch = ops.shape(first)[0]
        lengths = [inputs[f"{p}_{self.news_fields[0]}"].shape[1] for p in prefixes]
        if any(n is None for n in lengths):
            lengths = [
                ops.shape(inputs[f"{p}_{self.news_fields[0]}"])[1] for p in prefixes
            ]
        flat = {}
        for field in self.news_fields:
            parts = [inputs[f"{p}_{field}"] for p in prefixes]
            joined = parts[0] if len(parts) == 1 else ops.concatenate(parts, 1)
            flat[field] = _flatten_two_leading(joined)
        valid = None
        if all(f"{p}_mask" in inputs for p in prefixes):
            masks = [inputs[f"{p}_mask"] for p in prefixes]
            valid = ops.reshape(masks[0] if len(masks) == 1 else ops.concatenate(masks, 1), (-1,))
        vectors = self.encode_news(flat, training=training, valid=valid)  # [B*sum(N), D]
        vectors = ops.reshape(vectors, (batch, -1, vectors.shape[-1]))
        if len(prefixes) == 1:
            return [vectors]
        outputs, start = [], 0
        for n in lengths:
            outputs.append(vectors[:, start : start + n])
            start = start + n
        return outputs

    def user_representation(
        self,
        history_vectors: Any,
        inputs: dict[str, Any],
        training: bool = False,
    ) -> Any:
        """User vectors `[B, D]` from the clicked-news vectors `[B, H, D]`.

        The default calls `user_encoder(history_vectors, mask=hist_mask)`.
        Override when the user encoder needs other inputs (e.g. a user id).

        Args:
            history_vectors: float `[B, H, D]`.
            inputs: the model's input dict (has `hist_mask`).
            training: whether dropout is active.

        Returns:
            Float tensor `[B, D]`.
        """
        return self.user_encoder(
            history_vectors, mask=inputs["hist_mask"], training=training
        )

    def encode_user(self, inputs: dict[str, Any], training: bool = False) -> Any:
        """User vectors `[B, D]` from `hist_<field>` and `hist_mask`.

        Args:
            inputs: dict with `hist_<f>` `[B, H, ...]` for each news field and
                `hist_mask` `[B, H]` (other keys are ignored).
            training: whether dropout is active.

        Returns:
            Float tensor `[B, D]`.
        """
        with padding.dynamic_shapes(self.jit_compile):
            (history_vectors,) = self.encode_news_sequences(
                inputs, prefixes=("hist",), training=training
            )
            return self.user_representation(history_vectors, inputs, training)

    def score(
        self,
        user_vectors: Any,
        candidate_vectors: Any,
        cand_mask: Any | None = None,
    ) -> Any:
        """Dot-product scores of candidates for users.

        Args:
            user_vectors: float `[B, D]`.
            candidate_vectors: float `[B, C, D]`.
            cand_mask: optional `[B, C]`, nonzero for real candidates.

        Returns:
            Float `[B, C]`; padded candidates get a finite large negative.
            Under a mixed-precision policy (bfloat16/float16 compute) the
            dot products are taken in float32, so scores are float32 and
            rankings have no spurious ties.
        """
        if keras.backend.standardize_dtype(candidate_vectors.dtype) in (
            "bfloat16",
            "float16",
        ):
            user_vectors = ops.cast(user_vectors, "float32")
            candidate_vectors = ops.cast(candidate_vectors, "float32")
        scores = ops.squeeze(
            ops.matmul(candidate_vectors, ops.expand_dims(user_vectors, -1)),
            axis=-1,
        )
        if cand_mask is not None:
            fill = ops.cast(large_negative(scores.dtype), scores.dtype)
            scores = ops.where(ops.cast(cand_mask, "bool"), scores, fill)
        return scores

    # ---------------------------------------------------------------- keras
    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        """Scores `[B, C]` of the candidates given the history.

        Args:
            inputs: dict with `hist_<f>`, `hist_mask`, `cand_<f>`, `cand_mask`
                (see the module docstring).
            training: whether dropout is active.

        Returns:
            Float `[B, C]`.
        """
        with padding.dynamic_shapes(self.jit_compile):
            history_vectors, candidate_vectors = self.encode_news_sequences(
                inputs, prefixes=("hist", "cand"), training=training
            )
            user_vectors = self.user_representation(history_vectors, inputs, training)
        return self.score(user_vectors, candidate_vectors, inputs.get("cand_mask"))

    def paper_loss(self, x: Any, y: Any, y_pred: Any, sample_weight: Any) -> Any:
        """Masked softmax cross-entropy over the candidates (NRMS eqs. 11-12); `x["cand_mask"]`
        masks the softmax.

        Args:
            x: the input dict.
            y: clicked slot `[B]` int, or per-candidate labels `[B, C]`.
            y_pred: scores `[B, C]` from `call`.
            sample_weight: optional `[B]`.
        """
        mask = x.get("cand_mask") if isinstance(x, dict) else None
        return masked_softmax_cross_entropy(y, y_pred, mask, sample_weight)

    def compute_metrics(
        self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None
    ) -> dict[str, Any]:
        """Compiled metrics with padded candidates masked out.

        Without a `sample_weight`, the input's `cand_mask` is passed as the
        metrics' mask (`trainer/metrics.py`): padded candidates score -1e9
        and would otherwise count as perfectly ranked negatives. Keras hands
        weights only to `compile(weighted_metrics=...)`, so compile impression
        metrics there.
        """
        if sample_weight is None and isinstance(x, dict) and "cand_mask" in x:
            sample_weight = x["cand_mask"]
        return super().compute_metrics(x, y, y_pred, sample_weight)


def _flatten_two_leading(x: Any) -> Any:
    """Reshapes `[B, N, ...]` to `[B * N, ...]` (trailing dims kept)."""
    trailing = list(x.shape[2:])
    if any(d is None for d in trailing):
        dynamic = ops.shape(x)
        trailing = [dynamic[i + 2] if d is None else d for i, d in enumerate(trailing)]
    return ops.reshape(x, [-1] + trailing)
