"""Segmentation and measurement of the reconstructed volume, chunked like the reconstruction.

``layout`` (which level, slabs, halo and jobs; the checks before any job) · ``segment`` (thresholds from
the histogram, one slab's phases and objects) · ``objects`` (objects counted once across slab faces).
The rules' jobs are `tomosnake.stages.analyze_chunk` and `tomosnake.stages.analysis_merge`.
"""
