# try_center: one slice per centre around the chosen one, as TIFFs plus a PDF contact sheet.
# `snakemake try_center --config center_try='{width: 5, step: 0.25}'`; reuses the preprocessed data.


rule try_center:
    input:
        [f"{OUT}/{scan}/try_center/contact_sheet.pdf" for scan in SCANS],


rule try_center_scan:
    input:
        vds=SCAN_DIR + "/preproc.vds.h5",
        chunks=preproc_chunks,
        plan=SCAN_DIR + "/plan.json",
    output:
        sheet=SCAN_DIR + "/try_center/contact_sheet.pdf",
    params:
        center_try=CFG.center_try.model_dump(mode="json"),
    threads: CFG.threads
    resources:
        **(BASE_RESOURCES | placed("try_center_scan")),
        runtime=30,
    log:
        SCAN_DIR + "/logs/try_center.log",
    conda:
        conda_env("recon")
    script:
        "../scripts/try_center.py"


# try_lamino: one laminography slice per tilt angle around recon.lamino.angle, TIFFs plus a contact sheet.
# `snakemake try_lamino --config lamino_try='{width: 2, step: 0.5}'`; reuses the preprocessed data.


rule try_lamino:
    input:
        [f"{OUT}/{scan}/try_lamino/contact_sheet.pdf" for scan in SCANS],


rule try_lamino_scan:
    input:
        vds=SCAN_DIR + "/preproc.vds.h5",
        chunks=preproc_chunks,
        plan=SCAN_DIR + "/plan.json",
    output:
        sheet=SCAN_DIR + "/try_lamino/contact_sheet.pdf",
    params:
        lamino_try=CFG.lamino_try.model_dump(mode="json"),
    threads: CFG.threads
    resources:
        **(BASE_RESOURCES | placed("try_lamino_scan")),
        runtime=30,
    log:
        SCAN_DIR + "/logs/try_lamino.log",
    conda:
        conda_env("recon")
    script:
        "../scripts/try_lamino.py"
