"""Job of the rule combine: join the reconstructed blocks into the scan's volume file and write the
run's config."""
import json
from pathlib import Path

from tomosnake.jobs import Job
from tomosnake.stages.combine import combine
from tomosnake.stages.plan import Plan


def run(job: Job) -> None:
    conv_range = json.loads(Path(job.input.range).read_text())
    sha_file = getattr(job.input, "sha", None)  # named input only when output.input_sha256 is on
    sha = Path(sha_file).read_text() if sha_file else None
    combine(list(job.input.recon), Plan.read(job.input.plan), job.cfg, conv_range, job.output.volume,
            config_path=job.output.config, input_sha256=sha)
