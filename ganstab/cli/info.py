"""`ganstab presets` and `ganstab keys`: what can be configured."""

from __future__ import annotations

import argparse
import json

from ganstab.config import Config, key_help, known_keys, to_dict
from ganstab.presets import PRESETS

__all__ = ["cmd_presets", "cmd_keys", "register"]


def cmd_presets(args: argparse.Namespace) -> int:
    """List the presets with one line each."""
    width = max(len(n) for n in PRESETS)
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  {preset.description}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    """List every config key with its default, what it applies to and a one-line description."""
    defaults = to_dict(Config())
    for key in known_keys():
        node = defaults
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        description, applies = key_help(key)
        print(f"{key} = {json.dumps(node)}  [{applies}]  {description}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `presets` and `keys` commands."""
    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(func=cmd_presets)
    p = sub.add_parser("keys", help="list every config key: default, what it applies to, description")
    p.set_defaults(func=cmd_keys)
