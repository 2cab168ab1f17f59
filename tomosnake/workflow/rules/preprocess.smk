# preprocess_chunk: one block of projections, tile by tile with overlaps; one output file per chunk.


rule preprocess_chunk:
    input:
        raw=raw_input,
        parts=stitch_inputs,
        plan=SCAN_DIR + "/plan.json",
    output:
        chunk=SCAN_DIR + "/preproc/chunk_{k}.h5",
    params:
        stage=stage_dict(CFG, "preprocess"),
    threads: CFG.threads
    resources:
        **(BASE_RESOURCES | {"mem_mb": PREPROCESS_MEM}),
        runtime=runtime_min("preprocess"),
    log:
        SCAN_DIR + "/logs/preprocess_{k}.log",
    benchmark:
        SCAN_DIR + "/benchmarks/preprocess_{k}.tsv"
    conda:
        conda_env("preprocess")
    script:
        "../scripts/preprocess_chunk.py"
