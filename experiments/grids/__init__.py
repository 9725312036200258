"""One declarative spec per figure: a module in this folder defining GRID (plain data).

Keys of a GRID: tasks, methods, seeds (a count: seeds 0..k-1), setting, scale, overrides
(run-config keys applied to every run), description. Later figures are added by adding a module.
"""
from __future__ import annotations

import importlib
import pkgutil


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str) -> dict:
    names = available()
    if name not in names:
        raise KeyError(f"unknown figure {name!r}; valid figures: {', '.join(names)}")
    return dict(importlib.import_module(f"{__name__}.{name}").GRID)
