# report: the scan's PDF with raw, corrected and reconstructed data, parameters and timings.


rule report:
    input:
        volume=SCAN_DIR + "/{scan}_recon.h5",
        vds=SCAN_DIR + "/preproc.vds.h5",
        chunks=preproc_chunks,
        plan=SCAN_DIR + "/plan.json",
    output:
        pdf=SCAN_DIR + "/{scan}_report.pdf",
    resources:
        **BASE_RESOURCES,
        runtime=15,
    log:
        SCAN_DIR + "/logs/report.log",
    conda:
        conda_env("report")
    script:
        "../scripts/report.py"
