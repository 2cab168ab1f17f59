# vds_merge: a virtual DXchange dataset over the k chunk files (copies no projection data), and the
# report's raw and corrected images, saved while the pre-processed data exist: the report itself
# reads no pre-processed file, so redoing it after cleanup (e.g. for a new pyramid) pre-processes
# nothing again. One job for both: a job's start-up costs more than either.


rule vds_merge:
    input:
        raw=raw_input,
        chunks=preproc_chunks,
        plan=SCAN_DIR + "/plan.json",
    output:
        vds=SCAN_DIR + "/preproc.vds.h5",
        previews=SCAN_DIR + "/report_previews.h5",
    resources:
        **job_resources("vds_merge"),
    log:
        SCAN_DIR + "/logs/vds_merge.log",
    benchmark:
        SCAN_DIR + "/benchmarks/vds_merge.tsv"
    conda:
        conda_env("merge")
    script:
        "../scripts/vds_merge.py"
