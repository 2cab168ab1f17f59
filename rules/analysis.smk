# analyze_chunk: the phases and objects of slabs of the volume, at analysis.level (tomosnake.analysis);
# analysis_merge joins them into <scan>_labels.h5, <scan>_analysis.json and <scan>_objects.csv beside the
# volume, objects that cross slab faces counted once; labels_ome_zarr: the labels as OME-Zarr.
# Only with analysis.enabled; the slabs follow from the plan and the analysis budget.
from tomosnake.analysis import layout as alayout


rule analyze_chunk:
    input:
        volume=FILES.volume,
        plan=FILES.plan,
    output:
        chunk=temp(FILES.analysis_chunk()),
    params:
        analysis=CFG.analysis.model_dump(mode="json"),
        slabs=lambda w: atargets.slabs(alayout.of_plan(plan_of(w), CFG), int(w.j)),
    threads: resources.threads(CFG, "analyze_chunk")
    resources:
        **job_resources("analyze_chunk"),
    log:
        FILES.log("analyze_{j}"),
    benchmark:
        FILES.benchmark("analyze_{j}")
    conda:
        conda_env("analysis")
    run:
        run_job("analyze_chunk", locals(), config)


rule analysis_merge:
    input:
        volume=FILES.volume,
        plan=FILES.plan,
        chunks=lambda w: atargets.chunk_files(ScanFiles.under(OUT, w.scan), alayout.of_plan(plan_of(w), CFG)),
    output:
        labels=FILES.labels,
        json=report(FILES.analysis_json, caption="../report/analysis.rst", category="Analysis", subcategory="{scan}"),
        csv=report(FILES.objects_csv, caption="../report/objects.rst", category="Analysis", subcategory="{scan}"),
    params:
        analysis=CFG.analysis.model_dump(mode="json"),
    resources:
        **job_resources("analysis_merge"),
    log:
        FILES.log("analysis_merge"),
    benchmark:
        FILES.benchmark("analysis_merge")
    conda:
        conda_env("analysis")
    run:
        run_job("analysis_merge", locals(), config)


rule labels_ome_zarr:
    input:
        labels=FILES.labels,
    output:
        zarr=directory(FILES.labels_ome_zarr),
    resources:
        **job_resources("labels_ome_zarr"),
    log:
        FILES.log("labels_ome_zarr"),
    benchmark:
        FILES.benchmark("labels_ome_zarr")
    conda:
        conda_env("analysis")
    run:
        run_job("labels_ome_zarr", locals(), config)
