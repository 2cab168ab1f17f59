# preprocess_chunk: one block of projections, tile by tile with overlaps; one output file per chunk.


rule preprocess_chunk:
    input:
        raw=raw_input,
        plan=FILES.plan,
    output:
        chunk=FILES.preproc_chunk(),
    params:
        stage=stage_dict(CFG, "preprocess"),
    threads: rule_threads("preprocess_chunk")
    resources:
        **job_resources("preprocess_chunk"),
    log:
        FILES.log("preprocess_{k}"),
    benchmark:
        FILES.benchmark("preprocess_{k}")
    conda:
        conda_env("preprocess")
    run:
        run_job("preprocess_chunk", locals(), config)
