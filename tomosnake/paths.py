"""Where a scan's files live in the output directory: the one place that names them.

The rules declare these paths (with Snakemake wildcards: the default ``scan="{scan}"``, ``k="{k}"``,
``j="{j}"``); preflight, audit, cleanup and the report find the same files through them
(with real names, or ``"*"`` to glob).
"""

from __future__ import annotations

from dataclasses import dataclass

# Folders of the output directory itself that the run writes: its state (lock, resolved config, input
# aliases; `tomosnake.outdir`), Snakemake's records, and the SLURM executor's logs (the profiles' slurm-logdir).
RUN_DIRS = (".tomosnake", ".snakemake", "logs")


@dataclass(frozen=True)
class ScanFiles:
    """The files of one scan (or of the pattern ``{scan}``) in its folder ``dir`` = ``<outdir>/<scan>``."""

    dir: str
    scan: str = "{scan}"

    @classmethod
    def under(cls, outdir: str, scan: str = "{scan}") -> ScanFiles:
        return cls(f"{outdir}/{scan}", scan)

    def _in(self, name: str) -> str:
        return f"{self.dir}/{name}"

    # the plan checkpoint, pre-processing and its virtual stack
    @property
    def plan(self) -> str:
        return self._in("plan.json")

    def preproc_chunk(self, k: int | str = "{k}") -> str:
        return self._in(f"preproc/chunk_{k}.h5")

    @property
    def preproc_vds(self) -> str:
        return self._in("preproc.vds.h5")

    # reconstruction
    @property
    def recon_range(self) -> str:
        return self._in("recon_range.json")

    def recon_chunk(self, j: int | str = "{j}") -> str:
        return self._in(f"recon/recon_{j}.h5")

    # outputs
    @property
    def input_sha256(self) -> str:
        return self._in("input.sha256")

    @property
    def volume(self) -> str:
        return self._in(f"{self.scan}_recon.h5")

    @property
    def volume_config(self) -> str:
        return self._in(f"{self.scan}_recon.yaml")

    @property
    def ome_zarr(self) -> str:
        return self._in(f"{self.scan}_recon.ome.zarr")

    @property
    def tiff(self) -> str:
        return self._in(f"{self.scan}_tiff")

    @property
    def previews(self) -> str:
        return self._in("report_previews.h5")

    @property
    def report(self) -> str:
        return self._in(f"{self.scan}_report.pdf")

    @property
    def report_images(self) -> str:
        """The previews as PNGs, for Snakemake's HTML report."""
        return self._in("report_images")

    @property
    def volume_stats(self) -> str:
        """The volume's statistics as an HTML table, for Snakemake's HTML report."""
        return self._in(f"{self.scan}_stats.html")

    @property
    def cleanup_done(self) -> str:
        return self._in("cleanup.done")

    @property
    def try_center_sheet(self) -> str:
        return self._in("try_center/contact_sheet.pdf")

    @property
    def try_lamino_sheet(self) -> str:
        return self._in("try_lamino/contact_sheet.pdf")

    # the optional analysis (tomosnake.analysis): per-job slabs, then the outputs beside the volume
    def analysis_chunk(self, j: int | str = "{j}") -> str:
        return self._in(f"analysis/chunk_{j}.h5")

    @property
    def labels(self) -> str:
        return self._in(f"{self.scan}_labels.h5")

    @property
    def labels_ome_zarr(self) -> str:
        return self._in(f"{self.scan}_labels.ome.zarr")

    @property
    def analysis_json(self) -> str:
        return self._in(f"{self.scan}_analysis.json")

    @property
    def objects_csv(self) -> str:
        return self._in(f"{self.scan}_objects.csv")

    # what the jobs record: their logs (and timing records beside them) and Snakemake's benchmarks
    @property
    def logs(self) -> str:
        return self._in("logs")

    def log(self, job: str) -> str:
        return f"{self.logs}/{job}.log"

    @property
    def benchmarks(self) -> str:
        return self._in("benchmarks")

    def benchmark(self, job: str) -> str:
        return f"{self.benchmarks}/{job}.tsv"

    # every name above: what the workflow may write, replace or delete
    @property
    def managed_files(self) -> dict[str, str]:
        """Files the workflow writes or deletes in ``dir`` (beyond `managed_dirs`), by what they are."""
        return {"plan": self.plan, "pre-processed VDS": self.preproc_vds, "conversion range": self.recon_range,
                "input checksum": self.input_sha256, "volume": self.volume, "volume's config": self.volume_config,
                "report previews": self.previews, "report": self.report, "cleanup mark": self.cleanup_done}

    @property
    def managed_dirs(self) -> dict[str, str]:
        """Folders in ``dir`` whose whole content the workflow writes or deletes, by what they hold."""
        return {"pre-processed chunks": self._in("preproc"), "reconstructed chunks": self._in("recon"),
                "OME-Zarr copy": self.ome_zarr, "TIFF stack": self.tiff, "try_center": self._in("try_center"),
                "try_lamino": self._in("try_lamino"), "job logs": self.logs, "benchmarks": self.benchmarks}
