"""Helpers shared by the synthetic MIND and MovieLens generators: seeded random streams,
config checks, named presets and made-up words."""

from __future__ import annotations

from typing import Any

import numpy as np

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_SYLLABLES = tuple(c + v for c in _CONSONANTS for v in _VOWELS)
_SECONDS_PER_DAY = 86_400

# Independent random streams, so e.g. the latent world (and so `oracle_scores`) does not
# depend on how many impressions are generated.
_WORLD_STREAM, _TEXT_STREAM, _BEHAVIOR_STREAM = 0, 1, 2


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


def _check_range(name: str, value: tuple[int, int], minimum: int) -> None:
    low, high = value
    if not minimum <= low <= high:
        raise ValueError(f"{name} must satisfy {minimum} <= low <= high, got {value}")


def _check_share(name: str, value: float, *, open_ends: bool = False) -> None:
    ok = 0.0 < value < 1.0 if open_ends else 0.0 <= value <= 1.0
    if not ok:
        raise ValueError(f"{name} must be in {'(0, 1)' if open_ends else '[0, 1]'}, got {value}")


def _preset(cls: type, presets: dict[str, dict[str, Any]], name: str) -> Any:
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(presets)}")
    return cls(**presets[name])


def _make_words(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` distinct made-up lowercase words of 2 or 3 consonant-vowel syllables."""
    s = len(_SYLLABLES)
    space = s**2 + s**3
    if count > space:
        raise ValueError(f"cannot make {count} distinct words (at most {space})")
    return [_decode_word(int(code)) for code in rng.choice(space, size=count, replace=False)]


def _decode_word(code: int) -> str:
    s = len(_SYLLABLES)
    if code < s * s:
        parts: tuple[int, ...] = divmod(code, s)
    else:
        first, rest = divmod(code - s * s, s * s)
        parts = (first, *divmod(rest, s))
    return "".join(_SYLLABLES[p] for p in parts)
