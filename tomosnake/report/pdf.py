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
from typing import Any
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


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


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


def _pixel_text(info: dict, pixel_um: float | None, source: str) -> str:
    """Page 1's pixel size: its value and where it comes from."""
    in_file = info.get("pixel_size")
    if pixel_um and source == "the raw file":
        return f"{pixel_um:g} µm (the raw file)"
    if pixel_um:
        return f"{pixel_um:g} µm ({escape(source)}; " + (f"the raw file gives {in_file:g} without a unit)"
                                                          if in_file is not None else "the raw file gives none)")
    if in_file is not None:
        return f"{in_file:g} (no unit in the raw file; scale bars in pixels)"
    return "not given in the raw file nor by preprocess.phase.pixel_size (scale bars in pixels)"


def _raw_rows(plan: Plan) -> list[list[str]]:
    """Page 1's rows about the raw data: the file, or every file of a stitched scan and how they were joined."""
    info, theta = plan.info, plan.theta_deg
    angles = (f"angles {theta.min():g}-{theta.max():g}°; {info['n_flat']} flats, {info['n_dark']} darks")
    if not plan.stitch:
        return [["Raw file", f"<b>{escape(Path(plan.input).name)}</b> in {escape(str(Path(plan.input).parent))}"],
                ["Raw data", (f"{info['n_proj']} projections x {info['n_rows']} rows x {info['n_cols']} columns, "
                              f"{info['dtype']} ({_gb(plan.estimates['raw_bytes'])}); {angles}")]]
    st = plan.stitch
    names = ", ".join(f"<b>{escape(Path(p).name)}</b>" for p in st["inputs"])
    folders = sorted({str(Path(p).parent) for p in st["inputs"]})
    return [["Raw files", f"{names} in {escape(', '.join(folders))}: stitched (page 2)"],
            ["Raw data", (f"{len(st['inputs'])} files of {info['n_proj']} projections x {info['n_rows']} rows x "
                          f"{', '.join(map(str, st['widths']))} columns, {info['dtype']}, joined to "
                          f"{info['n_cols']} columns; {angles} (each file's own)")]]


