# conversion_range: one bit-depth range for the whole volume, from a fixed sample of slices.
# recon_chunk: one block of sinogram rows, read through the VDS. The VDS stands for the chunk files it
# references (not temp(); vds_merge reruns when one changes and cleanup removes the VDS with them), so
# each of j jobs lists one file, not k: at the bone scan's k and j that was most of the DAG's cost.


rule conversion_range:
    input:
        vds=SCAN_DIR + "/preproc.vds.h5",
        chunks=preproc_chunks,
        plan=SCAN_DIR + "/plan.json",
    output:
        range=SCAN_DIR + "/recon_range.json",
    params:
        stage=stage_dict(CFG, "recon"),
    threads: resources.threads(CFG, "conversion_range")
    resources:
        **job_resources("conversion_range"),
    log:
        SCAN_DIR + "/logs/conversion_range.log",
    conda:
        conda_env("recon")
    script:
        "../scripts/conversion_range.py"


rule recon_chunk:
    input:
        vds=SCAN_DIR + "/preproc.vds.h5",
        plan=SCAN_DIR + "/plan.json",
        range=SCAN_DIR + "/recon_range.json",
    output:
        recon=SCAN_DIR + "/recon/recon_{j}.h5",
    params:
        stage=stage_dict(CFG, "recon"),
    threads: resources.threads(CFG, "recon_chunk")
    resources:
        **job_resources("recon_chunk"),
    log:
        SCAN_DIR + "/logs/recon_{j}.log",
    benchmark:
        SCAN_DIR + "/benchmarks/recon_{j}.tsv"
    conda:
        conda_env("recon")
    script:
        "../scripts/recon_chunk.py"
