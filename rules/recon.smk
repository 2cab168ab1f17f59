# conversion_range: one bit-depth range for the whole volume, from a fixed sample of slices.
# recon_chunk: one block of sinogram rows, read through the VDS. The VDS stands for the chunk files it
# references (not temp(); vds_merge reruns when one changes and cleanup removes the VDS with them), so
# each of j jobs lists one file, not k: at the bone scan's k and j that was most of the DAG's cost.


rule conversion_range:
    input:
        vds=FILES.preproc_vds,
        chunks=preproc_chunks,
        plan=FILES.plan,
    output:
        range=FILES.recon_range,
    params:
        stage=stage_dict(CFG, "recon"),
    threads: rule_threads("conversion_range")
    resources:
        **job_resources("conversion_range"),
    log:
        FILES.log("conversion_range"),
    conda:
        conda_env("recon")
    run:
        run_job("conversion_range", locals(), config)


rule recon_chunk:
    input:
        vds=FILES.preproc_vds,
        plan=FILES.plan,
        range=FILES.recon_range,
    output:
        recon=FILES.recon_chunk(),
    params:
        stage=stage_dict(CFG, "recon"),
    threads: rule_threads("recon_chunk")
    resources:
        **job_resources("recon_chunk"),
    log:
        FILES.log("recon_{j}"),
    benchmark:
        FILES.benchmark("recon_{j}")
    conda:
        conda_env("recon")
    run:
        run_job("recon_chunk", locals(), config)
