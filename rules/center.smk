# try_center: one slice per centre around the chosen one, as TIFFs plus a PDF contact sheet.
# `snakemake try_center --config center_try='{width: 5, step: 0.25}'`; reuses the preprocessed data.
# After cleanup it reads the raw file instead (`try_inputs`).


rule try_center:
    input:
        [ScanFiles.under(OUT, scan).try_center_sheet for scan in SCANS],


rule try_center_scan:
    input:
        unpack(try_inputs),
    output:
        sheet=FILES.try_center_sheet,
    params:
        center_try=CFG.center_try.model_dump(mode="json"),
        stage=stage_dict(CFG, "recon"),
    threads: resources.threads(CFG, "try_center_scan")
    resources:
        **job_resources("try_center_scan"),
    log:
        FILES.log("try_center"),
    conda:
        conda_env("recon")
    run:
        run_job("try_center", locals(), config)


# try_lamino: one laminography slice per tilt angle around recon.lamino.angle, TIFFs plus a contact sheet.
# `snakemake try_lamino --config lamino_try='{width: 2, step: 0.5}'`; reuses the preprocessed data.


rule try_lamino:
    input:
        [ScanFiles.under(OUT, scan).try_lamino_sheet for scan in SCANS],


rule try_lamino_scan:
    input:
        unpack(try_inputs),
    output:
        sheet=FILES.try_lamino_sheet,
    params:
        lamino_try=CFG.lamino_try.model_dump(mode="json"),
        stage=stage_dict(CFG, "recon"),
    threads: resources.threads(CFG, "try_lamino_scan")
    resources:
        **job_resources("try_lamino_scan"),
    log:
        FILES.log("try_lamino"),
    conda:
        conda_env("recon")
    run:
        run_job("try_lamino", locals(), config)
