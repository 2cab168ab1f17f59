# cleanup: remove intermediates once the volume, its copies and the report exist. Snakemake does not
# rebuild a deleted intermediate while everything downstream of it is up to date, so nothing is
# recomputed; a later parameter change reruns from the stage it affects (pre-processing again only
# if the pre-processed data were removed).


localrules:
    cleanup,


def cleanup_inputs(w) -> list[str]:
    inputs = [f"{OUT}/{w.scan}/{w.scan}_recon.h5", *export_targets(w.scan)]
    if CFG.report:
        inputs.append(f"{OUT}/{w.scan}/{w.scan}_report.pdf")
    return inputs


rule cleanup:
    input:
        cleanup_inputs,
        plan=SCAN_DIR + "/plan.json",
    output:
        done=SCAN_DIR + "/cleanup.done",
    params:
        # Not an input function over the checkpoint: that makes `snakemake -n` schedule `all` again.
        scan_dir=SCAN_DIR,
        # The recon chunks are kept when the volume is a VDS over them.
        combine=CFG.output.combine,
    log:
        SCAN_DIR + "/logs/cleanup.log",
    conda:
        conda_env("cleanup")
    script:
        "../scripts/cleanup.py"
