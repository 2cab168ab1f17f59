"""Figures for the PDF report, drawn with reportlab alone: image panels with colour bar and scale bar,
a histogram, and a job timeline. No plotting library is needed in the jobs' environments."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable

MAX_DISPLAY_PX = 900  # longest side of an embedded image; enough for ~90 mm at 250 dpi
MIN_ASPECT = 0.25  # thinner images are stretched vertically (and say so)
FONT, BOLD = "Helvetica", "Helvetica-Bold"
GREY = colors.Color(0.35, 0.35, 0.35)


def fmt(v: float) -> str:
    """A short label for a value: 3 significant digits, no exponent unless needed."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    return f"{v:.3g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.2e}"


def reduce_for_display(arr: np.ndarray, max_px: int = MAX_DISPLAY_PX) -> np.ndarray:
    """Block mean down to at most ``max_px`` on the longer side (float32)."""
    arr = np.asarray(arr, dtype=np.float32)
    f = math.ceil(max(arr.shape) / max_px)
    if f <= 1:
        return arr
    h, w = (arr.shape[0] // f) * f, (arr.shape[1] // f) * f
    return arr[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def window(arr: np.ndarray, lo_pct: float = 0.5, hi_pct: float = 99.5) -> tuple[float, float]:
    """Display range: the percentiles of the finite values."""
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [lo_pct, hi_pct]))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def to_grey(arr: np.ndarray, lo: float, hi: float) -> Image.Image:
    scaled = np.clip((np.nan_to_num(arr, nan=lo) - lo) / (hi - lo), 0, 1)
    return Image.fromarray((scaled * 255).round().astype(np.uint8))


def nice_length(target: float) -> float:
    """The 1, 2 or 5 times a power of ten nearest below ``target``."""
    if target <= 0:
        return 1.0
    p = 10 ** math.floor(math.log10(target))
    return max(m * p for m in (1, 2, 5) if m * p <= target)


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """Round values (multiples of 1, 2 or 5 times a power of ten) spanning ``lo`` to ``hi``, about ``n`` of them."""
    step = nice_length((hi - lo) / (n - 1))
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


@dataclass
class PanelSpec:
    """What one image panel shows."""

    data: np.ndarray  # 2-D, rows drawn top to bottom
    title: str
    value_label: str = ""  # colour-bar caption (units)
    pixel_um: float | None = None  # scale bar in micrometres when known, else in pixels
    scale_bar: bool = True
    y_ticks: Sequence[tuple[float, str]] = ()  # (row, label) on the left axis, e.g. angles of a sinogram
    aspect: float | None = None  # displayed height / width; None: true aspect (thin images stretched, and say so)
    to_physical: Callable[[float], float] | None = None  # colour-bar tick values from stored values
    note: str = ""
    shape: tuple[int, int] | None = None  # full (rows, columns) when ``data`` was reduced for display

    @property
    def full_shape(self) -> tuple[int, int]:
        return self.shape or self.data.shape


