"""Pre-processing corrections: one module per correction or family, registered on import.

Every module of this package is imported here, so a new correction is a new
module with one ``@register``-ed factory and nothing else.
`stitch` (joining scans taken at several positions, used by `tomosnake.io.stitched_scan`)
registers nothing.
"""

from __future__ import annotations

import importlib
import pkgutil

from tomosnake.corrections.base import (
    FULL,
    REGISTRY,
    Context,
    Facts,
    Needs,
    Step,
    configured_steps,
    register,
)

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["FULL", "REGISTRY", "Context", "Facts", "Needs", "Step", "configured_steps", "register"]
