"""The tag-profiling family's Transform and training settings, in a module of their own: the
pipeline config reads them without importing TensorFlow.

The data protocol (UTPM section 4.1, docs/tags.md) is split between them by who applies it:
the Transform keeps each catalog article's first N tags and genres; the trainer and the
exported model build the user fields from rated history (the same code in both, so training
and serving agree) and turn later ratings into clicks.
"""

from __future__ import annotations

import dataclasses

from trainer.config_base import DictConfig, TrainingConfig


@dataclasses.dataclass
class TagsTransformConfig(DictConfig):
    """Sizes fixed at Transform time (TFX ``custom_config``) and read again by the trainer."""

    field_length: int = 10
    """H: ids kept per multi-valued user field (history tags, genres); UTPM Table 1,
    MovieLens: 10."""
    tags_per_article: int = 3
    """N: tags kept per article, the most applied first (UTPM Table 1, MovieLens: 3)."""
    genres_per_article: int = 10
    """Genres kept per article (MovieLens movies have at most 10)."""
    max_tags: int = 100_000
    """Tag vocabulary cap (most frequent over the catalog's kept tags first)."""

    def __post_init__(self) -> None:
        for name in ("field_length", "tags_per_article", "genres_per_article", "max_tags"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")


@dataclasses.dataclass
class TagsTrainingConfig(TrainingConfig):
    """The generic training config plus the click protocol of UTPM section 4.1 (MovieLens)."""

    model: str = "youtube_dnn"
    positive_rating: float = 3.5
    """A rating at least this is a click (label 1); its article's tags are a positive history
    item's tags in the user fields and the eval label's tags."""
    negative_rating: float = 1.5
    """A rating at most this is a non-click (label 0); ratings in between are dropped."""
    field_fraction: float = 0.8
    """Training samples: the first share of each train sequence builds the user fields, the
    rest are the labelled articles (so the eval events stay unseen)."""
    top_k: int = 10
    """Tags returned by the `user_tags` signature (fewer if the vocabulary has fewer)."""
    eval_ks: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 3])
    """Prec@K cut-offs of the Trainer's reference eval: UTPM's MovieLens K; the pipeline sets the
    news K {1, 5, 10, 20, 50} on MIND (`Family.dataset_training`), as TFMA's gate metrics."""
    sampled_negatives: int = 0
    """Per labelled article, this many un-clicked *pseudo-articles* of N tags drawn uniformly
    from the tag vocabulary, each with the same user's fields (0: the paper's protocol, rated
    articles only). Why (docs/tags.md, "Why the models sat at chance"): liked-vs-disliked
    articles teach which of a user's tags they like, not which tags their next articles carry,
    which is what Prec@K counts; against uniform tags, BCE's optimum scores a tag by how often
    it occurs in the user's clicked articles."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.field_fraction < 1.0:
            raise ValueError(f"field_fraction: must be in (0, 1), got {self.field_fraction}")
        if self.negative_rating >= self.positive_rating:
            raise ValueError(f"negative_rating: must be below positive_rating ({self.positive_rating}), "
                             f"got {self.negative_rating}")
        if self.top_k < 1:
            raise ValueError(f"top_k: must be at least 1, got {self.top_k}")
        if not self.eval_ks or any(int(k) < 1 for k in self.eval_ks):
            raise ValueError(f"eval_ks: must be cut-offs of at least 1, got {self.eval_ks}")
        if self.sampled_negatives < 0:
            raise ValueError(f"sampled_negatives: must be at least 0, got {self.sampled_negatives}")
