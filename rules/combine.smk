# combine: the scan's volume (one physical DXchange file, or a VDS over the recon chunks) with its
# pyramid, statistics and provenance, and the run's parameters beside it as a config file.
# input_checksum: optional full SHA-256 of the raw files, a job of its own beside pre-processing.
# ome_zarr, tiff_stack: optional copies of the volume in other formats, read from the volume file,
# so switching them on reruns only them.

INPUT_SHA256 = CFG.output.input_sha256


rule input_checksum:
    input:
        raw=raw_input,
    output:
        sha=FILES.input_sha256,
    resources:
        **job_resources("input_checksum"),
    log:
        FILES.log("input_checksum"),
    benchmark:
        FILES.benchmark("input_checksum")
    conda:
        conda_env("combine")
    run:
        run_job("input_checksum", locals(), config)


rule combine:
    input:
        unpack(lambda w: {"sha": ScanFiles.under(OUT, w.scan).input_sha256} if INPUT_SHA256 else {}),
        raw=raw_input,
        recon=recon_chunks,
        plan=FILES.plan,
        range=FILES.recon_range,
    output:
        volume=FILES.volume,
        config=FILES.volume_config,
    params:
        # What the volume file depends on; the export switches are the export rules' business.
        output={"combine": CFG.output.combine, "pyramid": CFG.output.pyramid, "input_sha256": INPUT_SHA256},
    resources:
        **job_resources("combine"),
    log:
        FILES.log("combine"),
    benchmark:
        FILES.benchmark("combine")
    conda:
        conda_env("combine")
    run:
        run_job("combine", locals(), config)


rule ome_zarr:
    input:
        volume=FILES.volume,
    output:
        zarr=directory(FILES.ome_zarr),
    resources:
        **job_resources("ome_zarr"),
    log:
        FILES.log("ome_zarr"),
    benchmark:
        FILES.benchmark("ome_zarr")
    conda:
        conda_env("combine")
    run:
        run_job("export", locals(), config)


rule tiff_stack:
    input:
        volume=FILES.volume,
    output:
        tiff=directory(FILES.tiff),
    resources:
        **job_resources("tiff_stack"),
    log:
        FILES.log("tiff_stack"),
    benchmark:
        FILES.benchmark("tiff_stack")
    conda:
        conda_env("combine")
    run:
        run_job("export", locals(), config)
