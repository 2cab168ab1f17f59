"""Reconstruction of sinogram blocks: the chain (`chain`), its steps (`steps`), backends; laminography slabs (`lamino`)."""

from tomosnake.recon.backends import BackendUnavailable, check_backend, require_backend
from tomosnake.recon.chain import (
    block_overhead_bytes,
    conversion_range,
    convert,
    output_width,
    reconstruct_block,
    slice_bytes,
)

__all__ = [
    "BackendUnavailable",
    "block_overhead_bytes",
    "check_backend",
    "conversion_range",
    "convert",
    "output_width",
    "reconstruct_block",
    "require_backend",
    "slice_bytes",
]
