"""Attention layers shared by the news-recommendation models.

Everything here is written with `keras.ops` only, so the same layers run under
the TensorFlow backend (TFX Trainer, TF Serving export) and under JAX.

Masks follow the project convention (docs/architecture.md, "Model inputs"):
`1` (or `True`) marks a real position, `0` marks padding. Masks may be given as
booleans, integers or floats.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = [
    "AdditiveAttentionPooling",
    "MultiHeadSelfAttention",
    "large_negative",
    "masked_softmax",
    "segment_max",
    "segment_softmax",
    "segment_sum",
]


def large_negative(dtype: Any) -> float:
    """A finite, very negative number representable in `dtype`.

    Used to fill masked logits: large enough that `exp(x - max)` underflows to
    exactly zero, small enough that it stays finite (no `-inf - -inf = NaN`).

    Args:
        dtype: the floating dtype the value will be cast to.

    Returns:
        `-1e9` for float32/float64/bfloat16, `-3e4` for float16.
    """
    name = keras.backend.standardize_dtype(dtype)
    return -3.0e4 if name == "float16" else -1.0e9


def masked_softmax(logits: Any, mask: Any | None, axis: int = -1) -> Any:
    """Softmax over the positions where `mask` is true; zeros elsewhere.

    Rows whose mask is entirely false give all zeros (not NaN, not uniform).

    Args:
        logits: float tensor.
        mask: tensor broadcastable to `logits` (bool, int or float; nonzero =
            keep), or `None` for a plain softmax.
        axis: the axis to normalize over.

    Returns:
        A tensor with the shape and dtype of `logits`.
    """
    if mask is None:
        return ops.softmax(logits, axis=axis)
    keep = ops.cast(mask, "bool")
    fill = ops.cast(large_negative(logits.dtype), logits.dtype)
    probs = ops.softmax(ops.where(keep, logits, fill), axis=axis)
    # A fully masked row has a uniform softmax above; zero it.
    return probs * ops.cast(keep, probs.dtype)


def _sorted_segments(reduce: Any, data: Any, segment_ids: Any, num_segments: Any) -> Any:
    """`reduce` (`ops.segment_sum` / `ops.segment_max`) over sorted ids, `num_segments` rows out.

    The sorted kernels are about 4x faster than the unsorted ones on CPU.
    TensorFlow's sorted kernel takes no `num_segments` and stops at the
    largest id, so its result is padded with zero rows up to `num_segments`.
    """
    if keras.backend.backend() != "tensorflow":
        return reduce(data, segment_ids, num_segments, sorted=True)
    out = reduce(data, segment_ids, sorted=True)
    missing = num_segments - ops.shape(out)[0]
    return ops.pad(out, [[0, missing]] + [[0, 0]] * (len(data.shape) - 1))


def segment_sum(data: Any, segment_ids: Any, num_segments: Any) -> Any:
    """Sum of the rows of `data` per segment; `segment_ids` sorted ascending."""
    return _sorted_segments(ops.segment_sum, data, segment_ids, num_segments)


def segment_max(data: Any, segment_ids: Any, num_segments: Any) -> Any:
    """Max of the rows of `data` per segment (0 for an empty one); ids sorted ascending."""
    return _sorted_segments(ops.segment_max, data, segment_ids, num_segments)


def segment_softmax(logits: Any, segment_ids: Any, num_segments: Any, mask: Any) -> Any:
    """Softmax of `logits` within each segment, over the entries where `mask` is true.

    The segment form of `masked_softmax`, for sequences packed without
    padding (several variable-length groups along one flat axis): entry `i`
    belongs to group `segment_ids[i]` (sorted ascending), and its weight is
    normalized over the masked-in entries of that group only, separately
    for each trailing column (e.g. each attention head). Masked-out entries
    get 0, and so does every entry of a group with no masked-in entry.

    Args:
        logits: float `[N]` or `[N, K]`.
        segment_ids: int `[N]`, sorted, values in `[0, num_segments)`.
        num_segments: number of groups (int or scalar tensor).
        mask: `[N]`, nonzero / True for entries that take part.

    Returns:
        A tensor of the shape and dtype of `logits`.
    """
    keep = ops.cast(mask, "bool")
    for _ in range(len(logits.shape) - 1):
        keep = keep[..., None]
    keep = ops.broadcast_to(keep, ops.shape(logits))
    fill = ops.cast(large_negative(logits.dtype), logits.dtype)
    top = segment_max(ops.where(keep, logits, fill), segment_ids, num_segments)
    # Shift only the kept entries: `exp` of a masked entry minus its group's
    # max could overflow, and `where` would turn that into a NaN gradient.
    shifted = ops.where(keep, logits - ops.take(top, segment_ids, axis=0), 0.0)
    weights = ops.exp(shifted) * ops.cast(keep, logits.dtype)
    total = segment_sum(weights, segment_ids, num_segments)
    small = 1e-7 if keras.backend.standardize_dtype(logits.dtype) == "float16" else 1e-30
    total = ops.maximum(total, ops.cast(small, logits.dtype))
    return weights / ops.take(total, segment_ids, axis=0)


@keras.saving.register_keras_serializable(package="usermodel")
class AdditiveAttentionPooling(keras.layers.Layer):
    """Additive (Bahdanau-style) attention pooling of a sequence of vectors.

    Computes, for inputs `h_1 .. h_N` (NRMS, Wu et al. 2019: eqs. 3-5 for the
    word-level attention of the news encoder and eqs. 8-10 for the news-level
    attention of the user encoder, which share this form):

    ```
    a_i     = q^T tanh(V h_i + v)                 # eq. 3 / 8
    alpha_i = exp(a_i) / sum_j exp(a_j)           # eq. 4 / 9, unmasked j only
    r       = sum_i alpha_i h_i                   # eq. 5 / 10
    ```

    `V` (`[D, hidden_dim]`), `v` (`[hidden_dim]`) and the query `q`
    (`[hidden_dim]`) are learned. Padded positions (`mask == 0`) get zero
    weight, and a row with no real position pools to the zero vector (finite
    values and gradients).

    Args:
        hidden_dim: int. Size of the attention query `q` (NRMS uses 200).
        kernel_initializer: initializer for `V` and `q`.
        bias_initializer: initializer for `v`.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: float tensor `[B, N, D]`.
        mask: optional tensor `[B, N]`, nonzero / True for real positions.

    Returns:
        A tensor `[B, D]`.

    Example:

    ```python
    pool = AdditiveAttentionPooling(hidden_dim=200)
    h = np.random.normal(size=(2, 5, 64)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], "float32")
    r = pool(h, mask=mask)  # [2, 64]; r[1] == 0
    ```

    References:
        - [Wu et al., 2019. Neural News Recommendation with Multi-Head
          Self-Attention (NRMS), EMNLP](https://aclanthology.org/D19-1671/),
          Section 2, eqs. (3)-(5) (words) and (8)-(10) (news).
    """

    def __init__(
        self,
        hidden_dim: int,
        kernel_initializer: str | keras.initializers.Initializer = ("glorot_uniform"),
        bias_initializer: str | keras.initializers.Initializer = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if hidden_dim <= 0:
            raise ValueError(f"hidden_dim must be positive, got {hidden_dim}.")
        self.hidden_dim = int(hidden_dim)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = input_shape[-1]
        if dim is None:
            raise ValueError("The last input dimension must be known.")
        self.projection_kernel = self.add_weight(
            name="projection_kernel",
            shape=(dim, self.hidden_dim),
            initializer=self.kernel_initializer,
        )
        self.projection_bias = self.add_weight(
            name="projection_bias",
            shape=(self.hidden_dim,),
            initializer=self.bias_initializer,
        )
        self.query = self.add_weight(
            name="query",
            shape=(self.hidden_dim, 1),
            initializer=self.kernel_initializer,
        )
        self.built = True

    def scores(self, inputs: Any) -> Any:
        """The attention logits `a_i = q^T tanh(V h_i + v)`, `[..., N]` for `[..., N, D]`.

        Public so that callers pooling packed (unpadded) sequences can
        normalize them per segment (`segment_softmax`).
        """
        hidden = ops.tanh(
            ops.matmul(inputs, self.projection_kernel) + self.projection_bias
        )
        return ops.squeeze(ops.matmul(hidden, self.query), axis=-1)

    def call(self, inputs: Any, mask: Any | None = None) -> Any:
        logits = self.scores(inputs)  # [B, N]
        weights = masked_softmax(logits, mask, axis=-1)  # [B, N]
        # r = sum_i alpha_i h_i as a batched [1, N] x [N, D] product.
        pooled = ops.matmul(ops.expand_dims(weights, axis=-2), inputs)
        return ops.squeeze(pooled, axis=-2)

    def compute_mask(self, inputs: Any, mask: Any | None = None) -> None:
        # The sequence axis is reduced away: no mask to propagate.
        return None

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None, ...]:
        return tuple(input_shape[:-2]) + (input_shape[-1],)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="usermodel")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Multi-head self-attention with a key padding mask, as in NRMS.

    For an input sequence `e_1 .. e_L` and each head `k = 1 .. h` (NRMS, Wu et
    al. 2019: eqs. 1-2 over the words of a title, eqs. 6-7 over the clicked
    news of a user):

    ```
    alpha^k_{i,j} = exp(e_i^T Q_k e_j) / sum_m exp(e_i^T Q_k e_m)   # eq. 1 / 6
    h_{i,k}       = V_k (sum_j alpha^k_{i,j} e_j)                   # eq. 2 / 7
    h_i           = [h_{i,1}; ...; h_{i,h}]                # concatenation
    ```

    The bilinear form `Q_k` is factorized as `W^Q_k^T W^K_k` with
    `head_dim`-wide projections and the logits are scaled by
    `1/sqrt(head_dim)`, as in the reference implementation
    (microsoft/recommenders); `V_k` is the value projection. Following the
    paper the heads are concatenated and **not** projected again, so the
    output width is `num_heads * head_dim`. This is one reason not to build
    on `keras.layers.MultiHeadAttention`, which always adds an output
    projection; the other is CPU speed: here Q, K and V come from a single
    fused matmul, the scale is folded into the query kernel and the mask is
    an additive bias (about 2x less CPU time per NRMS training step than a
    select-masked, separately-scaled version).

    Masking: keys with `mask == 0` receive exactly zero attention, so the
    output at real positions does not depend on the values at padded
    positions. Outputs at padded query positions are finite but meaningless;
    a row with no real key at all attends uniformly (finite).

    Args:
        num_heads: int. Number of heads `h` (NRMS: 16; 20 in the reference
            implementation).
        head_dim: int. Width of each head (NRMS: 16; 20 in the reference
            implementation).
        dropout: float. Dropout rate on the attention probabilities (NRMS
            applies dropout outside this layer, so the default is 0).
        use_bias: bool. Whether the Q/K/V projections have biases (the
            equations have none).
        kernel_initializer: initializer for the projection kernels.
        bias_initializer: initializer for the projection biases.
        seed: optional int seed for the dropout.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: float tensor `[B, L, D]`.
        mask: optional tensor `[B, L]`, nonzero / True for real positions.
        training: bool, enables dropout.

    Returns:
        A tensor `[B, L, num_heads * head_dim]`.

    Example:

    ```python
    mhsa = MultiHeadSelfAttention(num_heads=16, head_dim=16)
    x = np.random.normal(size=(4, 30, 300)).astype("float32")
    mask = (np.arange(30)[None] < np.array([[30], [12], [1], [0]]))
    y = mhsa(x, mask=mask)  # [4, 30, 256]
    ```

    References:
        - [Wu et al., 2019. Neural News Recommendation with Multi-Head
          Self-Attention (NRMS), EMNLP](https://aclanthology.org/D19-1671/),
          Section 2, eqs. (1)-(2) (words) and (6)-(7) (news).
        - [Vaswani et al., 2017. Attention Is All You Need, NeurIPS](
          https://arxiv.org/abs/1706.03762) (scaled dot-product attention).
    """

    def __init__(
        self,
        num_heads: int,
        head_dim: int,
        dropout: float = 0.0,
        use_bias: bool = False,
        kernel_initializer: str | keras.initializers.Initializer = ("glorot_uniform"),
        bias_initializer: str | keras.initializers.Initializer = "zeros",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_heads <= 0 or head_dim <= 0:
            raise ValueError(
                "num_heads and head_dim must be positive, got "
                f"{num_heads} and {head_dim}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = seed
        self.supports_masking = True
        self.dropout_layer = (
            keras.layers.Dropout(self.dropout, seed=seed)
            if self.dropout > 0.0
            else None
        )

    @property
    def output_dim(self) -> int:
        """Width of the output, `num_heads * head_dim`."""
        return self.num_heads * self.head_dim

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = input_shape[-1]
        if dim is None:
            raise ValueError("The last input dimension must be known.")
        # Q, K and V projections of all heads in one [D, 3 * h * d] kernel,
        # columns ordered (q|k|v, head, dim).
        self.qkv_kernel = self.add_weight(
            name="qkv_kernel",
            shape=(dim, 3 * self.output_dim),
            initializer=self.kernel_initializer,
        )
        self.qkv_bias = (
            self.add_weight(
                name="qkv_bias",
                shape=(3 * self.output_dim,),
                initializer=self.bias_initializer,
            )
            if self.use_bias
            else None
        )
        self.built = True

    def _column_scale(self, dtype: Any) -> Any:
        # 1/sqrt(head_dim) on the query columns, 1 on key and value columns.
        scale = [self.head_dim**-0.5] * self.output_dim + [1.0] * (2 * self.output_dim)
        return ops.convert_to_tensor(scale, dtype=dtype)

    def call(self, inputs: Any, mask: Any | None = None, training: bool = False) -> Any:
        batch = ops.shape(inputs)[0]
        length = ops.shape(inputs)[1]
        # Scaling the [D, 3hd] kernel costs nothing next to scaling the
        # [B, h, L, L] logits (or the [B, h, L, d] queries) on every call.
        scale = self._column_scale(inputs.dtype)
        qkv = ops.matmul(inputs, ops.cast(self.qkv_kernel, inputs.dtype) * scale)
        if self.qkv_bias is not None:
            qkv = qkv + ops.cast(self.qkv_bias, inputs.dtype) * scale
        qkv = ops.reshape(qkv, (batch, length, 3, self.num_heads, self.head_dim))
        query, key, value = ops.unstack(
            ops.transpose(qkv, (2, 0, 3, 1, 4)), num=3, axis=0
        )  # each [B, h, L, d]
        logits = ops.matmul(query, ops.swapaxes(key, -1, -2))  # [B, h, L, L]
        if mask is not None:
            # Additive key mask, [B, 1, 1, L]: 0 for real keys, a large
            # negative for padding, so exp() gives exactly 0 there. Cheaper
            # than a select over the [B, h, L, L] logits and fused with the
            # matmul by oneDNN on CPU.
            padding = 1.0 - ops.cast(mask, logits.dtype)
            bias = padding * ops.cast(large_negative(logits.dtype), logits.dtype)
            logits = logits + bias[:, None, None, :]
        probs = ops.softmax(logits, axis=-1)
        if self.dropout_layer is not None:
            probs = self.dropout_layer(probs, training=training)
        context = ops.matmul(probs, value)  # [B, h, L, d]
        context = ops.transpose(context, (0, 2, 1, 3))  # [B, L, h, d]
        return ops.reshape(context, (batch, length, self.output_dim))

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None, ...]:
        return tuple(input_shape[:-1]) + (self.output_dim,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "seed": self.seed,
            }
        )
        return config
