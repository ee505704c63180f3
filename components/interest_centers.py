"""MFN's interest-centers pre-step: a TFX component that runs Algorithm 1 before MFN's Trainer.

MFN (Xie et al. 2021, Section 3.2) assigns behaviours to interests in the space of *fixed*
pretrained embeddings: for ids, the tables of an auxiliary CTR model "trained on the same
behaviour data by an earlier pipeline step" (here the run's Base, `Trainer.embedding_mlp`), for
title words GloVe. The centers are fitted once per run on users' train histories and shared
by every MFN variant that uses them; the artifact reaches their Trainers through
`TrainerWithInputs` (`TrainingConfig.pre_steps["centers"]`). The work itself is in
`trainer/ctr/centers.py` (no TFX there), which also defines the artifact's files.

No `from __future__ import annotations`: TFX reads the component function's annotations as
objects.
"""

import json

from tfx import types
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from pipeline.configs import ConfigError

AUXILIARY = "embedding_mlp"
"""The model whose item tables are MFN's fixed id embeddings (the run's Base)."""
USERS = ("mfn", "mfn_no_combination")
"""The registered models that read the centers (K is taken from their configs)."""


class InterestCentersArtifact(types.Artifact):
    """A directory with `centers.npz` (fixed tables and centers) and `centers.json` (summary)."""

    TYPE_NAME = "usermodel.InterestCenters"


@tfx.dsl.components.component
def InterestCenters(  # noqa: N802 (a component is named like a class)
    transformed_examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    transform_graph: tfx.dsl.components.InputArtifact[standard_artifacts.TransformGraph],
    auxiliary_model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    centers: tfx.dsl.components.OutputArtifact[InterestCentersArtifact],
    transform_config: tfx.dsl.components.Parameter[str] = "{}",
    num_interests: tfx.dsl.components.Parameter[int] = 4,
    steps: tfx.dsl.components.Parameter[int] = 300,
    batch_size: tfx.dsl.components.Parameter[int] = 128,
    learning_rate: tfx.dsl.components.Parameter[float] = 0.01,
    seed: tfx.dsl.components.Parameter[int] = 0,
    word_vectors: tfx.dsl.components.Parameter[str] = "glove-6b-50d",
    max_users: tfx.dsl.components.Parameter[int] = 20000,
) -> None:
    """Fixed tables of the auxiliary model and GloVe, and Algorithm 1's centers per level."""
    from trainer.ctr import centers as ctr_centers
    from trainer.ctr.config import CTRTransformConfig

    ctr_centers.compute(
        examples_uri=transformed_examples.uri,
        transform_graph_uri=transform_graph.uri,
        model_uri=auxiliary_model.uri,
        out_dir=centers.uri,
        cfg=ctr_centers.CentersConfig(num_interests=num_interests, steps=steps, batch_size=batch_size,
                                      learning_rate=learning_rate, seed=seed, word_vectors=word_vectors,
                                      max_users=max_users),
        transform=CTRTransformConfig.from_dict(json.loads(transform_config)),
    )


def factory(example_gen, transform, trainers, config):
    """The pre-step of `Family.pre_steps` (`pipeline/pipeline.py`): `(InterestCenters.ctr, "centers")`.

    K is the run's MFN models' `num_interests` (they must agree: one centers artifact); the
    seed is the run's training seed; Algorithm 1's steps, batch size and learning rate are the
    family's `training.interest_centers` (`trainer.ctr.config.InterestCentersConfig`).

    Raises:
        ConfigError: the run has no Base to read the fixed tables from, or MFN variants with
            different K.
    """
    del example_gen  # the centers read the transformed train split
    if AUXILIARY not in trainers:
        raise ConfigError(f"models: MFN's interest centers read the item tables of {AUXILIARY}; add it to the models")
    from pipeline.families import family_of

    family = family_of(AUXILIARY)
    registry = family.registry()
    ks = {model: registry.make_config(model, config.model_configs.get(model)).num_interests
          for model in config.models if model in USERS}
    if len(set(ks.values())) > 1:
        raise ConfigError(f"model_configs: {ks} share one interest-centers step and need one num_interests")
    fit = family.training_config_class().from_dict(config.training_for(AUXILIARY)).interest_centers
    node = InterestCenters(
        transformed_examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        auxiliary_model=trainers[AUXILIARY].outputs["model"],
        transform_config=json.dumps(dict(config.families[family.name].transform)),
        num_interests=next(iter(ks.values()), 4),
        steps=fit.steps,
        batch_size=fit.batch_size,
        learning_rate=fit.learning_rate,
        seed=config.training.seed,
    )
    return node.with_id(f"InterestCenters.{family.name}"), "centers"


__all__ = ["AUXILIARY", "InterestCenters", "InterestCentersArtifact", "factory"]
