# report: the scan's PDF with raw, corrected and reconstructed data, parameters and timings.
# It reads the previews vds_merge saved (never the pre-processed data), the volume, and the job
# records and benchmarks of the scan. The PDF, the previews as PNGs and the volume's statistics also go into
# Snakemake's HTML report (`snakemake --report report.html`); captions in ../report/.


rule report:
    input:
        unpack(lambda w: atargets.report_inputs(CFG, ScanFiles.under(OUT, w.scan))),
        previews=FILES.previews,
        volume=FILES.volume,
        plan=FILES.plan,
    output:
        pdf=report(FILES.report, caption="../report/pdf.rst", category="Report", subcategory="{scan}"),
        images=report(
            directory(FILES.report_images),
            patterns=["{name}.png"],
            caption="../report/previews.rst",
            category="Previews",
            subcategory="{scan}",
        ),
        stats=report(FILES.volume_stats, caption="../report/stats.rst", category="Volume", subcategory="{scan}"),
    resources:
        **job_resources("report"),
    log:
        FILES.log("report"),
    conda:
        conda_env("report")
    run:
        run_job("report", locals(), config)