def _page_one(plan: Plan, cfg: TomoConfig, v: Previews, sl: Slices, prov: dict, volume_path: Path,
              summary: Summary, pixel_um: float | None, pixel_source: str, dtype: np.dtype) -> list:
    center, method = prov["center"], prov["center_method"]
    info = plan.info
    nz, ny, nx = sl.shape
    r = cfg.recon
    px = _pixel_text(info, pixel_um, pixel_source)
    theta = plan.theta_deg
    time_line = (f"{_duration(summary.total_s)} end to end: {_px_rate(summary.pixels_per_s)} of raw data, "
                 f"{_px_rate(summary.pixels_per_thread_s)} per thread ({summary.threads_peak} threads at peak)"
                 if summary.total_s else "no job timings found")
    raw_file, raw_data = _raw_rows(plan)
    rows = [
        raw_file,
        ["Sample", escape(str(info["sample"]))],
        raw_data,
        ["Volume", (f"<b>{nz} x {ny} x {nx}</b> (z, y, x) {dtype}, {_gb(nz * ny * nx * dtype.itemsize)}, "
                   f"{cfg.output.combine}: {escape(volume_path.name)}")],
        ["Pixel size", px],
        ["Dates", (f"acquired {escape(v.acquired)}; " if v.acquired else "") + f"raw file modified {v.raw_modified}; "
                  f"reconstructed {str(prov['date'])[:16].replace('T', ' ')} UTC"],
        ["Reconstruction", (f"{r.backend} / {r.algorithm} / filter {r.filter_name}; centre <b>{center:.2f} px</b> "
                           f"({escape(str(method))})"
                           + ("; not TomoPy's own gridrec, which the .tori named (page 2)"
                              if tomopy_difference(cfg) else ""))],
        ["Run", f"{plan.k} pre-processing jobs at {cfg.budget_mb('preprocess'):g} MB, {plan.j} reconstruction "
                f"jobs at {cfg.budget_mb('recon'):g} MB; " + time_line],
    ]
    warnings = plan.warnings + v.warnings  # usable but odd input (the plan's sample, then every frame the jobs read)
    if warnings:  # first, where nobody misses it
        rows.insert(0, ["Warnings", "<br/>".join(f'<font color="#b00000">{escape(w)}</font>' for w in warnings)])
    out: list = [Paragraph(f"Reconstruction report: {escape(plan.scan)}", H1),
                 _table(rows, [26 * mm, TEXT_W - 26 * mm], header=False, zebra=True), Spacer(1, 3 * mm)]
    half, third = TEXT_W / 2 - 2 * mm, TEXT_W / 3 - 2 * mm
    corr_unit = "-ln(transmission)" if plan.log_applied else "transmission"
    recon_unit = "reconstructed value (1/px)"
    phys = _to_physical(prov["conversion_range"], dtype)
    img, shp = v.images, v.shapes
    sino_aspect = float(np.clip(shp["corr_sino"][0] / shp["corr_sino"][1], 0.35, 0.6))
    raw_note = f"every {ordinal(v.raw_sino_step)} projection" if v.raw_sino_step > 1 else ""
    raw_what, raw_unit = ("Stitched raw", "transmission") if v.stitched else ("Raw", "counts")
    joined = f"{v.stitched} files joined, each normalised by its own flats and darks" if v.stitched else ""

    def data_panel(name: str, title: str, unit: str, height: float, **kw) -> ImagePanel:
        return ImagePanel(PanelSpec(img[name], title, unit, pixel_um, shape=shp[name], **kw), half, height)

    panels = [
        [data_panel("raw_proj", f"{raw_what} projection {v.proj_index} ({theta[v.proj_index]:g}°)", raw_unit,
                    62 * mm, note=joined),
         data_panel("corr_proj", f"Corrected projection {v.proj_index}", corr_unit, 62 * mm)],
        [data_panel("raw_sino", f"{raw_what} sinogram, detector row {v.raw_row}", raw_unit, 56 * mm,
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


SECTION_TITLES = {
    "flat_dark": "flat/dark field", "i0": "I0 (beam intensity)", "normalize_to_unity": "normalisation to unity",
    "flatten": "flattening", "crop": "crop", "outlier": "outlier removal", "stripe": "stripe removal",
    "background": "background (air)", "minus_log_before_phase": "-log (before phase retrieval)",
    "phase": "phase retrieval (Paganin)", "minus_log_after_phase": "-log (after phase retrieval)",
}
MINUS_LOG = ("minus_log_before_phase", "minus_log_after_phase")


def _step_sections(cfg: TomoConfig, has_i0: bool | None) -> dict[str, str]:
    """Each configured step's name (as the pre-processing jobs record it, e.g. 'phase:tomopy', 'i0_air') ->
    its config section ('phase', 'i0')."""
    from tomosnake.corrections import REGISTRY, Facts  # the corrections' modules: only when a report is made

    out = {}
    for name, entry in REGISTRY.items():
        step = entry.factory(cfg.preprocess, Facts(has_i0=has_i0))
        if step is not None:
            out[step.name] = name
    return out


def _phase_params(c) -> str:
    # Spelt out: the PDF's standard fonts have no Greek letters.
    strength = (f"delta/beta = {c.delta_beta:g}" if c.delta_beta is not None else
                f"alpha = {c.alpha:g} (TomoPy's; delta/beta = {1 / (4 * np.pi**2 * c.alpha):.4g})")
    return (f"{strength}, energy {c.energy:g} keV, distance {c.dist:g} cm, pixel size {c.pixel_size * 1e4:g} µm; "
            f"filter {c.filter}, padding {'on' if c.pad else 'off'}")


def _section_params(cfg: TomoConfig, section: str, step: str) -> str:
    """A correction's parameters as the step used them."""
    c: Any = getattr(cfg.preprocess, section, None)
    if section == "phase":
        return _phase_params(c)
    if section == "i0":
        return ("beam monitor (the raw file's I0)" if step == "i0_monitor"
                else f"air: {c.air_columns} columns at each side of each projection")
    if section == "crop":
        return "rows {}:{}, columns {}:{} of the selected image".format(*c.ranges)
    if section == "stripe":
        return f"{c.function} {_params(c.kwargs)}"
    params = c.model_dump(mode="json") if hasattr(c, "model_dump") else {}
    params.pop("enabled", None)
    return escape(_params(params))


def _recon_minus_log(plan: Plan, cfg: TomoConfig) -> str | None:
    """How the reconstruction stage applies -log (None: it does not)."""
    m = cfg.recon.minus_log
    if m is True:
        return "recon.minus_log: true (forced)"
    if m == "auto" and not plan.log_applied:
        return "recon.minus_log: auto (the pre-processed data are transmission)"
    return None


def _corrections(plan: Plan, cfg: TomoConfig, steps: list[str]) -> list:
    """Every correction, each either applied (where, in order, with its parameters) or listed as not applied."""
    sections = _step_sections(cfg, plan.info.get("has_i0"))
    rows = [["#", "Correction", "Stage", "Parameters"]]
    done: set[str] = set()
    for name in steps:
        section = sections.get(name, name.split(":")[0])
        done.add(section)
        rows.append([str(len(rows)), SECTION_TITLES.get(section, name.replace("_", " ")), "pre-processing",
                     _section_params(cfg, section, name)])
    recon_log = _recon_minus_log(plan, cfg)
    if recon_log:
        rows.append([str(len(rows)), "-log", "reconstruction", recon_log])
        done.update(MINUS_LOG)
    if cfg.preprocess.stripe.enabled:
        rows.append([str(len(rows)), SECTION_TITLES["stripe"], "reconstruction, whole sinograms",
                     escape(_section_params(cfg, "stripe", "stripe"))])
        done.add("stripe")
    if len(rows) == 1:
        rows.append(["", "none", "", ""])
    off = [n for n in type(cfg.preprocess).model_fields if n not in done]
    if any(n in done for n in MINUS_LOG):
        off = [n for n in off if n not in MINUS_LOG]  # -log was applied once, where the table says
    elif all(n in off for n in MINUS_LOG):
        off = [n for n in off if n != MINUS_LOG[1]]
    titles = ["-log" if n in MINUS_LOG else SECTION_TITLES.get(n, n.replace("_", " ")) for n in off]
    return [Paragraph("Corrections, in the order applied", H2),
            _table(rows, [7 * mm, 38 * mm, 30 * mm, TEXT_W - 75 * mm]),
            Paragraph(f"Not applied: {', '.join(titles) or 'none'}.", SMALL)]


def _stitching(plan: Plan) -> list:
    """How a stitched scan's files were joined: every input, its offset from the motors and as refined, the
    overlaps of neighbours."""
    st = plan.stitch
    if not st:
        return []
    rows = [["File (left to right)", "Width", "Motor offset", "Refined offset", "Refined - motor"]]
    for i in sorted(range(len(st["inputs"])), key=lambda i: st["offsets"][i]):
        motor, refined = st["motor_offsets"][i], st["offsets"][i]
        rows.append([escape(Path(st["inputs"][i]).name), f"{st['widths'][i]} px", f"{motor:.1f} px",
                     f"<b>{refined} px</b>", f"{refined - motor:+.1f} px"])
    overlaps = "; ".join(f"{escape(Path(st['inputs'][a]).name)} / {escape(Path(st['inputs'][b]).name)}: "
                         f"<b>{n} px</b>" for a, b, n in st["overlaps"])
    text = (f"{len(st['inputs'])} files joined into projections of {plan.info['n_cols']} columns. Offsets are "
            "stitched columns of each file's first column: from the lateral motor positions (stitch.positions "
            "or each file's stitch.position_path, over the pixel size), then refined within "
            f"±{st['window']} px by the least mean squared difference of {st['n_proj']} evenly spaced projections "
            f"× {st['rows']} middle rows. Each file is normalised with its own flats and darks; overlaps (neighbours "
            f"left to right): {overlaps}, blended linearly (each pixel weighted by its distance from its own "
            "image's edge).")
    return [KeepTogether([Paragraph("Stitching", H2), Paragraph(text, BODY), Spacer(1, 1 * mm),
                          _table(rows, [70 * mm, 22 * mm, 28 * mm, 28 * mm, TEXT_W - 148 * mm])])]


def tomopy_difference(cfg: TomoConfig) -> str | None:
    """When a .tori (the TomoPy GUI's parameters) asked for gridrec and the default backend ran, what differs
    from TomoPy's own gridrec and why (measured in benchmarks/tomopy_parity.py); otherwise None."""
    r = cfg.recon
    if not cfg.tori or r.backend != "gridrec" or r.algorithm not in ("gridrec", "fbp"):
        return None
    return ("The .tori asked for TomoPy's gridrec; tomosnake's default backend ran (recon.backend: gridrec), "
            "so the slices differ from the TomoPy GUI's, mostly in fine detail: TomoPy puts the rotation axis on "
            "pixel ceil(n/2) of its slices, half a pixel (one for odd widths) off their middle, where this backend "
            "centres it; its hann and hamming default to filter_par [0.5] (hann is zero at 0.25 cycles/px), this "
            "backend's to [1] (zero at Nyquist); its ramp has no zero-frequency term and it grids without "
            "oversampling. Against phantoms' ground truth this backend's error is the same or lower "
            "(benchmarks/tomopy_parity.py). recon.backend: tomopy gives TomoPy's own output.")


def _reconstruction(plan: Plan, cfg: TomoConfig, prov: dict) -> list:
    r = cfg.recon
    log_where = ("in pre-processing" if plan.log_applied else "before reconstruction") \
        if r.minus_log == "auto" else ("forced on" if r.minus_log else "off")
    onoff = {True: "on", False: "off"}
    rows = [["Setting", "Value"],
            ["Backend / algorithm / filter", f"{r.backend} / {r.algorithm} / {r.filter_name}"
             + (f" ({_params(r.algorithm_params())})" if r.algorithm_params() else "")],
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
    note = tomopy_difference(cfg)
    if note:
        rows.insert(2, ["Not TomoPy's gridrec", escape(note)])
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
        value = f"<b>{px:.2f} px</b>" + (f" (<b>{px * pixel_um:.3g} µm</b> at {pixel_um:g} µm per pixel)"
                                         if pixel_um else " (pixel size unknown)")
        text = f"Resolution {value}: the period where the FRC first falls below the 1/2-bit threshold"
    else:
        text = ("The FRC stays above the 1/2-bit threshold up to the Nyquist frequency: resolution 2 px"
                + (f" ({2 * pixel_um:.3g} µm at {pixel_um:g} µm per pixel)" if pixel_um else "") + " or better")
    text += (f". Fourier ring correlation of slices {res['rows']} reconstructed once from the even and once from "
             "the odd projections (each half has half the dose and angles, so the full data resolve somewhat finer).")
    plot = FRCPlot(res["freq"], res["frc"], res["threshold"], res.get("crossing"), 0.6 * TEXT_W, 36 * mm, pixel_um)
    side = Table([[Paragraph(text, BODY), plot]], colWidths=[0.4 * TEXT_W, 0.6 * TEXT_W],
                 style=[("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)])
    return [KeepTogether([Paragraph("Resolution", H2), side])]


def _conversion(f: h5py.File, prov: dict, dtype: np.dtype, n_sigma: float) -> list:
    counts, edges, st = read_histogram(f)
    conv = prov["conversion_range"]
    phys = _to_physical(conv, dtype)
    marks = []
    if conv.get("enabled") and np.issubdtype(dtype, np.integer):
        top = np.iinfo(dtype).max
        how = {"std": f"mean ± {n_sigma:g} standard deviations of",
               "minmax": "minimum and maximum of"}.get(conv["mode"])
        text = (f"Converted to <b>{dtype}</b>: reconstructed values {fmt(conv['min'])} to {fmt(conv['max'])} map "
                f"linearly to 0-{top}, clipped; the range "
                + (f"is the {how} slices {conv['sample_rows']} of the pre-processed rows (recon.convert.mode "
                   f"{conv['mode']})" if how and conv.get("sample_rows") else
                   f"was given (recon.convert.mode {conv['mode']})") + ".")
        marks = [(0.0, "min"), (float(top), "max")]
    elif dtype == np.float16:
        text = ("Stored as <b>float16</b>: a plain cast of the reconstructed values (no range, no scaling; about "
                "3 significant digits).")
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
            "complete parameter set (repeats the run; see Provenance)"
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
    stage_rows = [["Stage", "Jobs", "Wall sum", "Wall max", "IO", "CPU", "Threads", "Peak RSS", "Read", "Written"]]
    for st in sorted(s.stages, key=lambda t: order.get(t.stage, 99)):
        stage_rows.append([st.stage, str(st.jobs), _duration(st.wall_sum), _duration(st.wall_max),
                           "-" if st.io_s is None else f"{_duration(st.io_s)} ({st.io_s / st.wall_sum:.0%})"
                           if st.wall_sum else _duration(st.io_s),
                           "-" if st.cpu_s is None else f"{_duration(st.cpu_s)} ({st.cpu_s / st.wall_sum:.1f})"
                           if st.wall_sum else _duration(st.cpu_s),
                           "-" if st.threads_used is None else str(st.threads_used),
                           "-" if st.max_rss_mb is None else f"{st.max_rss_mb:.0f} MB",
                           "-" if st.read_mb is None else f"{st.read_mb:.1f} MB",
                           "-" if st.written_mb is None else f"{st.written_mb:.1f} MB"])
    w = TEXT_W / 10
    out += [Paragraph("Per stage", H2), _table(stage_rows, [w * 1.5] + [w * 8.5 / 9] * 9)]
    t0 = min(r.start for r in s.records)
    out += [Paragraph("Timeline", H2),
            Timeline([(r.stage, r.start, r.end, r.io_s) for r in s.records], t0, t0 + s.total_s, TEXT_W),
            Paragraph("Bars: jobs over wall-clock time, one lane per job running at the same time; the dark part of "
                      "a bar is its IO share (not its position in time).", SMALL),
            Spacer(1, 2 * mm),
            Paragraph("Wall times are Snakemake's benchmarks where the rule has one, else the job's own record. CPU "
                      "(and, in brackets, the cores it kept busy on average), threads (the most one job ran at once) "
                      "and peak memory (resident set size of the process while the job ran) are the jobs' own "
                      "records, as jobs run inside Snakemake's process; read/written are the benchmark's bytes at "
                      "the OS level. This "
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
        pixel_source = str(data.attrs.get("pixel_size_source", "the raw file"))
        story = _page_one(plan, cfg, previews, read_slices(f), prov, volume_path, summary, pixel_um, pixel_source,
                          dtype)
        story += [PageBreak(), Paragraph("Processing", H1), *_corrections(plan, cfg, previews.steps),
                  *_stitching(plan),
                  *_reconstruction(plan, cfg, prov), *_resolution(prov, pixel_um),
                  *_conversion(f, prov, dtype, cfg.recon.convert.n_sigma),
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
