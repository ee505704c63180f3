"""MFN: Multiple Interest and Fine Granularity Network (Xie, Wei, Hua, Zhang; arXiv 2112.02591).

A user's behaviours are turned into `2K` interest vectors at each of two granularities, and the
target item attends to them:

* **Levels.** The *category* level reads each behaviour's coarse id features (item id and
  categories); the *fine* level reads its fine-grained features (title words). Each level has
  two embedding sets: a **fixed** pretrained set `E` that only decides the attention weights
  (GloVe for words; for ids, the tables of an auxiliary CTR model trained on the same data, as
  Section 3.2 allows) and the **trainable** set `𝓔` (this model's item embedding) whose vectors
  make the interests.
* **Fine level without words** (Taobao: item and category only), the documented substitute.
  The finest attribute left is the item id itself, so the fine level reads the item id alone
  (`MFNConfig.fine_field`): `E` = the auxiliary model's item-id vectors (the category level's
  `E` is item ⊕ mean category), its own K centers fitted by Algorithm 1 on them, and `𝓔` = the
  item-id part of this model's item vector, **shared** with the category level (whose `𝓔` is
  item ⊕ categories) rather than a second item-id table. Why shared: what makes the level finer
  is how behaviours are grouped (P over item-only vectors, so items of one category can fall
  into different interests), and that comes from `E` and `C`, not from `𝓔`; a second table
  would double the model's largest table, the one that overfits first (DIN's `item_l2` exists
  for it), and widen the target vector the MLP reads. The level keeps its own combination
  interests and scorers (eqs. 6-11), as with words.
* **Similarity interests** (eqs. 4-5): `P = softmax(E Cᵀ)` against the level's interest centers
  `C ∈ R^{K×d_E}` (Algorithm 1, `interests.py`, computed by a pipeline pre-step), and
  `R_s = Pᵀ 𝓔 ∈ R^{K×d}`: interest k sums the behaviours assigned to center k.
* **Combination interests** (eqs. 6-7): multi-head self-attention over the behaviours, then the
  structured self-attention of Lin et al. (2017): `A = softmax(W₂ᵀ swish(W₁ MSA(𝓔)ᵀ))` with one
  distribution over the behaviours per interest, and `R_c = A 𝓔 ∈ R^{K×d}`.
* **Aggregation** (eqs. 8-11): `𝓡 = [R_s; R_c]`; two feed-forward scorers `a₁` (for the K
  similarity interests) and `a₂` (for the K combination interests) score each interest against
  the target, each softmax-normalised over its own K interests, and each block is summed with
  its weights. The paper's eqs. 9-10 index both softmaxes over all `2K` rows; the text says each
  scorer normalises its own interests, which is what is implemented (docs/mfn.md).
* **Output** (eq. 12): an MLP over the target item vector (the item profile) and the aggregated
  vectors of both levels `[v_s; v_c]`, trained with binary cross-entropy. MovieLens has no user
  profile or context features beyond the behaviours, so those parts of eq. 12 are empty.
* **Serving split.** Eqs. 4-7 read the behaviours only, eqs. 8-12 the interests and the target,
  so the model is `score(encode_user(x), x)`: `encode_user` gives each user's interests as one
  flat row (cacheable per user, the paper's serving claim) and `score` scores any number of
  targets against it. `call` is exactly that composition (one embedding lookup for both sides).

Ablations (Table 1): `use_pretrain=False` ("MFN w/o pretrain": centers are random and trained
with the model, `P = softmax(𝓔 Cᵀ)` on the trainable embeddings) and `use_combination=False`
("MFN w/o combination": `𝓡 = R_s`). `interest_loss_weight > 0` adds `λ·L_E` (eqs. 1-3) as an
auxiliary loss; it needs trainable centers (`train_centers`, or w/o pretrain), since with fixed
`E` and `C` it is a constant.

Fixed tables and centers are given when the model is built (`fixed_embeddings`, `centers`) and
saved with its weights, not in its config; when absent (tests, or before the pre-step exists)
the fixed tables and centers start random and stay fixed.

Only `keras` / `keras.ops` are used, so the model runs under TensorFlow and JAX.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from trainer.ctr.models.ctr_model import MLP, CTRConfig, CTRModel
from trainer.ctr.models.din import LocalActivationUnit
from trainer.ctr.models.interests import assignment, entropy_terms
from trainer.layers.attention import large_negative
from trainer.layers.embedding import WordEmbedding

__all__ = ["MFN", "MFNConfig", "MFNNoCombinationConfig", "MFNNoPretrainConfig", "CombinationInterests",
           "InterestAggregation", "fixed_behaviours"]

CATEGORY, FINE = "category", "fine"


@dataclasses.dataclass
class MFNConfig(CTRConfig):
    """Hyper-parameters of MFN. The paper gives no values for the public data sets; each choice
    is argued here and in docs/mfn.md."""

    num_interests: int = 4
    """K, interests per level and kind (2K per level). The paper does not state K for
    MovieLens; 4 covers the 1-3 genres a synthetic user prefers with one to spare."""

    fixed_dim: int = 64
    """Width of the fixed id vectors per field at the category level (the auxiliary model's
    `embedding_dim`)."""

    word_dim: int = 50
    """Width of the fixed word vectors at the fine level (GloVe 6B-50d); unused without words."""

    attention_heads: int = 2
    """Heads of the multi-head self-attention before the structured attention (eq. 6)."""

    structure_units: int = 32
    """Rows of W₁ in eq. 6 (Lin et al.'s `d_a`; they use 350 for 600-d states, about 0.6×; 32
    for the 64-128-d levels here)."""

    scorer_units: tuple[int, ...] = (36,)
    """Hidden layer of each scorer a₁, a₂ (eqs. 8-9): DIN's activation unit of 36."""

    use_pretrain: bool = True
    """False: "MFN w/o pretrain" (random trainable centers over the trainable embeddings)."""

    use_combination: bool = True
    """False: "MFN w/o combination" (similarity interests only)."""

    train_centers: bool = False
    """Fine-tune the pretrained centers with the model (then `interest_loss_weight` matters)."""

    interest_loss_weight: float = 0.0
    """λ of the auxiliary loss λ·L_E (eqs. 1-3) over each level's assignments; 0 = none."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "tiny": {"embedding_dim": 8, "mlp_units": (32, 16), "fixed_dim": 8, "word_dim": 8, "structure_units": 8,
                 "scorer_units": (16,)},
        "no_pretrain": {"use_pretrain": False},
        "no_combination": {"use_combination": False},
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        self.scorer_units = tuple(int(u) for u in self.scorer_units)
        if self.num_interests < 1:
            raise ValueError(f"num_interests must be >= 1, got {self.num_interests}.")
        if self.interest_loss_weight < 0:
            raise ValueError(f"interest_loss_weight must be >= 0, got {self.interest_loss_weight}.")

    @property
    def levels(self) -> tuple[str, ...]:
        """Both levels, with or without title words (`fine_field`)."""
        return (CATEGORY, FINE)

    @property
    def fine_field(self) -> str:
        """What the fine level reads: `words` (mean title word), or `item` (the item id alone)
        when the data have no words: the documented substitute (module docstring)."""
        return "words" if self.vocab_size > 0 else "item"

    @property
    def centers_trainable(self) -> bool:
        return self.train_centers or not self.use_pretrain


@dataclasses.dataclass
class MFNNoPretrainConfig(MFNConfig):
    """"MFN w/o pretrain" (Table 1): random centers trained with the model over the trainable
    embeddings, so it needs no centers pre-step."""

    use_pretrain: bool = False


@dataclasses.dataclass
class MFNNoCombinationConfig(MFNConfig):
    """"MFN w/o combination" (Table 1): similarity interests only (pretrained centers kept)."""

    use_combination: bool = False


def fixed_behaviours(tables: Mapping[str, Callable[[Any], Any]], inputs: dict[str, Any],
                     fine: str | None) -> dict[str, Any]:
    """The fixed vectors E of each behaviour, per level: `category` = concat(item vector, mean
    of the real category vectors), `fine` = mean of the real word vectors (`fine="words"`;
    padding id 0 out of the means, a list of padding only gives 0) or the item vector alone
    (`fine="item"`, data without words).

    One function for the model and the centers pre-step (`components/interest_centers.py`), so
    Algorithm 1 fits the centers in exactly the space the model assigns behaviours in.

    Args:
        tables: `item`, `categories` (and `words` when `fine="words"`) → a lookup of int ids.
        inputs: the CTR input dict (`hist_item`, `hist_categories`, `hist_words`).
        fine: the fine level's field (`MFNConfig.fine_field`), or None to leave the level out.
    """
    def pooled(table, ids):
        ids = ops.cast(ids, "int32")
        real = ops.expand_dims(ops.cast(ops.not_equal(ids, 0), "float32"), -1)
        return ops.sum(ops.cast(table(ids), "float32") * real, axis=-2) / ops.maximum(ops.sum(real, axis=-2), 1.0)

    item = ops.cast(tables["item"](ops.cast(inputs["hist_item"], "int32")), "float32")
    out = {CATEGORY: ops.concatenate([item, pooled(tables["categories"], inputs["hist_categories"])], -1)}
    if fine == "words":
        out[FINE] = pooled(tables["words"], inputs["hist_words"])
    elif fine == "item":
        out[FINE] = item
    elif fine is not None:
        raise ValueError(f"fine must be 'words', 'item' or None, got {fine!r}.")
    return out


@keras.saving.register_keras_serializable(package="usermodel")
class CombinationInterests(keras.layers.Layer):
    """Combination interests (eqs. 6-7): `R_c = softmax(W₂ᵀ swish(W₁ MSA(𝓔)ᵀ)) 𝓔`.

    The self-attention lets each behaviour see the others (higher-order combinations); the
    structured attention then gives K distributions over the behaviours. Padded behaviours get
    no weight in either attention; an empty history gives zero interests.

    Args:
        num_interests: K.
        heads: heads of the self-attention.
        units: d_a, the rows of W₁.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        behaviours: float `[B, n, d]`, the trainable behaviour vectors 𝓔.
        mask: `[B, n]`, nonzero for a real behaviour.

    Returns:
        `(interests [B, K, d], weights A [B, K, n])`: R_c and the attention of eq. 6 (each
        interest's distribution over the behaviours, 0 on padding), which the explanation
        command shows.

    References:
        - Xie et al., 2021, eqs. (6)-(7); Lin et al., 2017, "A Structured Self-attentive
          Sentence Embedding", ICLR (the structured attention `A = softmax(W₂ tanh(W₁ Hᵀ))`,
          with swish in MFN).
    """

    def __init__(self, num_interests: int, heads: int, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_interests, self.heads, self.units = int(num_interests), int(heads), int(units)
        self.w1 = keras.layers.Dense(self.units, activation="swish", use_bias=False, name="w1")
        self.w2 = keras.layers.Dense(self.num_interests, use_bias=False, name="w2")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = input_shape[-1]
        self.msa = keras.layers.MultiHeadAttention(self.heads, max(1, dim // self.heads), name="msa")
        self.msa.build((None, None, dim), (None, None, dim))
        self.w1.build((None, None, dim))
        self.w2.build((None, None, self.units))
        self.built = True

    def call(self, behaviours: Any, mask: Any) -> tuple[Any, Any]:
        real = ops.cast(mask, "bool")
        behaviours = ops.where(ops.expand_dims(real, -1), behaviours, 0.0)
        pairs = ops.logical_and(ops.expand_dims(real, 2), ops.expand_dims(real, 1))
        states = self.msa(behaviours, behaviours, attention_mask=pairs)
        logits = ops.transpose(self.w2(self.w1(states)), (0, 2, 1))  # [B, K, n]
        logits = ops.where(ops.expand_dims(real, 1), logits, large_negative(logits.dtype))
        weights = ops.softmax(logits, axis=-1) * ops.cast(ops.expand_dims(real, 1), logits.dtype)
        return ops.matmul(weights, behaviours), weights

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_interests": self.num_interests, "heads": self.heads, "units": self.units}


@keras.saving.register_keras_serializable(package="usermodel")
class InterestAggregation(keras.layers.Layer):
    """Target attention over K interests (eqs. 8-11 for one block): softmax over the K scores
    of a feed-forward scorer, then the weighted sum of the interests.

    Args:
        units: hidden widths of the scorer (DIN's activation unit, PReLU).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        interests: float `[B, K, d]`.
        target: float `[B, d]`.

    Returns:
        `(vector [B, d], weights [B, K])`.
    """

    def __init__(self, units: tuple[int, ...] = (36,), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = tuple(int(u) for u in units)
        self.scorer = LocalActivationUnit(self.units, "prelu", name="scorer")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.scorer.build(input_shape)
        self.built = True

    def call(self, interests: Any, target: Any, training: bool = False) -> Any:
        every = ops.ones(ops.shape(interests)[:2], "bool")
        weights = ops.softmax(self.scorer(interests, target, every, training=training), axis=-1)
        return ops.sum(interests * ops.expand_dims(weights, -1), axis=1), weights

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": list(self.units)}


@keras.saving.register_keras_serializable(package="usermodel")
class MFN(CTRModel):
    """MFN over the CTR input dict (`ctr_model.py`); returns logits `[B]` (float32).

    Args:
        config: an `MFNConfig` with the table sizes set.
        fixed_embeddings: optional pretrained tables `{"item": [num_items, fixed_dim],
            "categories": [num_categories, fixed_dim], "words": [vocab_size, word_dim]}` (no
            `words` without words) copied in when built (not serialized: the saved weights
            carry them).
        centers: optional `{"category": [K, 2 * fixed_dim], "fine": [K, word_dim]}` from
            Algorithm 1 (`interests.fit_interest_centers`); without words `fine` is `[K,
            fixed_dim]`, fitted on the fixed item vectors.
        **kwargs: passed to `keras.Model`.

    References:
        - [Xie et al., 2021. Multiple Interest and Fine Granularity Network for User Modeling](
          https://arxiv.org/abs/2112.02591), Section 3, eqs. (1)-(12), Table 1.
    """

    config_class: ClassVar[type[CTRConfig]] = MFNConfig

    def __init__(self, config: MFNConfig | dict[str, Any] | None = None,
                 fixed_embeddings: dict[str, np.ndarray] | None = None,
                 centers: dict[str, np.ndarray] | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        fixed = fixed_embeddings or {}
        self._initial_centers = dict(centers or {})
        self.fixed = {}
        if cfg.use_pretrain:
            sizes = {"item": (cfg.num_items, cfg.fixed_dim), "categories": (cfg.num_categories, cfg.fixed_dim)}
            if cfg.fine_field == "words":
                sizes["words"] = (cfg.vocab_size, cfg.word_dim)
            self.fixed = {f: WordEmbedding(rows, dim, pretrained=fixed.get(f), trainable=False, name=f"fixed_{f}")
                          for f, (rows, dim) in sizes.items()}
        self.combination = {
            level: CombinationInterests(cfg.num_interests, cfg.attention_heads, cfg.structure_units,
                                        name=f"{level}_combination")
            for level in cfg.levels if cfg.use_combination
        }
        kinds = ("similarity", "combination") if cfg.use_combination else ("similarity",)
        # (level, kind) blocks; the layers are keyed by strings, since a SavedModel (the CTR
        # export) cannot track a dict with tuple keys.
        self.blocks = tuple((level, kind) for level in cfg.levels for kind in kinds)
        self.aggregation = {
            f"{level}_{kind}": InterestAggregation(cfg.scorer_units, name=f"{level}_{kind}_aggregation")
            for level, kind in self.blocks
        }
        self.mlp = MLP(cfg.mlp_units, cfg.activation, name="mlp")

    # ------------------------------------------------------------------ sizes
    def _level_dim(self, level: str) -> int:
        """Width of a level's trainable behaviour vectors (its slice of the item vector)."""
        return self.config.embedding_dim * (2 if level == CATEGORY else 1)

    def _center_dim(self, level: str) -> int:
        cfg = self.config
        if not cfg.use_pretrain:
            return self._level_dim(level)
        if level == CATEGORY:
            return 2 * cfg.fixed_dim
        return cfg.word_dim if cfg.fine_field == "words" else cfg.fixed_dim

    def build(self, input_shape: Any = None) -> None:
        cfg = self.config
        self.item_embedding.build()
        for table in self.fixed.values():
            table.build((None,))
        self.centers = {}
        for level in cfg.levels:
            shape = (cfg.num_interests, self._center_dim(level))
            initial = self._initial_centers.get(level)
            if initial is not None and tuple(np.shape(initial)) != shape:
                raise ValueError(f"centers[{level!r}] must be {shape}, got {np.shape(initial)}.")
            self.centers[level] = self.add_weight(
                name=f"{level}_centers", shape=shape, trainable=cfg.centers_trainable,
                initializer=keras.initializers.Constant(np.asarray(initial, "float32")) if initial is not None
                else keras.initializers.RandomNormal(stddev=1.0),
            )
            dim = self._level_dim(level)
            if level in self.combination:
                self.combination[level].build((None, None, dim))
        for level, kind in self.blocks:
            self.aggregation[f"{level}_{kind}"].build((None, cfg.num_interests, self._level_dim(level)))
        width = cfg.item_dim + sum(self._level_dim(level) for level, _ in self.blocks)
        self.mlp.build((None, width))
        self._initial_centers = {}
        self.built = True

    # ------------------------------------------------------------------ parts
    def _split(self, vectors: Any) -> dict[str, Any]:
        """Each level's slice of item vectors (fields item, categories[, words] of
        `embedding_dim`): category = item ⊕ categories; fine = words, or without words the item
        part again (shared with the category level, module docstring)."""
        e = self.config.embedding_dim
        fine = vectors[..., 2 * e: 3 * e] if self.config.fine_field == "words" else vectors[..., :e]
        return {CATEGORY: vectors[..., : 2 * e], FINE: fine}

    def _fixed_behaviours(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The fixed vectors E of each behaviour, per level (`fixed_behaviours`)."""
        return fixed_behaviours(self.fixed, inputs, self.config.fine_field)

    def _embed(self, inputs: dict[str, Any], side: str) -> Any:
        """Trainable item vectors of one side (`hist` `[B, H, D]` or `target` `[B, D]`) alone,
        for `encode_user` (no target) and `score` (no history)."""
        fields = {f: ops.cast(inputs[f"{side}_{f}"], "int32") for f in self.item_fields}
        return ops.cast(self.item_embedding(fields), "float32")

    # ------------------------------------------------------------------ user side (eqs. 4-7)
    @property
    def interest_size(self) -> int:
        """Width D of `encode_user`'s rows: K·d per (level, kind) block of `blocks`."""
        return sum(self.config.num_interests * self._level_dim(level) for level, _ in self.blocks)

    def _user_parts(self, history: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        mask = ops.cast(inputs["hist_mask"], "float32")
        trainable = self._split(history)
        fixed = self._fixed_behaviours(inputs) if self.config.use_pretrain else trainable
        out = {}
        for level in self.config.levels:
            p = assignment(fixed[level], ops.cast(self.centers[level], "float32")) * ops.expand_dims(mask, -1)
            level_out = {"assignment": p, "similarity": ops.matmul(ops.transpose(p, (0, 2, 1)), trainable[level])}
            if level in self.combination:
                level_out["combination"], level_out["attention"] = self.combination[level](trainable[level], mask)
            out[level] = level_out
        return out

    def interests(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Per level: `similarity` R_s `[B, K, d]` with its `assignment` P `[B, n, K]` (eqs.
        4-5) and, unless ablated, `combination` R_c `[B, K, d]` with its `attention` A `[B, K,
        n]` (eqs. 6-7). Reads the history fields only. For explanations and tests; serving
        uses the flat `encode_user`."""
        if not self.built:  # called directly, before the first `__call__` built the model
            self.build()
        return self._user_parts(self._embed(inputs, "hist"), inputs)

    def _flatten(self, parts: dict[str, Any]) -> Any:
        """`[R_s; R_c]` of every level as one row `[B, D]`: the blocks in `blocks` order, each
        interest's d values in turn."""
        return ops.concatenate(
            [ops.reshape(parts[level][kind], (-1, self.config.num_interests * self._level_dim(level)))
             for level, kind in self.blocks], axis=-1)

    def _unflatten(self, interests: Any) -> list[Any]:
        """`_flatten`'s inverse: one `[B, K, d]` tensor per block of `blocks`."""
        k, out, start = self.config.num_interests, [], 0
        for level, _ in self.blocks:
            dim = self._level_dim(level)
            out.append(ops.reshape(interests[:, start: start + k * dim], (-1, k, dim)))
            start += k * dim
        return out

    def encode_user(self, inputs: dict[str, Any]) -> Any:
        """A user's interests, float `[B, D]` (`interest_size`): the user side of MFN (eqs.
        4-7), everything that does not depend on the target, so it can be computed once per
        user and cached. `2K` vectors per level (`K` without combination), flattened level by
        level, similarity block first. Reads `hist_*` only."""
        return self._flatten(self.interests(inputs))

    # ------------------------------------------------------------------ target side (eqs. 8-12)
    def _score(self, interests: Any, target: Any, training: bool) -> Any:
        targets = self._split(target)
        vectors = [target]
        for (level, kind), block in zip(self.blocks, self._unflatten(interests)):
            vector, _ = self.aggregation[f"{level}_{kind}"](block, targets[level], training=training)
            vectors.append(vector)
        return ops.cast(self.mlp(ops.concatenate(vectors, axis=-1), training=training), "float32")

    def score(self, interests: Any, inputs: dict[str, Any], training: bool = False) -> Any:
        """Logits `[B]` of the targets (`target_*` fields of `inputs`) against cached
        interests `[B, D]` from `encode_user`: the target attention over each block (eqs.
        8-11) and the MLP (eq. 12)."""
        if not self.built:
            self.build()
        return self._score(ops.cast(interests, "float32"), self._embed(inputs, "target"), training)

    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        """`score(encode_user(inputs), inputs)`, with history and target embedded in one
        lookup and `λ·L_E` added in training when the centers train."""
        history, target = self.embed_items(inputs)
        parts = self._user_parts(ops.cast(history, "float32"), inputs)
        if self.config.interest_loss_weight > 0 and self.config.centers_trainable and training:
            mask = inputs["hist_mask"]
            for level in self.config.levels:
                l_se, l_me = entropy_terms(parts[level]["assignment"], mask)
                self.add_loss(self.config.interest_loss_weight * (l_se - l_me))
        return self._score(self._flatten(parts), ops.cast(target, "float32"), training)
