"""The UTPM rows of the paper's Tables 2-4, each a config of its own for the tags registry.

The tables build UTPM up one part at a time, so each row is the previous one plus one change:

| registry name | row | heads | query | cross | loss |
|---|---|---|---|---|---|
| `youtube_dnn` | YouTube (baseline, `youtube_dnn.py`) | | | | |
| `utpm_af1_unshared` | AF-1head-unshared (Table 2) | 1 | one per unit | none | separate |
| `utpm_af1` | AF-1head (Table 2) | 1 | shared | none | separate |
| `utpm_af2` | AF-2head (Table 2) | 2 | shared | none | separate |
| `utpm_af2_cf` | AF-2head+CF (Table 3) | 2 | shared | fm | separate |
| `utpm_af2_afm`, `_nfm`, `_dcn`, `_autoint` | Table 3's CF alternatives | 2 | shared | afm, nfm, dcn, autoint | separate |
| `utpm` | + joint loss (Table 4): the full model | 2 | shared | fm | joint |

*Choice:* the rows before Table 4 train with the separate loss, because the paper adds the
joint loss last (Table 4 compares it with the separate loss on the AF-2head+CF model), so every
row differs from the one before it by exactly one part. Each variant is a subclass of
`UTPMConfig` with other defaults (FUM's and MFN's ablations do the same), so presets (`tiny`)
and overrides apply on top, and a saved variant loads as a `UTPMConfig` with the same values.
"""

from __future__ import annotations

import dataclasses

from trainer.tags.models.utpm import UTPMConfig

__all__ = ["VARIANTS"]


@dataclasses.dataclass
class UTPMAF1UnsharedConfig(UTPMConfig):
    """Table 2's AF-1head-unshared: one head, each attention unit with its own query."""

    heads: int = 1
    shared_query: bool = False
    cross: str = "none"
    loss: str = "separate"


@dataclasses.dataclass
class UTPMAF1Config(UTPMConfig):
    """Table 2's AF-1head: one head, one query shared by its units."""

    heads: int = 1
    cross: str = "none"
    loss: str = "separate"


@dataclasses.dataclass
class UTPMAF2Config(UTPMConfig):
    """Table 2's AF-2head: two heads with shared queries, no cross layer."""

    cross: str = "none"
    loss: str = "separate"


@dataclasses.dataclass
class UTPMAF2CFConfig(UTPMConfig):
    """Table 3's AF-2head+CF: UTPM's cross layer (eq. 3), still the separate loss."""

    loss: str = "separate"


@dataclasses.dataclass
class UTPMAF2AFMConfig(UTPMConfig):
    """Table 3: AF-2head with AFM in place of the CF layer."""

    cross: str = "afm"
    loss: str = "separate"


@dataclasses.dataclass
class UTPMAF2NFMConfig(UTPMConfig):
    """Table 3: AF-2head with NFM in place of the CF layer."""

    cross: str = "nfm"
    loss: str = "separate"


@dataclasses.dataclass
class UTPMAF2DCNConfig(UTPMConfig):
    """Table 3: AF-2head with DCN's cross network (keras-rs FeatureCross: DCN-v2) in place of CF."""

    cross: str = "dcn"
    loss: str = "separate"


@dataclasses.dataclass
class UTPMAF2AutoIntConfig(UTPMConfig):
    """Table 3: AF-2head with AutoInt's interacting layers in place of the CF layer."""

    cross: str = "autoint"
    loss: str = "separate"


VARIANTS: dict[str, type[UTPMConfig]] = {
    "utpm_af1_unshared": UTPMAF1UnsharedConfig,
    "utpm_af1": UTPMAF1Config,
    "utpm_af2": UTPMAF2Config,
    "utpm_af2_cf": UTPMAF2CFConfig,
    "utpm_af2_afm": UTPMAF2AFMConfig,
    "utpm_af2_nfm": UTPMAF2NFMConfig,
    "utpm_af2_dcn": UTPMAF2DCNConfig,
    "utpm_af2_autoint": UTPMAF2AutoIntConfig,
}
"""Registry name → config class of every Table 2-3 row (the full model is `utpm`)."""
