# conversion_range: one bit-depth range for the whole volume, from a fixed sample of slices.
# recon_chunk: one block of sinogram rows, read through the VDS. The chunk files are declared
# as inputs too: the VDS only references them.


rule conversion_range:
    input:
        vds=FILES.preproc_vds,
        chunks=preproc_chunks,
        plan=FILES.plan,
    output:
        range=FILES.recon_range,
    params:
        stage=stage_dict(CFG, "recon"),
    threads: CFG.threads
    resources:
        **(BASE_RESOURCES | placed("conversion_range") | {"mem_mb": RECON_MEM}),
        runtime=10,
    log:
        FILES.log("conversion_range"),
    conda:
        conda_env("recon")
    script:
        "../scripts/conversion_range.py"


rule recon_chunk:
    input:
        vds=FILES.preproc_vds,
        chunks=preproc_chunks,
        plan=FILES.plan,
        range=FILES.recon_range,
    output:
        recon=FILES.recon_chunk(),
    params:
        stage=stage_dict(CFG, "recon"),
    threads: CFG.threads
    resources:
        **(BASE_RESOURCES | placed("recon_chunk") | {"mem_mb": RECON_MEM}),
        runtime=runtime_min("recon"),
    log:
        FILES.log("recon_{j}"),
    benchmark:
        FILES.benchmark("recon_{j}")
    conda:
        conda_env("recon")
    script:
        "../scripts/recon_chunk.py"
