"""The CTR family (DESIGN.md sections 2 and 8): a user's behaviour history and one target item
→ click probability, trained pointwise with binary cross-entropy.

Models live in `trainer/ctr/models` (registry `MODELS`); their input dict is fixed by
`trainer/ctr/models/ctr_model.py`, which the family's Transform, input and export code follow.
"""
