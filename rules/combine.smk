# combine: one physical DXchange volume, or a VDS over the recon chunks.


rule combine:
    input:
        recon=recon_chunks,
        plan=SCAN_DIR + "/plan.json",
        range=SCAN_DIR + "/recon_range.json",
    output:
        volume=SCAN_DIR + "/{scan}_recon.h5",
    params:
        stage=stage_dict(CFG, "output"),
    resources:
        **BASE_RESOURCES,
        runtime=runtime_min("combine"),
    log:
        SCAN_DIR + "/logs/combine.log",
    benchmark:
        SCAN_DIR + "/benchmarks/combine.tsv"
    conda:
        conda_env("combine")
    script:
        "../scripts/combine.py"
