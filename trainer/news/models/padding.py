"""Skipping the work spent on padding in news encoders.

A training batch of a news-ranking model encodes `B * (H + C)` articles whose
titles are padded to a fixed length (30 tokens for NRMS/FUM), and a share of
the history slots are padding too (users with fewer than `H` clicks). MIND
titles average about 11 words, so most of the news encoder's work is spent on
padding positions whose outputs are then masked away.

`encode_by_length` removes that work without changing any real output: it
sorts the articles by their real length (0 for padded slots), splits them
into a few groups of equal size and trims each group's token fields to the
longest title in the group, the layout used by variable-length ("unpadded")
attention kernels. Because every attention in the encoders masks padding
exactly (masked keys get a weight of exactly zero, and pooling gives padded
positions zero weight), an article's vector is the same, up to float
summation order, whichever group it lands in.

Trimming needs shapes that depend on the data, so it runs only where they
are allowed: the TensorFlow backend without XLA (the TFX Trainer and the TF
Serving export). Under JAX or with `jit_compile`, the batch is encoded as one
padded block, which is the same computation. `map_by_length` is the general
grouping; FUM's fine-grained user model instead packs its documents' real
tokens along one axis (`trainer/news/models/fum.py`), asking `trimming_allowed()`.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator

import keras
from keras import ops

__all__ = [
    "DEFAULT_GROUPS",
    "dynamic_shapes",
    "encode_by_length",
    "map_by_length",
    "real_lengths",
    "trimming_allowed",
]

#: Groups per batch. More groups trim closer to each row's length but run
#: more, smaller kernels; 16 was the fastest of 1, 2, 4, 8, 16, 32 for NRMS at
#: the benchmark setting (docs/benchmarks.md, "Skipping padding").
DEFAULT_GROUPS = 16

#: Rows per group below which a batch of known size gets fewer groups.
MIN_GROUP_ROWS = 64

_state = threading.local()


@contextlib.contextmanager
def dynamic_shapes(jit_compile: Any) -> Iterator[None]:
    """Within this block, layers trim padding only if `jit_compile` is off.

    A model knows whether its step is compiled with XLA (`Model.jit_compile`);
    its layers do not. The model enters this block around its call, and
    layers ask `trimming_allowed()` while they are traced.
    """
    previous = getattr(_state, "jit_compile", None)
    _state.jit_compile = bool(jit_compile)
    try:
        yield
    finally:
        _state.jit_compile = previous


def trimming_allowed() -> bool:
    """Whether tensors may take data-dependent shapes here.

    True under the TensorFlow backend unless the enclosing model compiles
    its step with XLA (see `dynamic_shapes`); JAX and XLA need static shapes.
    """
    return keras.backend.backend() == "tensorflow" and not getattr(_state, "jit_compile", False)


def real_lengths(tokens: Any) -> Any:
    """Index of the last non-padding token plus one, per row of `[N, L]`.

    Counting from the last real token (rather than counting real tokens)
    keeps a row whole when a padding id occurs inside it.
    """
    length = tokens.shape[-1]
    if length is None:
        length = ops.shape(tokens)[-1]
    positions = ops.arange(1, length + 1, dtype="int32")
    real = ops.cast(ops.not_equal(tokens, 0), "int32")
    return ops.max(real * positions, axis=-1, initial=0)


def map_by_length(
    fn: Callable[[dict[str, Any], Any], Any],
    inputs: dict[str, Any],
    lengths: Any,
    groups: int = DEFAULT_GROUPS,
) -> Any:
    """`fn` applied to the rows of `inputs` in groups of similar length.

    Sorts the rows (axis 0 of every entry) by `lengths`, longest first,
    splits them into `groups` groups of equal size and calls
    `fn(group_inputs, width)` on each, where `width` is the longest length in
    the group (at least 1). The results (`[n, ...]` per group) are put back
    in the original row order.

    Where trimming is not allowed (`trimming_allowed()` is false) this is
    `fn(inputs, None)`: one group, nothing trimmed.
    """
    if not trimming_allowed():
        return fn(inputs, None)
    rows = ops.shape(lengths)[0]
    if isinstance(rows, int):
        # A known, small batch (eager calls, single requests): fewer groups,
        # each worth its kernel launches.
        groups = max(1, min(groups, rows // MIN_GROUP_ROWS))
    # `groups` all-padding rows sorted after every real row keep each group
    # non-empty when there are fewer rows than groups (some layers, e.g.
    # Conv1D, fail on an empty batch); their outputs are dropped below.
    lengths = ops.concatenate([ops.cast(lengths, "int32"), -ops.ones((groups,), "int32")])
    inputs = {
        k: ops.concatenate(
            [x, ops.broadcast_to(ops.zeros((), x.dtype), [groups] + list(ops.shape(x)[1:]))]
        )
        for k, x in inputs.items()
    }
    order = ops.argsort(-lengths)
    lengths = ops.take(lengths, order, axis=0)
    inputs = {k: ops.take(x, order, axis=0) for k, x in inputs.items()}
    total = rows + groups
    outputs = []
    for g in range(groups):
        start, stop = total * g // groups, total * (g + 1) // groups
        width = ops.max(lengths[start:stop], initial=1)  # at least one position
        outputs.append(fn({k: x[start:stop] for k, x in inputs.items()}, width))
    # Real rows hold the first `rows` sorted places; put them back in order.
    return ops.take(ops.concatenate(outputs, axis=0)[:rows], ops.argsort(order[:rows]), axis=0)


def encode_by_length(
    encode: Callable[[dict[str, Any]], Any],
    news: dict[str, Any],
    valid: Any | None = None,
    groups: int = DEFAULT_GROUPS,
) -> Any:
    """`encode(news)` with the padded positions of token fields skipped.

    Args:
        encode: maps `{field: [n, ...]}` to vectors `[n, D]`; must give every
            article the same vector however far its token fields are
            right-trimmed past the article's last real token.
        news: `{field: [N, ...]}`; fields of rank 2 are token ids (0 =
            padding), the others are per-article ids.
        valid: optional `[N]`, nonzero for real articles. Padded slots are
            encoded as all-padding articles (their token fields zeroed), so
            they cost almost nothing; their vectors are whatever the encoder
            gives an empty article.
        groups: number of length groups.

    Returns:
        `[N, D]` in the order of `news`.
    """
    text = [f for f, x in news.items() if len(x.shape) == 2]
    if valid is not None:
        keep = ops.cast(ops.not_equal(valid, 0), "int32")
        news = {
            f: x * ops.cast(keep[:, None], x.dtype) if f in text else x for f, x in news.items()
        }
    if not text:
        return encode(news)

    def trimmed(part: dict[str, Any], width: Any) -> Any:
        if width is not None:
            # Each token field to its own longest row in the group.
            part = {
                f: x[:, : ops.max(real_lengths(x), initial=1)] if f in text else x
                for f, x in part.items()
            }
        return encode(part)

    lengths = real_lengths(news[text[0]])
    for f in text[1:]:
        lengths = ops.maximum(lengths, real_lengths(news[f]))
    return map_by_length(trimmed, news, lengths, groups)
