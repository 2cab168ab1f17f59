# vds_merge: a virtual DXchange dataset over the k chunk files; copies no projection data.


localrules:
    vds_merge,


rule vds_merge:
    input:
        chunks=preproc_chunks,
        plan=SCAN_DIR + "/plan.json",
    output:
        vds=SCAN_DIR + "/preproc.vds.h5",
    log:
        SCAN_DIR + "/logs/vds_merge.log",
    conda:
        conda_env("merge")
    script:
        "../scripts/vds_merge.py"
