# plan: shapes, budget and enabled steps -> k, j, tile and load sizes. Cheap, so it runs locally.


localrules:
    plan,


checkpoint plan:
    input:
        raw=raw_input,
        parts=stitch_inputs,
    output:
        plan=SCAN_DIR + "/plan.json",
    params:
        stage=stage_dict(CFG, "plan"),
    log:
        SCAN_DIR + "/logs/plan.log",
    benchmark:
        SCAN_DIR + "/benchmarks/plan.tsv"
    conda:
        conda_env("plan")
    script:
        "../scripts/plan.py"
