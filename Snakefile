# tomosnake: chunked reconstruction of synchrotron tomography scans.
# Stages: plan (checkpoint) -> preprocess_chunk{k} -> vds_merge -> conversion_range -> recon_chunk{j}
#         -> combine -> report -> cleanup.    All logic lives in the `tomosnake` package.
from snakemake.utils import min_version

from tomosnake import slurm_executor
from tomosnake.workflow import DEFAULT_CONFIG

# Under SLURM: cancelled, preempted or node-failed jobs end as failed, and a slurmdbd outage loses no job.
slurm_executor.install()

min_version("9.0")


configfile: DEFAULT_CONFIG


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/plan.smk"
include: "rules/preprocess.smk"
include: "rules/merge.smk"
include: "rules/recon.smk"
include: "rules/combine.smk"
include: "rules/analysis.smk"
include: "rules/report.smk"
include: "rules/cleanup.smk"
include: "rules/center.smk"


rule all:
    default_target: True
    input:
        final_targets,
