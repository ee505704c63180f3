"""Fastformer: additive attention in linear time, with a padding mask.

FUM (Qi et al., 2022) models a user's clicked news as one long document (50
clicks x 32 tokens = 1,600 tokens); quadratic self-attention over it is what
makes fine-grained user modeling slow, and Fastformer's additive attention is
the paper's answer. The official FUM code feeds the 1,600 tokens to Fastformer
without a mask, so padded clicks and padded title slots take part in the global
query and key; here padding gets exactly zero weight.

Besides the usual padded `[B, N, D]` batch, the layer takes *packed* input:
the real tokens of all sequences along one axis, `[N_total, D]`, with the
sequence of each token (`segment_ids`). Its cost is then proportional to the
number of real tokens, which is how FUM's fine-grained model skips the
padding of its user documents (`trainer/news/models/fum.py`).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from trainer.layers.attention import masked_softmax, segment_softmax, segment_sum

__all__ = ["Fastformer"]


@keras.saving.register_keras_serializable(package="usermodel")
class Fastformer(keras.layers.Layer):
    """Multi-head Fastformer attention (Wu et al., 2021, Section 3.2).

    For inputs `x_1 .. x_N` and each head (width `d`, vectors split per head):

    ```
    q_i = W_q x_i,  k_i = W_k x_i,  v_i = W_v x_i             # eq. 1 (Q, K, V)
    alpha_i = softmax_i(w_q^T q_i / sqrt(d))                  # eq. 3
    q       = sum_i alpha_i q_i               (global query)  # eq. 4
    p_i     = q * k_i                 (query-key interaction) # eq. 5
    beta_i  = softmax_i(w_k^T p_i / sqrt(d))                  # eq. 6
    k       = sum_i beta_i p_i                  (global key)  # eq. 7
    u_i     = k * v_i                 (key-value interaction) # eq. 8
    r_i     = W_o u_i + q_i           (value transform, residual query)
    ```

    `*` is the element-wise product; each head has its own `w_q`, `w_k`
    (`[d]`). The cost is `O(N)` in the sequence length, against `O(N^2)` for
    self-attention.

    Masking: positions with `mask == 0` get `alpha_i = beta_i = 0`, so the
    outputs at real positions do not depend on padded inputs. Outputs at
    padded positions are finite and meaningless (downstream pooling must mask
    them). A row without a real position has zero global query and key.

    Args:
        num_heads: int. Number of heads (FUM's official setting: 3).
        head_dim: int. Width of each head (FUM's official setting: 40); the
            output is `num_heads * head_dim` wide.
        use_bias: bool. Whether the projections have biases.
        share_query_value: bool. Use the query projection as the value
            projection (`W_v = W_q`): the query-value parameter sharing the
            Fastformer paper proposes, and what the official FUM code does;
            one projection fewer over the long user document.
        kernel_initializer: initializer of all kernels.
        bias_initializer: initializer of the biases.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: float tensor `[B, N, D]`, or packed `[N, D]` with
            `segment_ids`.
        mask: optional `[B, N]` (packed: `[N]`), nonzero / True for real
            positions.
        segment_ids: optional int `[N]`: packed input, the sequence
            (`0 .. num_segments - 1`) of each token.
        num_segments: number of sequences of packed input.

    Returns:
        A tensor `[B, N, num_heads * head_dim]` (packed: `[N, h * d]`).

    Example:

    ```python
    layer = Fastformer(num_heads=3, head_dim=40)
    x = np.random.normal(size=(2, 1600, 300)).astype("float32")
    mask = np.arange(1600)[None] < np.array([[1600], [320]])
    y = layer(x, mask=mask)  # [2, 1600, 120]
    ```

    References:
        - [Wu, Wu, Qi, Huang and Xie, 2021. Fastformer: Additive Attention
          Can Be All You Need](https://arxiv.org/abs/2108.09084), Section 3.2,
          eqs. (1)-(8).
        - [Qi, Wu, Wu and Huang, 2022. FUM: Fine-grained and Fast User
          Modeling for News Recommendation, SIGIR](
          https://arxiv.org/abs/2204.04727), Section 3 (Fastformer as the
          fine-grained user model).
    """

    def __init__(
        self,
        num_heads: int,
        head_dim: int,
        use_bias: bool = True,
        share_query_value: bool = False,
        kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        bias_initializer: str | keras.initializers.Initializer = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_heads <= 0 or head_dim <= 0:
            raise ValueError(
                "num_heads and head_dim must be positive, got "
                f"{num_heads} and {head_dim}."
            )
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.use_bias = bool(use_bias)
        self.share_query_value = bool(share_query_value)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    @property
    def output_dim(self) -> int:
        """Width of the output, `num_heads * head_dim`."""
        return self.num_heads * self.head_dim

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = input_shape[-1]
        if dim is None:
            raise ValueError("The last input dimension must be known.")
        width = self.output_dim
        # W_q, W_k (and W_v unless shared with W_q) in one [D, n * h * d]
        # kernel.
        projections = 2 if self.share_query_value else 3
        self.qkv_kernel = self.add_weight(
            name="qkv_kernel", shape=(dim, projections * width), initializer=self.kernel_initializer
        )
        self.qkv_bias = (
            self.add_weight(
                name="qkv_bias", shape=(projections * width,), initializer=self.bias_initializer
            )
            if self.use_bias
            else None
        )
        # Per-head additive-attention vectors w_q and w_k (eqs. 3 and 6).
        self.query_attention = self.add_weight(
            name="query_attention",
            shape=(self.num_heads, self.head_dim),
            initializer=self.kernel_initializer,
        )
        self.key_attention = self.add_weight(
            name="key_attention",
            shape=(self.num_heads, self.head_dim),
            initializer=self.kernel_initializer,
        )
        self.output_kernel = self.add_weight(
            name="output_kernel", shape=(width, width), initializer=self.kernel_initializer
        )
        self.output_bias = (
            self.add_weight(
                name="output_bias", shape=(width,), initializer=self.bias_initializer
            )
            if self.use_bias
            else None
        )
        self.built = True

    def _head_logits(self, values: Any, attention: Any) -> Any:
        """Per-head logits `w^T x / sqrt(d)` of `[..., h * d]` values, `[..., h]`.

        One product with a block-diagonal `[h * d, h]` matrix for all heads.
        """
        heads = self.num_heads
        eye = ops.eye(heads, dtype=values.dtype)
        block = ops.cast(attention, values.dtype)[:, :, None] * eye[:, None, :]
        block = ops.reshape(block, (self.output_dim, heads)) * (self.head_dim**-0.5)
        return ops.matmul(values, block)

    def _pool_rows(self, values: Any, attention: Any, mask: Any | None) -> Any:
        """Per-head additive pooling of a padded `[B, N, h * d]` into `[B, 1, h * d]`.

        Matmuls on the flat layout: the weighted sums of all heads are one
        `[B, h, N] x [B, N, h * d]` product whose diagonal blocks (head k's
        weights on head k's columns) are kept.
        """
        heads = self.num_heads
        logits = ops.transpose(self._head_logits(values, attention), (0, 2, 1))  # [B, h, N]
        weights = masked_softmax(logits, None if mask is None else mask[:, None, :], axis=-1)
        mixed = ops.reshape(ops.matmul(weights, values), (-1, heads, heads, self.head_dim))
        pooled = ops.sum(mixed * ops.eye(heads, dtype=values.dtype)[None, :, :, None], axis=1)
        return ops.reshape(pooled, (-1, 1, self.output_dim))

    def _pool_segments(
        self, values: Any, attention: Any, mask: Any, segments: Any, num_segments: Any
    ) -> Any:
        """Per-head additive pooling of packed `[N, h * d]` values into `[S, h * d]`."""
        weights = segment_softmax(self._head_logits(values, attention), segments, num_segments, mask)
        # Each head's weight on its own columns, by broadcasting over [N, h, d].
        heads_view = ops.reshape(values, (-1, self.num_heads, self.head_dim))
        weighted = ops.reshape(weights[:, :, None] * heads_view, (-1, self.output_dim))
        return segment_sum(weighted, segments, num_segments)

    def call(
        self,
        inputs: Any,
        mask: Any | None = None,
        segment_ids: Any | None = None,
        num_segments: Any | None = None,
    ) -> Any:
        width = self.output_dim
        kernel = ops.cast(self.qkv_kernel, inputs.dtype)
        # One product per column block of the fused kernel gives contiguous
        # Q, K and V (slicing one [..., 3hd] product would copy them).
        projected = [
            ops.matmul(inputs, kernel[:, i * width : (i + 1) * width])
            for i in range(kernel.shape[1] // width)
        ]  # eq. 1
        if self.qkv_bias is not None:
            bias = ops.cast(self.qkv_bias, inputs.dtype)
            projected = [x + bias[i * width : (i + 1) * width] for i, x in enumerate(projected)]
        query, key = projected[0], projected[1]
        value = query if self.share_query_value else projected[2]
        if segment_ids is None:
            # A padded batch [B, N, D]: pool over each row; [B, 1, hd] broadcasts.
            mask = None if mask is None else ops.cast(mask, "bool")
            pool = lambda v, w: self._pool_rows(v, w, mask)  # noqa: E731
            spread = lambda pooled: pooled  # noqa: E731
        else:
            if num_segments is None:
                raise ValueError("Packed input (segment_ids) needs num_segments.")
            mask = ops.ones(ops.shape(segment_ids), "bool") if mask is None else ops.cast(mask, "bool")
            pool = lambda v, w: self._pool_segments(v, w, mask, segment_ids, num_segments)  # noqa: E731
            spread = lambda pooled: ops.take(pooled, segment_ids, axis=0)  # noqa: E731
        global_query = pool(query, self.query_attention)  # eqs. 3-4
        interaction = spread(global_query) * key  # eq. 5
        global_key = pool(interaction, self.key_attention)  # eqs. 6-7
        mixed = spread(global_key) * value  # eq. 8
        outputs = ops.matmul(mixed, ops.cast(self.output_kernel, inputs.dtype))
        if self.output_bias is not None:
            outputs = outputs + ops.cast(self.output_bias, inputs.dtype)
        return outputs + query

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
                "use_bias": self.use_bias,
                "share_query_value": self.share_query_value,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
