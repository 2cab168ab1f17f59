# vds_merge: a virtual DXchange dataset over the k chunk files (copies no projection data), and the
# report's raw and corrected images, saved while the pre-processed data exist: the report itself
# reads no pre-processed file, so redoing it after cleanup (e.g. for a new pyramid) pre-processes
# nothing again. One job for both: a job's start-up costs more than either.


rule vds_merge:
    input:
        raw=raw_input,
        chunks=preproc_chunks,
        plan=FILES.plan,
    output:
        vds=FILES.preproc_vds,
        previews=FILES.previews,
    resources:
        **job_resources("vds_merge"),
    log:
        FILES.log("vds_merge"),
    benchmark:
        FILES.benchmark("vds_merge")
    conda:
        conda_env("merge")
    run:
        run_job("vds_merge", locals(), config)
