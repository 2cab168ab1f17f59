# combine: the scan's volume (one physical DXchange file, or a VDS over the recon chunks) with its
# pyramid, statistics and provenance, and the run's parameters beside it as a config file.
# input_checksum: optional full SHA-256 of the raw files, a job of its own beside pre-processing.
# ome_zarr, tiff_stack: optional copies of the volume in other formats, read from the volume file,
# so switching them on reruns only them.

INPUT_SHA256 = CFG.output.input_sha256


def export_targets(scan: str) -> list[str]:
    """The optional copies of a scan's volume the config asks for."""
    out = []
    if CFG.output.ome_zarr:
        out.append(f"{OUT}/{scan}/{scan}_recon.ome.zarr")
    if CFG.output.tiff:
        out.append(f"{OUT}/{scan}/{scan}_tiff")
    return out


rule input_checksum:
    input:
        raw=raw_input,
    output:
        sha=SCAN_DIR + "/input.sha256",
    resources:
        **job_resources("input_checksum"),
    log:
        SCAN_DIR + "/logs/input_checksum.log",
    benchmark:
        SCAN_DIR + "/benchmarks/input_checksum.tsv"
    conda:
        conda_env("combine")
    script:
        "../scripts/input_checksum.py"


rule combine:
    input:
        unpack(lambda w: {"sha": f"{OUT}/{w.scan}/input.sha256"} if INPUT_SHA256 else {}),
        raw=raw_input,
        recon=recon_chunks,
        plan=SCAN_DIR + "/plan.json",
        range=SCAN_DIR + "/recon_range.json",
    output:
        volume=SCAN_DIR + "/{scan}_recon.h5",
        config=SCAN_DIR + "/{scan}_recon.yaml",
    threads: CFG.threads
    params:
        # What the volume file depends on; the export switches are the export rules' business.
        output={"combine": CFG.output.combine, "pyramid": CFG.output.pyramid, "input_sha256": INPUT_SHA256},
    resources:
        **job_resources("combine"),
    log:
        SCAN_DIR + "/logs/combine.log",
    benchmark:
        SCAN_DIR + "/benchmarks/combine.tsv"
    conda:
        conda_env("combine")
    script:
        "../scripts/combine.py"


rule ome_zarr:
    input:
        volume=SCAN_DIR + "/{scan}_recon.h5",
    output:
        zarr=directory(SCAN_DIR + "/{scan}_recon.ome.zarr"),
    resources:
        **job_resources("ome_zarr"),
    log:
        SCAN_DIR + "/logs/ome_zarr.log",
    benchmark:
        SCAN_DIR + "/benchmarks/ome_zarr.tsv"
    conda:
        conda_env("combine")
    script:
        "../scripts/export.py"


rule tiff_stack:
    input:
        volume=SCAN_DIR + "/{scan}_recon.h5",
    output:
        tiff=directory(SCAN_DIR + "/{scan}_tiff"),
    resources:
        **job_resources("tiff_stack"),
    log:
        SCAN_DIR + "/logs/tiff_stack.log",
    benchmark:
        SCAN_DIR + "/benchmarks/tiff_stack.tsv"
    conda:
        conda_env("combine")
    script:
        "../scripts/export.py"
