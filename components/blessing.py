"""One blessing from two gates: a model that must pass both its own and a sibling comparison.

A model gated against a sibling of the same run (DIN against Embedding&MLP on RelaImpr, MFN
eq. 13) still has its own no-regression gate against its previous blessed version. TFMA takes
one baseline per evaluation, so the pipeline runs two Evaluators and this component blesses the
model only when both did; the Pusher and the next run's baseline resolver read its blessing
(`components/gating.py: LatestBlessedModelOf` looks for blessings of this node for such models),
so a model that failed either gate is neither pushed nor used as a baseline later.

No `from __future__ import annotations` here: TFX reads the function's annotations as types.
"""

import os

from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx.utils import io_utils

BLESSED_KEY = "blessed"
"""The ModelBlessing property the Pusher and the resolver read (TFX's name)."""


def is_blessed(blessing) -> bool:
    """Whether a ModelBlessing artifact says blessed (TFX writes 1 or 0)."""
    return blessing.has_custom_property(BLESSED_KEY) and blessing.get_int_custom_property(BLESSED_KEY) == 1


@tfx.dsl.components.component
def CombinedBlessing(  # noqa: N802 (a TFX component is named like a class)
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    own_gate: tfx.dsl.components.InputArtifact[standard_artifacts.ModelBlessing],
    sibling_gate: tfx.dsl.components.InputArtifact[standard_artifacts.ModelBlessing],
    blessing: tfx.dsl.components.OutputArtifact[standard_artifacts.ModelBlessing],
) -> None:
    """Blesses `model` when both Evaluators did: its own gate (floors, no regression against its
    previous version) and the comparison with the sibling model of the run.

    The output carries the properties TFX's Evaluator writes (blessed, current model and, from
    the own gate, the baseline), and the BLESSED / NOT_BLESSED marker file.
    """
    blessed = is_blessed(own_gate) and is_blessed(sibling_gate)
    blessing.set_int_custom_property(BLESSED_KEY, int(blessed))
    blessing.set_string_custom_property("current_model", model.uri)
    blessing.set_int_custom_property("current_model_id", model.id)
    for key in ("baseline_model", "baseline_model_id"):
        if own_gate.has_custom_property(key):
            value = own_gate.get_custom_property(key)
            if isinstance(value, int):
                blessing.set_int_custom_property(key, value)
            else:
                blessing.set_string_custom_property(key, str(value))
    # A local path or a bucket URI (Kubeflow); TFX's Evaluator writes its marker the same way.
    io_utils.write_string_file(os.path.join(blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"), "")
