"""`usermodel explain`: what a trained model attends to, for one user (a table and an SVG).

Each model's command lives in a module of this package with an `add_parser(explain_sub)`
function; `COMMANDS` lists those modules, so adding an explanation is one module and one entry.
"""

from __future__ import annotations

import argparse
import importlib

COMMANDS: tuple[str, ...] = ("pipeline.explain.mfn", "pipeline.explain.utpm")
"""Modules (dotted paths) whose `add_parser` registers one `usermodel explain <model>` command."""


def add_explain_parser(sub: argparse._SubParsersAction) -> None:
    explain = sub.add_parser("explain", help="show, for one user, what a trained model attends to (table + SVG)")
    explain_sub = explain.add_subparsers(dest="explain_command", required=True)
    for module in COMMANDS:
        importlib.import_module(module).add_parser(explain_sub)
