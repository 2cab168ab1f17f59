# plan: shapes, budget and enabled steps -> k, j, tile and load sizes. Cheap, so it runs locally.


localrules:
    plan,


checkpoint plan:
    input:
        raw=raw_input,
    output:
        plan=FILES.plan,
    params:
        stage=stage_dict(CFG, "plan"),
    log:
        FILES.log("plan"),
    benchmark:
        FILES.benchmark("plan")
    conda:
        conda_env("plan")
    run:
        run_job("plan", locals(), config)
