# vds_merge: a virtual DXchange dataset over the k chunk files; copies no projection data.


localrules:
    vds_merge,


rule vds_merge:
    input:
        chunks=preproc_chunks,
        plan=FILES.plan,
    output:
        vds=FILES.preproc_vds,
    log:
        FILES.log("vds_merge"),
    conda:
        conda_env("merge")
    script:
        "../scripts/vds_merge.py"
