"""The per-scan PDF report (reportlab): one page at a glance, then processing, timings and provenance.

Page 1: what was measured and what came out (raw and corrected projection and
sinogram, three orthogonal slices). Page 2: every correction and reconstruction
parameter, the conversion range over the volume's histogram, the output files.
Page 3: timings in the seed paper's terms, per stage, and a timeline of the
jobs. Page 4: input identity, software versions, the command and the config
that repeat the run. The raw and corrected images come from `tomosnake.report.previews`
(saved before cleanup); from the volume it reads one axial slice, and the coronal and
sagittal planes the recon chunks recorded (`tomosnake.io.volume_stats`): never the volume
across its slices.
"""

from __future__ import annotations

import json
import textwrap
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

import h5py
import numpy as np
import yaml
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    PageBreak,
    Paragraph,
    Preformatted,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from tomosnake import provenance
from tomosnake.config import TomoConfig
from tomosnake.io.atomic import atomic_path
from tomosnake.report.figures import (
    FRCPlot,
    Histogram,
    ImagePanel,
    PanelSpec,
    Timeline,
    fmt,
)
from tomosnake.report.analysis_page import analysis_page
from tomosnake.report.previews import Previews
from tomosnake.paths import ScanFiles
from tomosnake.report.timings import Summary, read_benchmarks, read_jobs, summarize
from tomosnake.io import volume_stats
from tomosnake.stages.combine import pyramid_levels, read_histogram
from tomosnake.stages.plan import Plan

CLIP_WARN = 0.01  # share of voxels in an end bin of an integer volume worth a warning
CONFIG_COLUMN_CHARS = 66  # Courier 6.3 pt in half the text width
# Jobs whose time belongs to making the volume (the report's own, cleanup's and the exports' do not).
VOLUME_STAGES = ("plan", "input_checksum", "preprocess", "vds_merge", "conversion_range", "recon", "combine")

PAGE_W, PAGE_H = A4
MARGIN = 14 * mm
TEXT_W = PAGE_W - 2 * MARGIN
STYLES = getSampleStyleSheet()
H1 = ParagraphStyle("h1", parent=STYLES["Heading1"], fontSize=15, spaceAfter=2, spaceBefore=0)
H2 = ParagraphStyle("h2", parent=STYLES["Heading2"], fontSize=11, spaceBefore=6, spaceAfter=3)
BODY = ParagraphStyle("body", parent=STYLES["BodyText"], fontSize=8, leading=10)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=7, leading=8.5, textColor=colors.Color(0.3, 0.3, 0.3))
CELL = ParagraphStyle("cell", parent=BODY, fontSize=7.5, leading=9)
CODE = ParagraphStyle("code", parent=BODY, fontName="Courier", fontSize=6.3, leading=7.4)


def _p(text: str, style: ParagraphStyle = CELL) -> Paragraph:
    return Paragraph(text, style)


def _table(rows: list[list], widths: list[float], header: bool = True, zebra: bool = True) -> Table:
    rows = [[_p(c) if isinstance(c, str) else c for c in r] for r in rows]
    t = Table(rows, colWidths=widths, hAlign="LEFT", repeatRows=1 if header else 0)
    style = [("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 3),
             ("RIGHTPADDING", (0, 0), (-1, -1), 3), ("TOPPADDING", (0, 0), (-1, -1), 1.5),
             ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5), ("LINEBELOW", (0, -1), (-1, -1), 0.4, colors.grey)]
    if header:
        style += [("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.86, 0.89, 0.94)),
                  ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.grey)]
    if zebra:
        style += [("ROWBACKGROUNDS", (0, 1 if header else 0), (-1, -1), [colors.white, colors.Color(0.96, 0.96, 0.96)])]
    t.setStyle(TableStyle(style))
    return t


def _params(d: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in d.items()) or "-"


def _gb(n: float) -> str:
    return f"{n / 1e9:.3g} GB" if n >= 1e8 else f"{n / 1e6:.3g} MB"


