# report: the scan's PDF with raw, corrected and reconstructed data, parameters and timings.
# report_previews saves the raw and corrected images it shows while the pre-processed data exist;
# the report itself reads no pre-processed file, so redoing it after cleanup (e.g. for a new
# pyramid) pre-processes nothing again. It reads the job records and benchmarks of the scan.


rule report_previews:
    input:
        raw=raw_input,
        vds=SCAN_DIR + "/preproc.vds.h5",
        chunks=preproc_chunks,
        plan=SCAN_DIR + "/plan.json",
    output:
        previews=SCAN_DIR + "/report_previews.h5",
    resources:
        **job_resources("report_previews"),
    log:
        SCAN_DIR + "/logs/report_previews.log",
    conda:
        conda_env("report")
    script:
        "../scripts/report_previews.py"


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