class ImagePanel(Flowable):
    """A greyscale image with title, colour bar (the display window), scale bar and optional y ticks,
    as wide as ``width`` allows and at most ``max_height`` tall."""

    TITLE_H, NOTE_H, BAR_GAP, BAR_W, BAR_TEXT = 12.0, 8.0, 1.5 * mm, 2.5 * mm, 14 * mm

    def __init__(self, spec: PanelSpec, width: float, max_height: float):
        super().__init__()
        self.spec, self.width = spec, width
        self.disp = reduce_for_display(spec.data)
        self.lo, self.hi = window(self.disp)
        rows, cols = spec.full_shape
        aspect, self.stretch = spec.aspect, 1.0
        if aspect is None:
            aspect = rows / cols
            if aspect < MIN_ASPECT:
                self.stretch, aspect = MIN_ASPECT / aspect, MIN_ASPECT
        self.left = 9 * mm if spec.y_ticks else 0.0
        box_w = width - self.left - self.BAR_GAP - self.BAR_W - self.BAR_TEXT
        box_h = max_height - self.TITLE_H - self.NOTE_H
        self.iw = min(box_w, box_h / aspect)
        self.ih = self.iw * aspect
        self.height = self.TITLE_H + self.ih + self.NOTE_H

    def wrap(self, avail_w: float, avail_h: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        c: Canvas = self.canv
        s = self.spec
        rows, cols = s.full_shape
        x0, y0 = self.left, self.NOTE_H
        c.setFont(BOLD, 7.5)
        c.drawString(0, self.height - 7, s.title)
        size = f"{cols} x {rows} px"
        right = x0 + self.iw + self.BAR_GAP + self.BAR_W
        c.setFont(FONT, 6.5)
        if c.stringWidth(s.title, BOLD, 7.5) + c.stringWidth(size, FONT, 6.5) + 3 * mm < right:
            c.setFillColor(GREY)
            c.drawRightString(right, self.height - 7, size)
            c.setFillColor(colors.black)
        c.drawImage(ImageReader(to_grey(self.disp, self.lo, self.hi)), x0, y0, self.iw, self.ih)
        c.setStrokeColor(GREY)
        c.setLineWidth(0.3)
        c.rect(x0, y0, self.iw, self.ih)
        self._colour_bar(c, x0 + self.iw + self.BAR_GAP, y0, self.BAR_W, self.ih)
        if s.scale_bar:
            self._scale_bar(c, x0, y0, self.iw / cols)
        if s.y_ticks:
            c.setFont(FONT, 6)
            c.setStrokeColor(colors.black)
            for row, label in s.y_ticks:
                y = y0 + self.ih - (row + 0.5) / rows * self.ih
                c.line(x0 - 1 * mm, y, x0, y)
                c.drawRightString(x0 - 1.3 * mm, min(y - 2, y0 + self.ih - 5), label)
        notes = [s.note] if s.note else []
        if self.stretch > 1.05:
            notes.append(f"rows stretched x{self.stretch:.1f} for display")
        if notes:
            c.setFont(FONT, 6)
            c.setFillColor(GREY)
            c.drawString(x0, y0 - 7, "; ".join(notes))
            c.setFillColor(colors.black)

    def _colour_bar(self, c: Canvas, x: float, y: float, w: float, h: float) -> None:
        ramp = Image.fromarray(np.linspace(255, 0, 256).astype(np.uint8)[:, None].repeat(4, axis=1))
        c.drawImage(ImageReader(ramp), x, y, w, h)
        c.rect(x, y, w, h)
        c.setFont(FONT, 5.5)
        c.setStrokeColor(colors.black)
        conv = self.spec.to_physical or (lambda v: v)
        for frac in ((0.0, 0.5, 1.0) if h >= 12 * mm else (0.0, 1.0)):
            v = conv(self.lo + frac * (self.hi - self.lo))
            ty = y + frac * h
            c.line(x + w, ty, x + w + 0.8 * mm, ty)
            c.drawString(x + w + 1.1 * mm, ty - 2 + (2 if frac == 0 and h < 12 * mm else 0), fmt(v))
        if self.spec.value_label and h >= 14 * mm:
            c.saveState()
            c.translate(x + w + 12.5 * mm, y + h / 2)
            c.rotate(90)
            c.drawCentredString(0, 0, self.spec.value_label)
            c.restoreState()

    def _scale_bar(self, c: Canvas, x0: float, y0: float, pt_per_col: float) -> None:
        cols = self.spec.full_shape[1]
        um = self.spec.pixel_um
        per_col = um if um else 1.0
        length = nice_length(0.25 * cols * per_col)
        bar = length / per_col * pt_per_col
        if bar < 4 * mm or self.ih < 6 * mm:
            return
        label = (f"{fmt(length / 1000)} mm" if length >= 1000 else f"{fmt(length)} µm") if um else f"{fmt(length)} px"
        c.setFont(BOLD, 6)
        lw = c.stringWidth(label, BOLD, 6)
        box_w, box_h = max(bar, lw) + 2 * mm, 4.6 * mm
        bx, by = x0 + self.iw - box_w - 0.8 * mm, y0 + 0.8 * mm
        c.setFillColor(colors.Color(0, 0, 0, alpha=0.55))
        c.rect(bx, by, box_w, box_h, fill=1, stroke=0)
        c.setFillColor(colors.white)
        c.rect(bx + (box_w - bar) / 2, by + 0.9 * mm, bar, 0.9 * mm, fill=1, stroke=0)
        c.drawCentredString(bx + box_w / 2, by + 2.4 * mm, label)
        c.setFillColor(colors.black)
        c.setStrokeColor(GREY)


class _Chart(Flowable):
    """A fixed-size chart: axes inset 14 mm left, 10 mm below and 3 mm at the other sides."""

    width: float
    height: float

    def wrap(self, avail_w: float, avail_h: float) -> tuple[float, float]:
        return self.width, self.height

    def plot_area(self) -> tuple[float, float, float, float]:
        """(x0, y0, w, h) of the axes on the flowable's canvas."""
        x0, y0 = 14 * mm, 10 * mm
        return x0, y0, self.width - x0 - 3 * mm, self.height - y0 - 3 * mm


class Histogram(_Chart):
    """Counts on fixed bins (log scale), the bins' centres mapped to physical values, marks at given values."""

    def __init__(self, counts: np.ndarray, edges: np.ndarray, width: float, height: float, x_label: str,
                 marks: Sequence[tuple[float, str]] = (), to_physical: Callable[[float], float] | None = None,
                 y_label: str = "voxels (log scale)"):
        super().__init__()
        self.y_label = y_label
        self.counts, self.edges = np.asarray(counts, dtype=np.float64), np.asarray(edges, dtype=np.float64)
        self.width, self.height, self.x_label, self.marks = width, height, x_label, marks
        self.to_physical = to_physical or (lambda v: v)

    def draw(self) -> None:
        c: Canvas = self.canv
        x0, y0, w, h = self.plot_area()
        top = max(1.0, float(self.counts.max()))
        decades = max(1, math.ceil(math.log10(top)))
        lo, hi = float(self.edges[0]), float(self.edges[-1])

        def xpos(v: float) -> float:
            return x0 + (v - lo) / (hi - lo) * w

        def ypos(n: float) -> float:
            return y0 + (math.log10(n) / decades * h if n >= 1 else 0.0)

        c.setFillColor(colors.Color(0.25, 0.4, 0.65))
        c.setStrokeColor(colors.Color(0.25, 0.4, 0.65))
        for n, a, b in zip(self.counts, self.edges[:-1], self.edges[1:], strict=True):
            if n >= 1:
                c.rect(xpos(a), y0, max(0.2, xpos(b) - xpos(a)), ypos(n) - y0 if n > 1 else 0.6, fill=1, stroke=0)
        c.setStrokeColor(colors.black)
        c.setFillColor(colors.black)
        c.setLineWidth(0.4)
        c.line(x0, y0, x0 + w, y0)
        c.line(x0, y0, x0, y0 + h)
        c.setFont(FONT, 6)
        for d in range(decades + 1):
            y = y0 + d / decades * h
            c.line(x0 - 1 * mm, y, x0, y)
            c.drawRightString(x0 - 1.3 * mm, y - 2, f"1e{d}" if d > 3 else f"{10 ** d}")
        p_lo, p_hi = self.to_physical(lo), self.to_physical(hi)  # a linear map: ticks at round physical values
        for p in nice_ticks(p_lo, p_hi):
            x = xpos(lo + (p - p_lo) / (p_hi - p_lo) * (hi - lo))
            c.line(x, y0, x, y0 - 1 * mm)
            c.drawCentredString(x, y0 - 3.5 * mm, fmt(p))
        c.drawCentredString(x0 + w / 2, y0 - 7.5 * mm, self.x_label)
        c.saveState()
        c.translate(x0 - 10 * mm, y0 + h / 2)
        c.rotate(90)
        c.drawCentredString(0, 0, self.y_label)
        c.restoreState()
        c.setStrokeColor(colors.Color(0.8, 0.1, 0.1))
        c.setFillColor(colors.Color(0.8, 0.1, 0.1))
        c.setDash(2, 1.5)
        for v, label in self.marks:
            if lo <= v <= hi:
                x = xpos(v)
                c.line(x, y0, x, y0 + h)
                if x > x0 + w - 10 * mm:
                    c.drawRightString(x - 0.8 * mm, y0 + h - 6, label)
                else:
                    c.drawString(x + 0.8 * mm, y0 + h - 6, label)
        c.setDash()


class FRCPlot(_Chart):
    """Fourier ring correlation against spatial frequency, the 1/2-bit threshold, and the crossing marked."""

    def __init__(self, freq: Sequence[float], frc: Sequence[float], threshold: Sequence[float],
                 crossing: float | None, width: float, height: float, pixel_um: float | None = None):
        super().__init__()
        self.freq, self.frc, self.threshold = (np.asarray(v, dtype=np.float64) for v in (freq, frc, threshold))
        self.crossing, self.width, self.height, self.pixel_um = crossing, width, height, pixel_um

    def draw(self) -> None:
        c: Canvas = self.canv
        x0, y0, w, h = self.plot_area()

        def xpos(f: float) -> float:
            return x0 + f / 0.5 * w

        def ypos(v: float) -> float:
            return y0 + (min(max(v, -0.2), 1.0) + 0.2) / 1.2 * h

        c.setLineWidth(0.4)
        c.line(x0, y0, x0 + w, y0)
        c.line(x0, y0, x0, y0 + h)
        c.setFont(FONT, 6)
        for v in (-0.2, 0, 0.2, 0.4, 0.6, 0.8, 1.0):
            c.line(x0 - 1 * mm, ypos(v), x0, ypos(v))
            c.drawRightString(x0 - 1.3 * mm, ypos(v) - 2, f"{v:g}")
        for f in (0, 0.1, 0.2, 0.3, 0.4, 0.5):
            c.line(xpos(f), y0, xpos(f), y0 - 1 * mm)
            c.drawCentredString(xpos(f), y0 - 3.5 * mm, f"{f:g}")
        c.drawCentredString(x0 + w / 2, y0 - 7.5 * mm, "spatial frequency (cycles per pixel; 0.5 = Nyquist)")
        c.saveState()
        c.translate(x0 - 9 * mm, y0 + h / 2)
        c.rotate(90)
        c.drawCentredString(0, 0, "FRC")
        c.restoreState()
        for values, colour, dash in ((self.threshold, colors.Color(0.8, 0.1, 0.1), (2, 1.5)),
                                     (self.frc, colors.Color(0.25, 0.4, 0.65), ())):
            c.setStrokeColor(colour)
            c.setDash(*dash) if dash else c.setDash()
            c.setLineWidth(0.8)
            path = c.beginPath()
            path.moveTo(xpos(self.freq[0]), ypos(values[0]))
            for f, v in zip(self.freq[1:], values[1:], strict=True):
                path.lineTo(xpos(f), ypos(v))
            c.drawPath(path, stroke=1, fill=0)
        c.setDash()
        c.setFillColor(colors.Color(0.8, 0.1, 0.1))
        c.drawRightString(x0 + w, ypos(float(self.threshold[-1])) + 3, "1/2-bit threshold")
        if self.crossing:
            x = xpos(self.crossing)
            c.setStrokeColor(colors.black)
            c.setLineWidth(0.4)
            c.line(x, y0, x, y0 + h)
            label = f"{1 / self.crossing:.2f} px" + (
                f" = {self.pixel_um / self.crossing:.3g} µm" if self.pixel_um else "")
            c.setFillColor(colors.black)
            c.drawString(x + 1 * mm, y0 + h - 6, f"crossing {self.crossing:.3f}: {label}")
        c.setFillColor(colors.black)
        c.setStrokeColor(colors.black)


# Colours of the pipeline's stages in the timeline, in pipeline order.
STAGE_COLOURS = {
    "plan": colors.Color(0.55, 0.55, 0.55), "input_checksum": colors.Color(0.7, 0.6, 0.4),
    "preprocess": colors.Color(0.2, 0.5, 0.8), "vds_merge": colors.Color(0.5, 0.7, 0.9),
    "conversion_range": colors.Color(0.9, 0.6, 0.2), "recon": colors.Color(0.85, 0.35, 0.15),
    "combine": colors.Color(0.3, 0.65, 0.3),
}


def _lanes(intervals: list[tuple[float, float]]) -> list[int]:
    """Greedy lane per interval (sorted by start) so that intervals in one lane do not overlap."""
    ends: list[float] = []
    lanes = []
    for a, b in intervals:
        for i, e in enumerate(ends):
            if a >= e:
                ends[i] = b
                lanes.append(i)
                break
        else:
            ends.append(b)
            lanes.append(len(ends) - 1)
    return lanes


class Timeline(Flowable):
    """One row per stage, one bar per job over wall-clock time; the dark part of a bar is its IO share."""

    def __init__(self, jobs: Sequence[tuple[str, float, float, float | None]], t0: float, t1: float,
                 width: float, row_h: float = 5 * mm):
        super().__init__()
        self.jobs, self.t0, self.t1, self.width = jobs, t0, max(t1, t0 + 1e-3), width
        self.stages = list(dict.fromkeys(s for s, *_ in jobs))
        self.row_h = row_h
        self.height = len(self.stages) * row_h + 12 * mm

    def wrap(self, avail_w: float, avail_h: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        c: Canvas = self.canv
        x0, y0 = 24 * mm, 9 * mm
        w = self.width - x0 - 3 * mm

        def xpos(t: float) -> float:
            return x0 + (t - self.t0) / (self.t1 - self.t0) * w

        c.setFont(FONT, 6.5)
        for i, stage in enumerate(self.stages):
            row_top = y0 + (len(self.stages) - i) * self.row_h
            c.setFillColor(colors.black)
            c.drawRightString(x0 - 1.5 * mm, row_top - self.row_h / 2 - 2, stage)
            jobs = sorted((j for j in self.jobs if j[0] == stage), key=lambda j: j[1])
            lanes = _lanes([(a, b) for _, a, b, _ in jobs])
            n = max(lanes) + 1
            lane_h = (self.row_h - 1) / n
            colour = STAGE_COLOURS.get(stage, colors.Color(0.5, 0.3, 0.6))
            for (_, a, b, io), lane in zip(jobs, lanes, strict=True):
                y = row_top - 0.5 - (lane + 1) * lane_h
                bw = max(0.4, xpos(b) - xpos(a))
                c.setFillColor(colour)
                c.rect(xpos(a), y, bw, lane_h * 0.9, fill=1, stroke=0)
                if io:
                    c.setFillColor(colors.Color(0.1, 0.1, 0.1, alpha=0.55))
                    c.rect(xpos(a), y, bw * min(1.0, io / max(b - a, 1e-9)), lane_h * 0.9, fill=1, stroke=0)
        c.setStrokeColor(colors.black)
        c.setFillColor(colors.black)
        c.setLineWidth(0.4)
        c.line(x0, y0, x0 + w, y0)
        span = self.t1 - self.t0
        step = nice_length(span / 5)
        t = 0.0
        while t <= span + 1e-9:
            c.line(xpos(self.t0 + t), y0, xpos(self.t0 + t), y0 - 1 * mm)
            c.drawCentredString(xpos(self.t0 + t), y0 - 3.5 * mm, f"{t:g}")
            t += step
        c.drawCentredString(x0 + w / 2, y0 - 7.5 * mm, "seconds since the first job started")
