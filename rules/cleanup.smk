# cleanup: remove intermediates once the volume (and report) exist. Snakemake does not rebuild a
# deleted intermediate while everything downstream of it is up to date, so nothing is recomputed.


localrules:
    cleanup,


def cleanup_inputs(w) -> list[str]:
    inputs = [f"{OUT}/{w.scan}/{w.scan}_recon.h5"]
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
    log:
        SCAN_DIR + "/logs/cleanup.log",
    conda:
        conda_env("cleanup")
    script:
        "../scripts/cleanup.py"
