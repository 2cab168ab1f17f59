# report: the scan's PDF with raw, corrected and reconstructed data, parameters and timings.
# It reads the previews vds_merge saved (never the pre-processed data), the volume, and the job
# records and benchmarks of the scan.


rule report:
    input:
        unpack(lambda w: atargets.report_inputs(CFG, ScanFiles.under(OUT, w.scan))),
        previews=FILES.previews,
        volume=FILES.volume,
        plan=FILES.plan,
    output:
        pdf=FILES.report,
    resources:
        **job_resources("report"),
    log:
        FILES.log("report"),
    conda:
        conda_env("report")
    run:
        run_job("report", locals(), config)
