"""Rule vds_merge: one virtual DXchange dataset over the k pre-processed chunk files; copies no projection data.

The same job saves the report's previews (`tomosnake.report.previews`): one process start-up less.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tomosnake.io.vds import stack
from tomosnake.stages.plan import Plan


def vds_merge(chunks: Sequence[str | Path], plan: Plan, out_path: str | Path) -> tuple[int, ...]:
    """Write ``out_path``: the chunks' ``exchange/data`` end to end, with the scan's angles. Returns its shape."""
    return stack(list(chunks), out_path, extra={"exchange/theta": plan.theta_deg})
