"""Snakemake script: join the reconstructed blocks into the scan's volume file and write the run's config."""
import json
from pathlib import Path

from tomosnake import jobs
from tomosnake.stages.combine import combine
from tomosnake.stages.plan import Plan

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
conv_range = json.loads(Path(smk.input.range).read_text())
sha_file = getattr(smk.input, "sha", None)  # named input only when output.input_sha256 is on
sha = Path(sha_file).read_text() if sha_file else None
combine(list(smk.input.recon), Plan.read(smk.input.plan), cfg, conv_range, smk.output.volume,
        config_path=smk.output.config, input_sha256=sha)