def _duration(s: float) -> str:
    if s < 1:
        return f"{s:.2g} s"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def _px_rate(v: float) -> str:
    return f"{v / 1e6:.3g} Mpx/s" if v >= 1e6 else f"{v / 1e3:.3g} kpx/s"


# ------------------------------------------------------------------ the volume's slices
@dataclass
class Slices:
    """Three orthogonal slices through the middle of the volume, at full resolution."""

    axial: np.ndarray
    coronal: np.ndarray
    sagittal: np.ndarray
    shape: tuple[int, int, int]  # the full volume's


def read_slices(f: h5py.File) -> Slices:
    vol = f["exchange/data"]
    nz, ny, nx = vol.shape
    return Slices(vol[nz // 2], f[volume_stats.CORONAL_PATH][()], f[volume_stats.SAGITTAL_PATH][()], (nz, ny, nx))


# ------------------------------------------------------------------ pages
def _to_physical(conv: dict, dtype: np.dtype):
    """Stored value -> reconstructed value, for volumes converted to integers; None otherwise."""
    if conv.get("enabled") and np.issubdtype(dtype, np.integer):
        top = float(np.iinfo(dtype).max)
        lo, hi = conv["min"], conv["max"]
        return lambda v: lo + (hi - lo) * v / top
    return None


def _angle_ticks(theta: np.ndarray, rows: int, step: int = 1) -> list[tuple[float, str]]:
    """Ticks every 45 degrees (or at the ends) for a sinogram of ``rows`` rows (every ``step``-th angle)."""
    t = theta[::step][:rows]
    out = []
    for a in np.arange(0, t.max() + 1e-6, 45 if t.max() - t.min() >= 90 else max(1, (t.max() - t.min()) / 2)):
        i = int(np.argmin(np.abs(t - a)))
        out.append((float(i), f"{a:g}°"))
    return out


def _old_center(plan: Plan, cfg: TomoConfig) -> str:
    """The half-acquisition axis as configured, or as the plan found it."""
    if plan.old_center is not None:
        return f"{plan.old_center:.2f} (automatic)"
    return f"{cfg.recon.sino_360_to_180.old_center}"


def _page_one(plan: Plan, cfg: TomoConfig, v: Previews, sl: Slices, prov: dict, volume_path: Path,
              summary: Summary, pixel_um: float | None, dtype: np.dtype) -> list:
    center, method = prov["center"], prov["center_method"]
    info = plan.info
    nz, ny, nx = sl.shape
    r = cfg.recon
    px = (f"{pixel_um:g} µm" if pixel_um else
          (f"{info['pixel_size']} (no unit in the raw file; scale bars in pixels)" if info.get("pixel_size")
           is not None else "not given in the raw file (scale bars in pixels)"))
    theta = plan.theta_deg
    time_line = (f"{_duration(summary.total_s)} end to end: {_px_rate(summary.pixels_per_s)} of raw data, "
                 f"{_px_rate(summary.pixels_per_thread_s)} per thread ({summary.threads_peak} threads at peak)"
                 if summary.total_s else "no job timings found")
    rows = [
        ["Raw file", f"<b>{escape(Path(plan.input).name)}</b> in {escape(str(Path(plan.input).parent))}"],
        ["Sample", escape(str(info["sample"]))],
        ["Raw data", (f"{info['n_proj']} projections x {info['n_rows']} rows x {info['n_cols']} columns, "
                     f"{info['dtype']} ({_gb(plan.estimates['raw_bytes'])}); angles {theta.min():g}-{theta.max():g}°; "
                     f"{info['n_flat']} flats, {info['n_dark']} darks")],
        ["Volume", (f"<b>{nz} x {ny} x {nx}</b> (z, y, x) {dtype}, {_gb(nz * ny * nx * dtype.itemsize)}, "
                   f"{cfg.output.combine}: {escape(volume_path.name)}")],
        ["Pixel size", px],
        ["Dates", (f"acquired {escape(v.acquired)}; " if v.acquired else "") + f"raw file modified {v.raw_modified}; "
                  f"reconstructed {str(prov['date'])[:16].replace('T', ' ')} UTC"],
        ["Reconstruction", (f"{r.backend} / {r.algorithm} / filter {r.filter_name}; centre <b>{center:.2f} px</b> "
                           f"({escape(str(method))})")],
        ["Run", f"{plan.k} pre-processing jobs at {cfg.budget_mb('preprocess'):g} MB, {plan.j} reconstruction "
                f"jobs at {cfg.budget_mb('recon'):g} MB; " + time_line],
    ]
    if plan.warnings:  # usable but odd input (`RawScan.check_data`): first, where nobody misses it
        rows.insert(0, ["Warnings", "<br/>".join(f'<font color="#b00000">{escape(w)}</font>' for w in plan.warnings)])
    out: list = [Paragraph(f"Reconstruction report: {escape(plan.scan)}", H1),
                 _table(rows, [26 * mm, TEXT_W - 26 * mm], header=False, zebra=True), Spacer(1, 3 * mm)]
    half, third = TEXT_W / 2 - 2 * mm, TEXT_W / 3 - 2 * mm
    corr_unit = "-ln(transmission)" if plan.log_applied else "transmission"
    recon_unit = "reconstructed value (1/px)"
    phys = _to_physical(prov["conversion_range"], dtype)
    img, shp = v.images, v.shapes
    sino_aspect = float(np.clip(shp["corr_sino"][0] / shp["corr_sino"][1], 0.35, 0.6))
    raw_note = f"every {v.raw_sino_step}th projection" if v.raw_sino_step > 1 else ""

    def data_panel(name: str, title: str, unit: str, height: float, **kw) -> ImagePanel:
        return ImagePanel(PanelSpec(img[name], title, unit, pixel_um, shape=shp[name], **kw), half, height)

    panels = [
        [data_panel("raw_proj", f"Raw projection {v.proj_index} ({theta[v.proj_index]:g}°)", "counts", 62 * mm),
         data_panel("corr_proj", f"Corrected projection {v.proj_index}", corr_unit, 62 * mm)],
        [data_panel("raw_sino", f"Raw sinogram, detector row {v.raw_row}", "counts", 56 * mm,
                    y_ticks=_angle_ticks(theta, shp["raw_sino"][0], v.raw_sino_step), aspect=sino_aspect,
                    note=raw_note),
         data_panel("corr_sino", f"Corrected sinogram, row {v.corr_row}", corr_unit, 56 * mm,
                    y_ticks=_angle_ticks(theta, shp["corr_sino"][0]), aspect=sino_aspect)],
    ]

    def ortho_panel(arr: np.ndarray, title: str, width: float, height: float):
        return ImagePanel(PanelSpec(arr, title, recon_unit, pixel_um, to_physical=phys, note="full resolution",
                                    scale_bar=True), width, height)

    axial_title = f"Slice z = {nz // 2} (axial)"
    coronal_title, sagittal_title = f"Slice y = {ny // 2} (coronal)", f"Slice x = {nx // 2} (sagittal)"
    pad = [("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 3 * mm),
           ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
           ("VALIGN", (0, 0), (-1, -1), "TOP")]
    if nz < 0.6 * max(ny, nx):  # a flat volume: the axial slice large, the other two stacked beside it
        side = Table([[ortho_panel(sl.coronal, coronal_title, half, 34 * mm)],
                      [ortho_panel(sl.sagittal, sagittal_title, half, 34 * mm)]],
                     colWidths=[half], style=[*pad, ("RIGHTPADDING", (0, 0), (-1, -1), 0)])
        ortho = Table([[ortho_panel(sl.axial, axial_title, half, 72 * mm), side]],
                      colWidths=[half + 3 * mm] * 2, hAlign="LEFT", style=pad)
    else:
        ortho = Table([[ortho_panel(sl.axial, axial_title, third, 64 * mm),
                        ortho_panel(sl.coronal, coronal_title, third, 64 * mm),
                        ortho_panel(sl.sagittal, sagittal_title, third, 64 * mm)]],
                      colWidths=[third + 3 * mm] * 3, hAlign="LEFT", style=pad)
    grid = Table(panels, colWidths=[half + 3 * mm] * 2, hAlign="LEFT", style=pad)
    out += [grid, ortho, Paragraph(
        "Grey levels span the 0.5-99.5 percentiles of each image (colour bars give the values). "
        "Corrected data are after every correction listed on page 2; slices are of the stored volume"
        + (", with the colour bars in reconstructed values" if phys else "") + ".", SMALL)]
    return out


def _corrections(cfg: TomoConfig, steps: list[str]) -> list:
    rows = [["#", "Correction", "Parameters"]]
    for i, name in enumerate(steps, 1):
        section = getattr(cfg.preprocess, name, None)
        params = (section.model_dump(mode="json") if hasattr(section, "model_dump") else {})
        params.pop("enabled", None)
        rows.append([str(i), name.replace("_", " "), escape(_params(params))])
    if len(rows) == 1:
        rows.append(["", "none", ""])
    off = [n for n in type(cfg.preprocess).model_fields if n not in steps]
    return [Paragraph("Corrections applied, in order", H2), _table(rows, [7 * mm, 38 * mm, TEXT_W - 45 * mm]),
            Paragraph(f"Not applied: {', '.join(n.replace('_', ' ') for n in off)}.", SMALL)]


def _reconstruction(plan: Plan, cfg: TomoConfig, prov: dict) -> list:
    r = cfg.recon
    log_where = ("in pre-processing" if plan.log_applied else "before reconstruction") \
        if r.minus_log == "auto" else ("forced on" if r.minus_log else "off")
    onoff = {True: "on", False: "off"}
    rows = [["Setting", "Value"],
            ["Backend / algorithm / filter", f"{r.backend} / {r.algorithm} / {r.filter_name}"
             + (f" (filter_par {r.filter_par})" if r.filter_par else "")],
            ["Centre of rotation", (f"<b>{prov['center']:.3f} px</b>, {escape(str(prov['center_method']))} "
             "(columns after cropping and 360-to-180, before padding)")],
            ["-log", log_where],
            ["Padding", f"{onoff[r.pad.enabled]}, npad {r.pad.npad}, mode {r.pad.mode}"],
            ["360 to 180", f"{onoff[r.sino_360_to_180.enabled]}"
             + (f", old centre {_old_center(plan, cfg)} (detector columns after cropping)"
                if r.sino_360_to_180.enabled else "")],
            ["Excluded projections", json.dumps(r.excluded_proj) if r.excluded_proj else "none"],
            ["Stripe removal (sinograms)", "; ".join(f"{key}: {st.function} {_params(st.kwargs)}" for key, st in
             (("preprocess.stripe", cfg.preprocess.stripe), ("recon.stripe", r.stripe)) if st.enabled) or "off"],
            ["Ring removal", _params(r.ring_removal.model_dump(exclude={"enabled"}, exclude_none=True)
                                     | {"method": r.ring_removal.resolved_method})
             if r.ring_removal.enabled else "off"],
            ["Circular mask", f"ratio {r.circ_mask.ratio}, value {r.circ_mask.val}" if r.circ_mask.enabled
             else "off"],
            ["Laminography", _lamino_text(plan)],
            ["Chunking", (f"k = {plan.k} pre-processing jobs, j = {plan.j} reconstruction jobs, "
             f"{plan.slices_per_load} slices per load, tile {tuple(plan.tile)} (projections, rows), "
             f"budgets {cfg.budget_mb('preprocess'):g} MB (pre-processing), {cfg.budget_mb('recon'):g} MB "
             f"(reconstruction), {cfg.memory_mb:g} MB (other jobs)")]]
    return [Paragraph("Reconstruction", H2), _table(rows, [45 * mm, TEXT_W - 45 * mm])]


def _lamino_text(plan: Plan) -> str:
    """The laminography geometry and the detector rows the reconstruction jobs read."""
    lam = plan.lamino
    if not lam:
        return "off"
    return (f"<b>tilt {lam['angle']:g}°</b> (TomocuPy's convention), {lam['height']} slices centred on the "
            f"detector's middle row, lateral radius {lam['radius']:.1f} px; jobs read {sum(lam['rows_read'])} "
            f"detector rows of {plan.shape[1]} (read amplification {lam['read_amplification']:.2f}, "
            f"{lam['uniform_amplification']:g} if every load read the whole detector)")


def _resolution(prov: dict, pixel_um: float | None) -> list:
    """The FRC of two half-data reconstructions (`tomosnake.recon.frc`), as computed by conversion_range."""
    res = prov["conversion_range"].get("frc")
    if not res:
        return []
    if "skipped" in res:
        return [Paragraph("Resolution", H2), Paragraph(f"Not estimated: {escape(res['skipped'])}.", BODY)]
    px = res.get("resolution_px")
    if px:
        value = f"<b>{px:.2f} px</b>" + (f" (<b>{px * pixel_um:.3g} µm</b>)" if pixel_um else " (pixel size unknown)")
        text = f"Resolution {value}: the period where the FRC first falls below the 1/2-bit threshold"
    else:
        text = "The FRC stays above the 1/2-bit threshold up to the Nyquist frequency: resolution 2 px or better"
    text += (f". Fourier ring correlation of slices {res['rows']} reconstructed once from the even and once from "
             "the odd projections (each half has half the dose and angles, so the full data resolve somewhat finer).")
    plot = FRCPlot(res["freq"], res["frc"], res["threshold"], res.get("crossing"), 0.6 * TEXT_W, 36 * mm, pixel_um)
    side = Table([[Paragraph(text, BODY), plot]], colWidths=[0.4 * TEXT_W, 0.6 * TEXT_W],
                 style=[("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)])
    return [KeepTogether([Paragraph("Resolution", H2), side])]


def _conversion(f: h5py.File, prov: dict, dtype: np.dtype) -> list:
    counts, edges, st = read_histogram(f)
    conv = prov["conversion_range"]
    phys = _to_physical(conv, dtype)
    marks = []
    if conv.get("enabled"):
        text = (f"Converted to <b>{conv['dtype']}</b>, mode {conv['mode']}: reconstructed values "
                f"{fmt(conv['min'])} to {fmt(conv['max'])}")
        if np.issubdtype(dtype, np.integer):
            top = np.iinfo(dtype).max
            text += f" map linearly to 0-{top}, clipped"
            marks = [(0.0, "min"), (float(top), "max")]
        else:
            marks = [(conv["min"], "min"), (conv["max"], "max")]
        if conv.get("sample_rows"):
            text += f"; range from slices {conv['sample_rows']} of the pre-processed rows"
        text += "."
    else:
        text = "No bit-depth conversion: the volume holds the reconstructed float32 values."
    n = max(1, st["sampled"])  # the histogram's voxels
    clipped = ""
    if np.issubdtype(dtype, np.integer):
        lo_n, hi_n = counts[0], counts[-1]
        clipped = (f" Voxels in the lowest bin: {lo_n / n:.2%}, in the highest: {hi_n / n:.2%} "
                   "(clipping shows there).")
        if max(lo_n, hi_n) / n > CLIP_WARN:
            clipped += (f" <font color='#b00000'><b>More than {CLIP_WARN:.0%} of the voxels sit at an end of the "
                        "range: values beyond it are lost; a wider range (convert.mode minmax, or n_sigma, or "
                        "min/max) keeps them.</b></font>")
    stats = (f"All {st['count']:,} voxels: min {fmt(st['min'])}, max {fmt(st['max'])} (stored values); "
             f"non-finite {st['nan']:,}. From a fixed sample of {n:,} voxels (a regular grid over the volume): "
             f"this histogram, mean {fmt(st['mean'])}, std {fmt(st['std'])}, and {st['underflow']:,} below and "
             f"{st['overflow']:,} above its range.{clipped}")
    x_label = "reconstructed value (1/px)" + (f", stored as {dtype}" if phys else "")
    return [KeepTogether([Paragraph("Conversion range and histogram of the volume", H2), Paragraph(text, BODY),
                          Histogram(counts, edges, TEXT_W, 52 * mm, x_label, marks, phys), Paragraph(stats, SMALL)])]


def _outputs(cfg: TomoConfig, f: h5py.File, volume_path: Path) -> list:
    rows = [["Dataset", "Shape", "Type", "Storage"]]
    data = f["exchange/data"]
    rows.append(["/exchange/data", str(data.shape), str(data.dtype),
                 "virtual (over the reconstruction chunk files)" if data.is_virtual else f"chunks {data.chunks}"])
    for factor, ds in pyramid_levels(f).items():
        rows.append([f"/exchange/pyramid/{factor}", str(ds.shape), str(ds.dtype), (f"{factor}x block mean, "
                     f"chunks {ds.chunks}")])
    size = volume_path.stat().st_size
    extra = []
    if cfg.output.ome_zarr:
        extra.append(f"OME-Zarr copy {volume_path.name.removesuffix('.h5')}.ome.zarr")
    if cfg.output.tiff:
        extra.append(f"TIFF stack {volume_path.stem.removesuffix('_recon')}_tiff/")
    text = (f"{escape(volume_path.name)}: {_gb(size)} on disk. Beside it: {escape(volume_path.stem)}.yaml, the "
            "complete parameter set (repeats the run, page 4)"
            + (f"; requested copies (written by their own jobs): {', '.join(extra)}" if extra else "") + ".")
    return [Paragraph("Output", H2), Paragraph(text, BODY), Spacer(1, 1 * mm),
            _table(rows, [40 * mm, 34 * mm, 16 * mm, TEXT_W - 90 * mm])]


def _timing(summary: Summary) -> list:
    s = summary
    out: list = [Paragraph("Timings", H1)]
    if not s.records:
        return out + [Paragraph("No job timings were found (no benchmark files or job records).", BODY)]
    io_cov = (f"measured in {s.io_jobs} of {len(s.records)} jobs" if s.io_jobs < len(s.records)
              else "measured in every job")
    rows = [["Quantity", "Value", "Meaning"],
            ["Total time", _duration(s.total_s),
             "from the start of the first job (plan) to the writing of this report"],
            ["IO time", f"{_duration(s.io_s)} ({s.io_fraction:.0%})",
             (f"time inside HDF5/Zarr/TIFF reads and writes, summed over jobs; share of those jobs' wall time "
             f"({io_cov})")],
            ["Queue / scheduling", f"{_duration(s.idle_s)} ({s.idle_fraction:.0%})",
             ("time in which no job of this scan ran: waiting in the queue, Snakemake starting jobs and "
             "re-planning after the checkpoint")],
            ["Job time", _duration(s.job_s), f"sum of the {len(s.records)} jobs' wall times"],
            ["Throughput", _px_rate(s.pixels_per_s), f"{s.raw_pixels:,} raw pixels / total time"],
            ["Per thread", _px_rate(s.pixels_per_thread_s),
             f"throughput / {s.threads_peak} threads (most threads of jobs running at once)"]]
    out.append(_table(rows, [30 * mm, 28 * mm, TEXT_W - 58 * mm]))
    order = {name: i for i, name in enumerate(VOLUME_STAGES)}
    stage_rows = [["Stage", "Jobs", "Wall sum", "Wall max", "IO", "Peak RSS", "Read", "Written"]]
    for st in sorted(s.stages, key=lambda t: order.get(t.stage, 99)):
        stage_rows.append([st.stage, str(st.jobs), _duration(st.wall_sum), _duration(st.wall_max),
                           "-" if st.io_s is None else f"{_duration(st.io_s)} ({st.io_s / st.wall_sum:.0%})"
                           if st.wall_sum else _duration(st.io_s),
                           "-" if st.max_rss_mb is None else f"{st.max_rss_mb:.0f} MB",
                           "-" if st.read_mb is None else f"{st.read_mb:.1f} MB",
                           "-" if st.written_mb is None else f"{st.written_mb:.1f} MB"])
    w = TEXT_W / 8
    out += [Paragraph("Per stage", H2), _table(stage_rows, [w * 1.5] + [w * 6.5 / 7] * 7)]
    t0 = min(r.start for r in s.records)
    out += [Paragraph("Timeline", H2),
            Timeline([(r.stage, r.start, r.end, r.io_s) for r in s.records], t0, t0 + s.total_s, TEXT_W),
            Paragraph("Bars: jobs over wall-clock time, one lane per job running at the same time; the dark part of "
                      "a bar is its IO share (not its position in time).", SMALL),
            Spacer(1, 2 * mm),
            Paragraph("Wall times and peak memory (resident set size) are Snakemake's benchmarks where the rule has "
                      "one, else the job's own record; read/written are the benchmark's bytes at the OS level. This "
                      "report is written before cleanup, which needs it: neither the report's own time "
                      "(previews included) nor "
                      "cleanup's is included, nor the optional OME-Zarr/TIFF copies, which run beside it.", SMALL)]
    if s.total_s > 60 and s.idle_fraction > 0.5:
        out.append(Paragraph("More than half of the total time had no job running: either the jobs waited long in "
                             "the queue, or jobs of an earlier invocation were reused (then the total includes the "
                             "time between invocations).", SMALL))
    return out


def _provenance(prov: dict, config_path: Path) -> list:
    out: list = [Paragraph("Provenance", H1), Paragraph("Input files", H2)]
    rows = [["File", "Size", "Modified (UTC)", "Fingerprint"]]
    for fp in prov["input_fingerprint"]:
        rows.append([escape(fp["path"]), _gb(fp["size"]), fp["mtime"].replace("T", " ")[:16],
                     f"<font face='Courier' size='6.5'>{fp['fingerprint'][:32]}<br/>{fp['fingerprint'][32:]}</font>"])
    out.append(_table(rows, [78 * mm, 17 * mm, 27 * mm, TEXT_W - 122 * mm]))
    method = prov["input_fingerprint"][0]["method"] if prov["input_fingerprint"] else ""
    out.append(Paragraph(f"Fingerprint: {escape(method)}. "
                         + ("Full SHA-256 (sha256sum format):" if prov.get("input_sha256") else
                            "No full SHA-256 was asked for (config output.input_sha256)."), SMALL))
    if prov.get("input_sha256"):
        out.append(Preformatted(str(prov["input_sha256"]).strip(), CODE))
    sw = prov["software"]
    out += [Paragraph("Software", H2), Paragraph(", ".join(f"{k} {v}" for k, v in sw.items()), BODY),
            Paragraph("Repeat this run", H2),
            Paragraph(f"<font face='Courier' size='7'>{escape(str(prov.get('rerun', '')))}</font>", BODY),
            Paragraph(f"with the complete parameter set below, also in {escape(config_path.name)} beside the volume "
                      "and in the volume file (group /process/tomosnake).", SMALL),
            Spacer(1, 2 * mm), _config_block(prov["config"])]
    return out


def _config_block(config: dict) -> Flowable:
    """The config as YAML in two columns, split at a top-level key near the middle (one column if long)."""
    lines = []
    for line in yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=1000).splitlines():
        indent = " " * (len(line) - len(line.lstrip()) + 4)
        lines += textwrap.wrap(line, CONFIG_COLUMN_CHARS, subsequent_indent=indent, break_on_hyphens=False,
                               drop_whitespace=False) or [line]
    if len(lines) > 150:
        return Preformatted("\n".join(lines), CODE)
    tops = [i for i, line in enumerate(lines) if line and not line.startswith(" ")]
    cut = min(tops, key=lambda i: abs(i - len(lines) / 2))
    cols = [Preformatted("\n".join(part), CODE) for part in (lines[:cut], lines[cut:])]
    return Table([cols], colWidths=[TEXT_W / 2] * 2, hAlign="LEFT",
                 style=[("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 3),
                        ("BOX", (0, 0), (-1, -1), 0.3, colors.grey), ("LINEBEFORE", (1, 0), (1, 0), 0.3, colors.grey),
                        ("BACKGROUND", (0, 0), (-1, -1), colors.Color(0.97, 0.97, 0.97))])


def _footer(scan: str):
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")

    def draw(c, doc) -> None:
        c.saveState()
        c.setFont("Helvetica", 7)
        c.setFillColor(colors.grey)
        c.drawString(MARGIN, 8 * mm, f"tomosnake report: {scan}  -  {stamp}")
        c.drawRightString(PAGE_W - MARGIN, 8 * mm, f"page {doc.page}")
        c.restoreState()

    return draw


def job_summary(plan: Plan, cfg: TomoConfig, scan_dir: Path, until: float) -> Summary:
    """Timings of the jobs that made this scan's volume, up to ``until``."""
    files = ScanFiles(str(scan_dir), plan.scan)
    benchmarks = read_benchmarks(files.benchmarks)
    wanted = {"plan", "input_checksum", "vds_merge", "conversion_range", "combine"}
    wanted |= {f"preprocess_{k}" for k in range(plan.k)} | {f"recon_{j}" for j in range(plan.j)}
    jobs = [r for r in read_jobs(files.logs, benchmarks, cfg.threads) if r.job in wanted]
    plan_job = next((r for r in jobs if r.job == "plan"), None)
    if plan_job is not None:  # a job that ended before this plan was made belongs to an older plan
        jobs = [r for r in jobs if r.end >= plan_job.start]
    info = plan.info
    return summarize(jobs, benchmarks, info["n_proj"] * info["n_rows"] * info["n_cols"], until)


def write_report(plan: Plan, cfg: TomoConfig, previews_path: str | Path, volume_path: str | Path,
                 out_path: str | Path, scan_dir: str | Path | None = None,
                 analysis: tuple[str | Path, str | Path] | None = None) -> None:
    """Write the report PDF of one scan (``scan_dir``: where its logs and benchmarks are; ``analysis``: the
    analysis JSON and labels file, for a page of its own)."""
    scan_dir = Path(scan_dir) if scan_dir is not None else Path(volume_path).parent
    volume_path = Path(volume_path)
    summary = job_summary(plan, cfg, scan_dir, time.time())
    previews = Previews.read(previews_path)
    with h5py.File(volume_path, "r") as f:
        prov = provenance.read(f)
        data = f["exchange/data"]
        dtype, pixel_um = data.dtype, data.attrs.get("pixel_size_um")
        story = _page_one(plan, cfg, previews, read_slices(f), prov, volume_path, summary, pixel_um, dtype)
        story += [PageBreak(), Paragraph("Processing", H1), *_corrections(cfg, previews.steps),
                  *_reconstruction(plan, cfg, prov), *_resolution(prov, pixel_um), *_conversion(f, prov, dtype),
                  *_outputs(cfg, f, volume_path)]
        if analysis is not None:
            story += analysis_page(*analysis, f, TEXT_W, {"h1": H1, "h2": H2, "body": BODY}, _table)
    story += [PageBreak(), *_timing(summary), PageBreak(),
              *_provenance(prov, volume_path.with_suffix(".yaml"))]
    with atomic_path(out_path) as tmp:
        doc = SimpleDocTemplate(str(tmp), pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                                bottomMargin=MARGIN, title=f"tomosnake report: {plan.scan}", author="tomosnake",
                                subject=f"reconstruction of {Path(plan.input).name}")
        doc.build(story, onFirstPage=_footer(plan.scan), onLaterPages=_footer(plan.scan))
