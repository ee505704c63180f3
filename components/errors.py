"""User mistakes: the one exception type the CLI turns into a one-line message instead of a
stack trace, and argparse checks for counts, durations and output files."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable


class UserError(Exception):
    """A mistake the user can fix (a missing file, a bad config field); the message names it."""


def positive(kind: type = int) -> Callable[[str], int | float]:
    """An argparse `type=` that parses `kind` and rejects values <= 0 with a usage error.

    Steps, windows, batch sizes, widths, concurrency levels and durations must be positive; a
    zero or negative one would otherwise fail deep inside Keras or measure nothing.
    """

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def writable_file(text: str) -> str:
    """An argparse `type=` for an output file: its folder must exist and be writable.

    Checked when the arguments are parsed, so a long benchmark or report does not fail only
    when it writes its results.
    """
    folder = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write in {folder}")
    return text
