# report: the scan's PDF with raw, corrected and reconstructed data, parameters and timings.
# report_previews saves the raw and corrected images it shows while the pre-processed data exist;
# the report itself reads no pre-processed file, so redoing it after cleanup (e.g. for a new
# pyramid) pre-processes nothing again. It reads the job records and benchmarks of the scan.


rule report_previews:
    input:
        raw=raw_input,
        vds=FILES.preproc_vds,
        chunks=preproc_chunks,
        plan=FILES.plan,
    output:
        previews=FILES.previews,
    resources:
        **BASE_RESOURCES,
        runtime=15,
    log:
        FILES.log("report_previews"),
    conda:
        conda_env("report")
    script:
        "../scripts/report_previews.py"


rule report:
    input:
        previews=FILES.previews,
        volume=FILES.volume,
        plan=FILES.plan,
    output:
        pdf=FILES.report,
    resources:
        **BASE_RESOURCES,
        runtime=15,
    log:
        FILES.log("report"),
    conda:
        conda_env("report")
    script:
        "../scripts/report.py"
