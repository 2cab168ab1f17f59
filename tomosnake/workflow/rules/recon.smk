# conversion_range: one bit-depth range for the whole volume, from a fixed sample of slices.
# recon_chunk: one block of sinogram rows, read through the VDS. The chunk files are declared
# as inputs too: the VDS only references them.


rule conversion_range:
    input:
        vds=SCAN_DIR + "/preproc.vds.h5",
        chunks=preproc_chunks,
        plan=SCAN_DIR + "/plan.json",
    output:
        range=SCAN_DIR + "/recon_range.json",
    params:
        stage=stage_dict(CFG, "recon"),
    threads: CFG.threads
    resources:
        **(BASE_RESOURCES | placed("conversion_range") | {"mem_mb": RECON_MEM}),
        runtime=10,
    log:
        SCAN_DIR + "/logs/conversion_range.log",
    conda:
        conda_env("recon")
    script:
        "../scripts/conversion_range.py"


rule recon_chunk:
    input:
        vds=SCAN_DIR + "/preproc.vds.h5",
        chunks=preproc_chunks,
        plan=SCAN_DIR + "/plan.json",
        range=SCAN_DIR + "/recon_range.json",
    output:
        recon=SCAN_DIR + "/recon/recon_{j}.h5",
    params:
        stage=stage_dict(CFG, "recon"),
    threads: CFG.threads
    resources:
        **(BASE_RESOURCES | placed("recon_chunk") | {"mem_mb": RECON_MEM}),
        runtime=runtime_min("recon"),
    log:
        SCAN_DIR + "/logs/recon_{j}.log",
    benchmark:
        SCAN_DIR + "/benchmarks/recon_{j}.tsv"
    conda:
        conda_env("recon")
    script:
        "../scripts/recon_chunk.py"
