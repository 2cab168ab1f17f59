# report: the scan's PDF with raw, corrected and reconstructed data, parameters and timings.
# It reads the previews vds_merge saved (never the pre-processed data), the volume, and the job
# records and benchmarks of the scan.


rule report:
    input:
        previews=SCAN_DIR + "/report_previews.h5",
        volume=SCAN_DIR + "/{scan}_recon.h5",
        plan=SCAN_DIR + "/plan.json",
    output:
        pdf=SCAN_DIR + "/{scan}_report.pdf",
    resources:
        **job_resources("report"),
    log:
        SCAN_DIR + "/logs/report.log",
    conda:
        conda_env("report")
    script:
        "../scripts/report.py"
