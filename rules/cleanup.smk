# cleanup: remove intermediates once the volume, its copies and the report exist. Snakemake does not
# rebuild a deleted intermediate while everything downstream of it is up to date, so nothing is
# recomputed; a later parameter change reruns from the stage it affects (pre-processing again only
# if the pre-processed data were removed).


localrules:
    cleanup,


rule cleanup:
    input:
        cleanup_inputs,
        plan=FILES.plan,
    output:
        done=FILES.cleanup_done,
    params:
        # The recon chunks are kept when the volume is a VDS over them.
        combine=CFG.output.combine,
    log:
        FILES.log("cleanup"),
    conda:
        conda_env("cleanup")
    run:
        run_job("cleanup", locals(), config)
