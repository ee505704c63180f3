"""Sibling gating: the combined blessing and the resolver that finds the next baseline.

A model compared with a sibling of its run (DIN against Embedding&MLP) is pushed only when both
its own gate and the comparison bless it, and only such a model may become the baseline of its
next run: a DIN that passed its own gate but lost to its sibling must not be found.
"""

import os

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.types import standard_artifacts

from components import gating
from components.blessing import CombinedBlessing, is_blessed

_combine = CombinedBlessing.EXECUTOR_SPEC.executor_class._FUNCTION


def _blessing(blessed: int, **extra) -> standard_artifacts.ModelBlessing:
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("blessed", blessed)
    for key, value in extra.items():
        (blessing.set_int_custom_property if isinstance(value, int) else blessing.set_string_custom_property)(key, value)
    return blessing


@pytest.mark.parametrize("own, sibling", [(1, 1), (1, 0), (0, 1), (0, 0)])
def test_blessed_only_when_both_gates_bless(tmp_path, own, sibling):
    model = standard_artifacts.Model()
    model.uri, model.id = str(tmp_path / "model"), 7
    out = standard_artifacts.ModelBlessing()
    out.uri = str(tmp_path / "blessing")
    _combine(model=model, own_gate=_blessing(own, baseline_model="/runs/m/1", baseline_model_id=3),
             sibling_gate=_blessing(sibling), blessing=out)
    both = bool(own and sibling)
    assert is_blessed(out) is both
    assert out.get_int_custom_property("current_model_id") == 7
    assert out.get_string_custom_property("current_model") == model.uri
    assert out.get_int_custom_property("baseline_model_id") == 3  # from the model's own gate
    assert os.listdir(out.uri) == ["BLESSED" if both else "NOT_BLESSED"]


class _Store:
    """An in-memory MLMD store with just what the resolver reads: node contexts, executions,
    output and input events."""

    def __init__(self):
        config = metadata_store_pb2.ConnectionConfig()
        config.fake_database.SetInParent()
        self.store = metadata_store.MetadataStore(config)
        self._context_type = self.store.put_context_type(metadata_store_pb2.ContextType(name="node"))
        self._execution_type = self.store.put_execution_type(metadata_store_pb2.ExecutionType(name="run"))
        self.artifacts = []

    def run(self, node: str, outputs=(), inputs=()) -> None:
        """One execution of `node` (context `pipeline.<node>`) with its input and output artifacts."""
        context = metadata_store_pb2.Context(type_id=self._context_type, name=f"usermodel.{node}")
        existing = self.store.get_context_by_type_and_name("node", context.name)
        context_id = existing.id if existing else self.store.put_contexts([context])[0]
        [execution_id] = self.store.put_executions([metadata_store_pb2.Execution(type_id=self._execution_type)])
        events = [metadata_store_pb2.Event(artifact_id=a.id, execution_id=execution_id,
                                           type=metadata_store_pb2.Event.OUTPUT) for a in outputs]
        events += [metadata_store_pb2.Event(artifact_id=a.id, execution_id=execution_id,
                                            type=metadata_store_pb2.Event.INPUT) for a in inputs]
        self.store.put_events(events)
        self.store.put_attributions_and_associations(
            [metadata_store_pb2.Attribution(context_id=context_id, artifact_id=a.id) for a in (*outputs, *inputs)],
            [metadata_store_pb2.Association(context_id=context_id, execution_id=execution_id)],
        )

    def put(self, artifact):
        artifact_type = self.store.put_artifact_type(metadata_store_pb2.ArtifactType(name=artifact.type_name))
        artifact.type_id = artifact_type
        [artifact.id] = self.store.put_artifacts([artifact.mlmd_artifact])
        self.artifacts.append(artifact)
        return artifact


def _model(store: _Store, trainer: str):
    model = store.put(standard_artifacts.Model())
    store.run(trainer, outputs=[model])
    return model


def _gate(store: _Store, node: str, model, blessed: int):
    blessing = store.put(_blessing(blessed, current_model_id=model.id))
    store.run(node, outputs=[blessing], inputs=[model])
    return blessing


def test_baseline_is_the_latest_model_blessed_by_the_combined_gate():
    s = _Store()
    first = _model(s, "Trainer.din")
    for node in ("Evaluator.din", "Compare.din", "Blessing.din"):
        _gate(s, node, first, 1)
    second = _model(s, "Trainer.din")  # passed its own gate, lost to Embedding&MLP
    own = _gate(s, "Evaluator.din", second, 1)
    lost = _gate(s, "Compare.din", second, 0)
    _gate(s, "Blessing.din", second, 0)
    s.run("Blessing.din", inputs=[own, lost])  # the combined gate reads the two blessings
    other = _model(s, "Trainer.embedding_mlp")  # blessed, newer, but another Trainer's
    _gate(s, "Evaluator.embedding_mlp", other, 1)

    models = [first, second, other]
    blessings = [a for a in s.artifacts if isinstance(a, standard_artifacts.ModelBlessing)]

    def resolve(blessing_id):
        strategy = gating.LatestBlessedModelOf("Trainer.din", blessing_id)
        found = strategy.resolve_artifacts(s.store, {"model": list(models), "model_blessing": list(blessings)})
        return [m.id for m in found["model"]]

    assert resolve("Blessing.din") == [first.id]  # not `second`: it lost the comparison
    assert resolve("Evaluator.din") == [second.id]  # its own gate alone would have taken it
