# tomosnake: chunked reconstruction of synchrotron tomography scans.
# Stages: plan (checkpoint) -> preprocess_chunk{k} -> vds_merge -> conversion_range -> recon_chunk{j}
#         -> combine -> report -> cleanup.    All logic lives in the `tomosnake` package.
from snakemake.utils import min_version

min_version("9.0")


configfile: workflow.basedir + "/config/config.yaml"


include: "rules/common.smk"
include: "rules/plan.smk"
include: "rules/preprocess.smk"
include: "rules/merge.smk"
include: "rules/recon.smk"
include: "rules/combine.smk"
include: "rules/report.smk"
include: "rules/cleanup.smk"
include: "rules/center.smk"


rule all:
    default_target: True
    input:
        final_targets,
