# try_center: one slice per centre around the chosen one, as TIFFs plus a PDF contact sheet.
# `snakemake try_center --config center_try='{width: 5, step: 0.25}'`; reuses the preprocessed data.


rule try_center:
    input:
        [ScanFiles.under(OUT, scan).try_center_sheet for scan in SCANS],


rule try_center_scan:
    input:
        vds=FILES.preproc_vds,
        chunks=preproc_chunks,
        plan=FILES.plan,
    output:
        sheet=FILES.try_center_sheet,
    params:
        center_try=CFG.center_try.model_dump(mode="json"),
    threads: CFG.threads
    resources:
        **BASE_RESOURCES,
        runtime=30,
    log:
        FILES.log("try_center"),
    conda:
        conda_env("recon")
    script:
        "../scripts/try_center.py"
