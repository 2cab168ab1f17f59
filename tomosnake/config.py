"""The parameter model of a tomosnake run, validated with pydantic.

One model holds every parameter; defaults live here, not in rules. Unknown keys
and out-of-range values are rejected with a message that names the key
(`ConfigError`). Sources are merged in this order, later wins:
model defaults < .tori file < config file < ``--config`` overrides.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


class ConfigError(ValueError):
    """A parameter set that cannot run; the message names the offending key."""


class Strict(BaseModel):
    """Base: unknown keys are errors, assignments are validated, no number is infinite or NaN (YAML's
    ``.inf`` and ``.nan``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- input
Slice3 = tuple[int, int, int]


class InputConfig(Strict):
    """Where the raw scan's datasets are (DXchange layout by default)."""

    data_path: str = "exchange/data"
    flat_file: str | None = None
    flat_path: str = "exchange/data_white"
    dark_file: str | None = None
    dark_path: str = "exchange/data_dark"
    theta_path: str = "exchange/theta"
    theta_source: Literal["exchange", "calc"] = "exchange"
    theta_start: float = 0.0
    theta_end: float = 180.0
    i0_path: str = "instrument/beam_monitor/data"
    slice_proj: Slice3 = (0, -1, 1)
    slice_ver: Slice3 = (0, -1, 1)
    slice_hor: Slice3 = (0, -1, 1)

    @field_validator("slice_proj", "slice_ver", "slice_hor")
    @classmethod
    def _positive_step(cls, v: Slice3) -> Slice3:
        if v[2] < 1:
            raise ValueError("step must be >= 1")
        if v[0] < 0:
            raise ValueError("start must be >= 0")
        return v


class StitchConfig(Strict):
    """Projection stitching: scans of one sample at several lateral positions joined into full-width projections."""

    enabled: bool = False
    inputs: list[str] = Field(default_factory=list, description="the scans to join (DXchange HDF5), in any order; "
                              "the first names the scan")
    positions: list[float] | None = Field(None, description="lateral motor positions, one per input, increasing "
                                          "towards higher detector columns; default: read position_path in each file")
    position_path: str = "instrument/sample/x"
    pixel_size: float | None = Field(None, gt=0, description="in the unit of the positions; default: each file's "
                                     "measurement/instrument/detector/pixel_size")
    window: int = Field(20, ge=1, description="offsets are searched within this many pixels of the motor positions'")
    n_proj: int = Field(5, ge=1, description="projections (evenly spaced) compared to refine the offsets")
    rows: int = Field(32, ge=1, description="rows (at mid height) compared to refine the offsets")

    @model_validator(mode="after")
    def _inputs(self) -> StitchConfig:
        if self.enabled and len(self.inputs) < 2:
            raise ValueError("stitch.inputs needs at least two files to join")
        if len(set(self.inputs)) != len(self.inputs):
            raise ValueError("stitch.inputs names a file twice")
        if self.positions is not None and len(self.positions) != len(self.inputs):
            raise ValueError(f"stitch.positions has {len(self.positions)} values for {len(self.inputs)} inputs")
        return self


# ---------------------------------------------------------------------- preprocess
class FlatDark(Strict):
    normalize_dark: bool = True
    normalize_flat: bool = True
    method: Literal["mean", "median"] = "mean"


class I0Correction(Strict):
    enabled: bool = False
    source: Literal["auto", "monitor", "air"] = "auto"
    air_columns: int = Field(16, ge=1, description="columns at each side used when source is air")


class NormalizeToUnity(Strict):
    enabled: bool = False


class Flatten(Strict):
    enabled: bool = False
    size: int = Field(64, ge=1)


class Crop(Strict):
    enabled: bool = False
    ranges: tuple[int, int, int, int] = (0, -1, 0, -1)  # top, bottom, left, right (half-open)


class Outlier(Strict):
    enabled: bool = False
    dif: float = Field(0.4, gt=0)
    size: int = Field(3, ge=1)


class StripeRemoval(Strict):
    """Sinogram stripe removal (`tomosnake.recon.stripe`), run in the reconstruction stage on whole sinograms,
    ``preprocess.stripe`` before ``recon.stripe``; the plan checks function and kwargs."""

    enabled: bool = False
    function: str = Field("profile", description="profile, sorting, or an algotom stripe removal by name")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="profile/sorting: size (odd, columns)")

    @field_validator("kwargs", mode="before")
    @classmethod
    def _as_given(cls, v: Any) -> Any:
        """``kwargs: null``: the function's defaults. Snakemake reads a ``--config`` mapping with YAML's base
        loader (every scalar a string): each string value is read again as a YAML scalar (``"9"`` -> 9)."""
        if v is None or v == "null":
            return {}
        if isinstance(v, dict):
            return {k: _scalar(x) if isinstance(x, str) else x for k, x in v.items()}
        return v


class Background(Strict):
    """Air/background correction (TomoPy ``normalize_bg`` semantics)."""

    enabled: bool = False
    air: int = Field(10, ge=1)


class PhaseRetrieval(Strict):
    """Paganin phase retrieval. Lengths in cm, energy in keV (TomoPy's units).

    Give the sample as ``delta_beta`` (delta/beta of its refractive index n = 1 - delta + i beta): the
    textbook filter 1 / (1 + pi lambda dist (delta/beta) |f|^2). ``alpha`` is TomoPy's regularisation,
    as .tori files hold it: 1 / (1 + lambda dist |f|^2 / (4 pi alpha)), so alpha = beta / (4 pi^2 delta)
    gives the same filter (alpha = beta/delta is 39x too weak). ``delta_beta``, when set, wins.
    """

    enabled: bool = False
    pixel_size: float = Field(0.00055, gt=0, description="detector pixel size at the sample, cm")
    dist: float = Field(28.0, gt=0, description="sample-detector distance, cm")
    energy: float = Field(20.0, gt=0, description="photon energy, keV")
    delta_beta: float | None = Field(None, gt=0, description="delta/beta of the sample (e.g. ~1000 for soft "
                                     "tissue or polymers at 20-30 keV); when set, alpha is not used")
    alpha: float = Field(0.002, gt=0, description="TomoPy's alpha (.tori files): beta / (4 pi^2 delta) for the "
                         "textbook filter; used when delta_beta is null")
    pad: bool = True
    filter: Literal["tomopy", "generalised"] = Field(
        "tomopy", description="tomopy: whole projections per tile (as the GUI); generalised (Paganin et al. "
        "2020): exponentially decaying kernel, so row tiles with a finite overlap are exact")


class PreprocessConfig(Strict):
    flat_dark: FlatDark = FlatDark()
    i0: I0Correction = I0Correction()
    normalize_to_unity: NormalizeToUnity = NormalizeToUnity()
    flatten: Flatten = Flatten()
    crop: Crop = Crop()
    outlier: Outlier = Outlier()
    stripe: StripeRemoval = StripeRemoval()
    background: Background = Background()
    minus_log_before_phase: bool = False
    phase: PhaseRetrieval = PhaseRetrieval()
    minus_log_after_phase: bool = False


# --------------------------------------------------------------------------- recon
LAMINO_BACKENDS = ("gridrec", "tomocupy")  # gridrec: tomosnake.recon.lamino's direct FBP on the CPU
class Sino360(Strict):
    """Half acquisition: a 360-degree scan with the axis near one edge, stitched into a 180-degree sinogram."""

    enabled: bool = False
    old_center: float | Literal["auto"] | None = Field(
        None, description="the axis of the 360-degree projections in detector columns (after cropping); "
        "null or 'auto': found by the plan. recon.center, when given, is in columns of the stitched sinogram")


class Padding(Strict):
    enabled: bool = True
    npad: Literal["auto"] | int = "auto"
    mode: Literal["edge", "constant", "reflect"] = "edge"

    @field_validator("npad")
    @classmethod
    def _not_negative(cls, v: str | int) -> str | int:
        if v != "auto" and int(v) < 0:
            raise ValueError(f"{v} columns: padding cannot be negative (use 0, or 'auto')")
        return v


class RingRemoval(Strict):
    """consistent: rings found alike in the angular sectors (`steps.remove_rings_consistent`); tomopy:
    TomoPy's remove_ring with thresh, theta_min, rwidth. Default: tomopy when any of these is set (a .tori
    that sets them), else consistent (TomoPy's defaults harm: thresh 300 excludes nothing, rwidth 30
    flattens the object's shells)."""

    enabled: bool = False
    method: Literal["consistent", "tomopy"] | None = None
    thresh: float | None = None
    theta_min: float | None = None
    rwidth: int | None = None

    @property
    def resolved_method(self) -> str:
        if self.method is not None:
            return self.method
        return "tomopy" if (self.thresh, self.theta_min, self.rwidth) != (None, None, None) else "consistent"


class CircMask(Strict):
    enabled: bool = False
    ratio: float = Field(0.95, gt=0, le=1)
    val: float = 0.0


class Convert(Strict):
    enabled: bool = False
    dtype: Literal["float32", "float16", "uint16", "uint8"] = "float32"
    mode: Literal["minmax", "std", "manual"] = "std"
    min: float | None = None
    max: float | None = None
    n_sigma: float = Field(3.0, gt=0)

    @property
    def output_dtype(self) -> str:
        """The volume's dtype: ``dtype`` when the conversion is enabled, else float32."""
        return self.dtype if self.enabled else "float32"

    @model_validator(mode="after")
    def _manual_needs_range(self) -> Convert:
        if self.enabled and self.mode == "manual" and (self.min is None or self.max is None):
            raise ValueError("convert.mode 'manual' needs convert.min and convert.max")
        if self.min is not None and self.max is not None and self.max <= self.min:
            raise ValueError("convert.max must be greater than convert.min")
        return self


class CenterSearch(Strict):
    """The plan's automatic centre (`tomosnake.recon.center.center_from_scan`)."""

    method: Literal["opposite"] = "opposite"
    pairs: int = Field(4, ge=1, le=64, description="pairs of opposite projections compared (360-degree scans; "
                       "a 180-degree scan has one or two); each reads two frames")


class Lamino(Strict):
    """Laminography: the rotation axis tilted by ``angle`` from the detector plane (TomocuPy's ``--lamino-angle``).

    Geometry (as TomocuPy's linerec kernel): a point (x, y, z) of the sample, z along the rotation
    axis, projects at angle theta to column u = c + x cos(theta) + y sin(theta) and row
    v = v_c + z cos(angle) - (x sin(theta) - y cos(theta)) sin(angle), c the rotation axis (``recon.center``)
    and v_c the detector's middle row. Positive angles tilt the axis's +z end towards u x v (the
    detector's column axis cross its row axis, both increasing with the pixel index).
    """

    enabled: bool = False
    angle: float = Field(20.0, description="degrees, strictly between 0 and 90 (0 is ordinary tomography)")
    height: int | None = Field(None, ge=1, description="output slices, centred on the detector's middle row; "
                               "default TomocuPy's: detector rows / cos(angle)")

    @field_validator("angle")
    @classmethod
    def _open_interval(cls, v: float) -> float:
        if not 0.0 < v < 90.0:
            raise ValueError("must be strictly between 0 and 90 degrees")
        return v


# The filter when the config names none: the window with the least error against the truth over
# three cases (relative RMSE after a gain/offset fit; gridrec, true centre; see benchmarks/end_to_end.py):
#                       shepp   cosine  hann    ramlak
#   1024 px, Poisson    0.050   0.036   0.033   0.060   (the end-to-end benchmark's scan)
#   1024 px, no noise   0.025   0.027   0.030   0.026
#   128 px, Poisson     0.069   0.076   0.087   0.069   (features a few pixels wide)
# Cosine is never far from the best. algotom has no cosine: Hann; TomocuPy offers shepp and parzen.
DEFAULT_FILTER = {"gridrec": "cosine", "tomopy": "cosine", "algotom": "hann", "tomocupy": "shepp"}
# The filters with parameters (TomoPy's filter_par) and how many values each reads (TomoPy's filters.h).
FILTER_PARS = {"hann": 1, "hamming": 1, "parzen": 1, "butterworth": 2}
# Parameters of the reconstruction algorithm beyond the filter's name (tomopy.recon keywords); each
# backend says which it honours (`tomosnake.recon.backends.Backend.params`).
ALGORITHM_PARAMS = ("filter_par", "num_iter", "reg_par", "num_block")


class ReconConfig(Strict):
    minus_log: Literal["auto"] | bool = "auto"
    sino_360_to_180: Sino360 = Sino360()
    excluded_proj: list[tuple[int, int]] = Field(default_factory=list)
    pad: Padding = Padding()
    stripe: StripeRemoval = StripeRemoval()
    backend: Literal["gridrec", "tomopy", "tomocupy", "algotom"] = "gridrec"
    algorithm: str = "gridrec"
    filter_name: str = Field(None, validate_default=False,  # type: ignore[assignment]
                             description="default: the backend's DEFAULT_FILTER")
    filter_par: list[float] | None = Field(None, description="the filter's parameters, TomoPy's formulas: [c] for "
                                           "hann and hamming (period c: hann's zero at c/2), parzen (zero at c), "
                                           "[c, order] for butterworth (cut-off c), c in cycles per pixel; null: "
                                           "each window's default (`gridrec.filter_response`)")
    num_iter: int | None = Field(None, ge=1, description="iterations of TomoPy's iterative algorithms (art, sirt, "
                                 "mlem, osem, tv, ...); null: TomoPy's default, 1")
    reg_par: list[float] | None = Field(None, description="TomoPy's reg_par: the regularisation of tv, grad, tikh, "
                                        "pml_*, ospml_*")
    num_block: int | None = Field(None, ge=1, description="TomoPy's num_block: data blocks of bart, osem, ospml_*")
    center: float | None = Field(None, description="rotation axis in columns of the sinogram reconstructed "
                                 "(after cropping and 360-to-180, before padding); null: automatic")
    center_search: CenterSearch = CenterSearch()
    ring_removal: RingRemoval = RingRemoval()
    circ_mask: CircMask = CircMask()
    convert: Convert = Convert()
    lamino: Lamino = Lamino()

    @model_validator(mode="after")
    def _lamino(self) -> ReconConfig:
        if self.lamino.enabled:
            if self.sino_360_to_180.enabled:
                raise ValueError("recon.sino_360_to_180: a laminography scan cannot be converted to 180 degrees "
                                 "(recon.lamino.enabled)")
            if self.backend not in LAMINO_BACKENDS:
                raise ValueError(f"recon.backend: laminography needs one of {', '.join(LAMINO_BACKENDS)}, "
                                 f"not {self.backend!r}")
            if self.backend == "tomocupy" and self.algorithm not in ("gridrec", "fourierrec", "linerec"):
                raise ValueError(f"recon.algorithm: TomocuPy's laminography has fourierrec and linerec, "
                                 f"not {self.algorithm!r}")
        return self

    @field_validator("excluded_proj")
    @classmethod
    def _ranges(cls, v: list[tuple[int, int]]) -> list[tuple[int, int]]:
        for a, b in v:
            if not 0 <= a < b:
                raise ValueError(f"range [{a}, {b}] is empty or reversed (half-open [from, to), 0 <= from < to)")
        return v

    @model_validator(mode="after")
    def _default_filter(self) -> ReconConfig:
        if self.filter_name is None:
            self.filter_name = DEFAULT_FILTER[self.backend]
        if self.filter_par is not None:  # TomoPy's filters.h: which filters read which values
            takes = FILTER_PARS.get(self.filter_name, 0)
            if takes == 0:
                raise ValueError(f"recon.filter_par: filter {self.filter_name!r} takes no parameters (hann, hamming "
                                 "and parzen take [c], butterworth [c, order])")
            if len(self.filter_par) != takes:
                raise ValueError(f"recon.filter_par: filter {self.filter_name!r} takes {takes} value(s) "
                                 f"({'[c, order]' if takes == 2 else '[c]'}), not {self.filter_par}")
            if self.filter_par[0] <= 0:
                raise ValueError(f"recon.filter_par: c must be positive, not {self.filter_par[0]}")
        return self

    def algorithm_params(self) -> dict[str, Any]:
        """The algorithm's own parameters that are set (filter_par, num_iter, reg_par, num_block), TomoPy's names."""
        return {k: getattr(self, k) for k in ALGORITHM_PARAMS if getattr(self, k) is not None}


# -------------------------------------------------------------------------- output
class OutputConfig(Strict):
    combine: Literal["physical", "virtual"] = Field(
        "virtual", description="virtual: the volume file is a VDS over the reconstructed chunks (copies nothing; "
        "nabu's HDF5 output is alike); physical: one self-contained file, written once more at disk speed")
    pyramid: list[int] = Field(default_factory=list)
    ome_zarr: bool = False
    tiff: bool = False
    input_sha256: bool = Field(False, description="store the raw files' full SHA-256 in the volume (reads them "
                               "once more, in a job of its own); a size/mtime/sampled-block fingerprint always is")

    @field_validator("pyramid")
    @classmethod
    def _factors(cls, v: list[int]) -> list[int]:
        if any(f < 2 for f in v) or v != sorted(set(v)):
            raise ValueError("pyramid factors must be increasing integers >= 2")
        return v


class AnalysisConfig(Strict):
    """Segmentation and measurement of the reconstructed volume (`tomosnake.analysis`), after combine.

    Phases from global thresholds on the volume's histogram (Otsu; multi-Otsu for ``phases`` > 2),
    darkest first; objects are the connected components (6-connected) of ``object_phase``, optionally
    split by a distance-transform watershed, counted once across the volume.
    """

    enabled: bool = False
    level: int = Field(0, ge=0, description="0: the full volume; i >= 1: the pyramid level of the i-th factor "
                       "of output.pyramid (the OME-Zarr's level i), for a quick look")
    phases: int = Field(2, ge=2, le=5, description="classes of grey values (multi-Otsu), darkest first")
    smooth: float = Field(0.0, ge=0, description="Gaussian sigma (voxels of the level) before thresholding; 0: none")
    object_phase: int | None = Field(None, ge=0, description="phase whose objects are measured; default the "
                                     "brightest (phases - 1)")
    watershed: bool = Field(False, description="split touching particles by a distance-transform watershed")
    particle_radius: float = Field(8.0, gt=0, description="watershed: the largest particle's radius (voxels of "
                                   "the level); seeds lie at least half of it apart, the slabs' halo follows")
    min_voxels: int = Field(1, ge=1, description="objects smaller than this are not counted")

    @model_validator(mode="after")
    def _object_phase(self) -> AnalysisConfig:
        if self.object_phase is not None and self.object_phase >= self.phases:
            raise ValueError(f"object_phase {self.object_phase} is not one of the {self.phases} phases (0 to "
                             f"{self.phases - 1}, darkest first)")
        return self

    @property
    def objects_of(self) -> int:
        """The phase whose objects are measured."""
        return self.phases - 1 if self.object_phase is None else self.object_phase


class LaminoTry(Strict):
    """The ``try_lamino`` target: one slice per tilt angle, for picking the laminography angle by eye."""

    angle: float | None = Field(None, description="middle of the series; default recon.lamino.angle")
    width: float = Field(5.0, ge=0, description="degrees each side of the middle (TomocuPy's default)")
    step: float = Field(0.25, gt=0, description="degrees")
    slice: int | None = Field(None, ge=0, description="output slice; default the middle one")


class CenterTry(Strict):
    """The ``try_center`` target: one slice per centre, for picking the centre by eye."""

    center: float | None = Field(None, description="middle of the series; default: recon.center, else automatic")
    width: float = Field(10.0, ge=0, description="pixels each side of the middle")
    step: float = Field(0.5, gt=0)
    row: int | None = Field(None, ge=0, description="slice (preprocessed row); default: the middle one")


class SlurmConfig(Strict):
    cpu_partition: str = "cpu"
    gpu_partition: str = "gpu"
    account: str | None = None
    qos: str | None = None


class FaultInjection(Strict):
    """Test hook: make one chunk job fail or die, to prove reruns and atomic writes."""

    rule: Literal["preprocess", "recon"] | None = None
    chunk: int = 0
    kind: Literal["raise", "kill"] = "raise"


# -------------------------------------------------------------------------- top
class TomoConfig(Strict):
    """Every parameter of one tomosnake run."""

    input: list[str] = Field(default_factory=list, description="raw scan files (DXchange HDF5)")
    tori: str | None = None
    outdir: str = "results"
    memory_mb: float = Field(2000.0, gt=0, description="memory budget per job (peak RSS), MB")
    preprocess_memory_mb: float | None = Field(None, gt=0, description="budget of preprocess jobs; default memory_mb")
    recon_memory_mb: float | None = Field(None, gt=0, description="budget of reconstruction jobs; default memory_mb")
    analysis_memory_mb: float | None = Field(None, gt=0, description="budget of analysis jobs; default memory_mb")
    overhead_mb: float = Field(300.0, ge=0, description="part of a budget taken by the interpreter and libraries")
    subchunks_per_job: int = Field(4, ge=1, description="memory loads per chunk job, at least")
    max_chunk_jobs: int = Field(200, ge=1, description="most preprocessing (and most reconstruction) jobs per "
                                "scan: a larger scan gets more loads per job, not more jobs")
    threads: int = Field(2, ge=1)
    disk_check: bool = True
    datasets: InputConfig = InputConfig()
    stitch: StitchConfig = StitchConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    recon: ReconConfig = ReconConfig()
    output: OutputConfig = OutputConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    report: bool = True
    cleanup: bool = True
    center_try: CenterTry = CenterTry()
    lamino_try: LaminoTry = LaminoTry()
    slurm: SlurmConfig = SlurmConfig()
    fault: FaultInjection = FaultInjection()

    def budget_key(self, stage: Literal["preprocess", "recon", "analysis"] | None = None) -> str:
        """The config key that sets the memory budget of ``stage``'s jobs."""
        key = f"{stage}_memory_mb"
        return key if stage and getattr(self, key) is not None else "memory_mb"

    def budget_mb(self, stage: Literal["preprocess", "recon", "analysis"] | None = None) -> float:
        """The memory budget (peak RSS, MB) of one job of ``stage``."""
        return getattr(self, self.budget_key(stage))

    @field_validator("input", mode="before")
    @classmethod
    def _as_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [p for p in (s.strip() for s in v.split(",")) if p]
        return v


SCAN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def scan_name(path: str | Path) -> str:
    """A scan's work-directory name: the file stem with unsafe characters replaced by '_'."""
    stem = Path(path).name
    for suffix in (".h5", ".hdf5", ".hdf", ".nxs"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return SCAN_NAME.sub("_", stem).strip("._") or "scan"


def _scalar(text: str) -> Any:
    """A string read as a YAML scalar (a number, bool or null), else the string itself."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if value is None or isinstance(value, bool | int | float | str) else text


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; values of ``top`` win. A ``kwargs`` mapping is one function's whole set of arguments:
    ``top``'s replaces ``base``'s, and a ``function`` in ``top`` other than ``base``'s drops ``base``'s kwargs
    (a config's ``stripe: {function: profile}`` over a .tori's TomoPy function keeps none of its arguments)."""
    out = dict(base)
    if "function" in top and top["function"] != base.get("function"):
        out.pop("kwargs", None)
    for key, val in top.items():
        if key != "kwargs" and isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], val)
        else:
            out[key] = val
    return out


def _error_text(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key" + _did_you_mean(e["loc"])
        lines.append(f"config key '{key}': {msg}")
    return "; ".join(lines)


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """`` (did you mean 'memory_mb'?)`` for an unknown key close to a key of its section (difflib), else ''."""
    model: type[BaseModel] = TomoConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        sub = field.annotation if field else None
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            return ""
        model = sub
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f" (did you mean '{'.'.join([*map(str, loc[:-1]), close[0]])}'?)" if close else ""


def validate(raw: dict[str, Any]) -> TomoConfig:
    """Validate a plain config dict, raising `ConfigError` with the key named."""
    try:
        return TomoConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_error_text(err)) from None


def load(raw: dict[str, Any]) -> TomoConfig:
    """Build the run's config from Snakemake's merged config dict, a .tori underneath."""
    tori_path = raw.get("tori")
    if tori_path:
        from tomosnake.io import tori

        raw = tori.under(tori_path, raw)
    return validate(raw)


def stage_dict(cfg: TomoConfig, stage: str) -> dict[str, Any]:
    """The parameters one stage depends on, as a JSON-able dict (Snakemake ``params``)."""
    base = {"datasets": cfg.datasets.model_dump(mode="json")}
    if cfg.stitch.enabled:  # the plan refines the offsets, preprocessing joins the files
        base["stitch"] = cfg.stitch.model_dump(mode="json")
    if stage == "plan":
        # Only what changes the chunking, so that e.g. a new filter or centre reruns no preprocessing.
        r = cfg.recon
        return base | {"memory_mb": [cfg.budget_mb("preprocess"), cfg.budget_mb("recon")],
                       "overhead_mb": cfg.overhead_mb,
                       "subchunks_per_job": cfg.subchunks_per_job,
                       "max_chunk_jobs": cfg.max_chunk_jobs,
                       "preprocess": cfg.preprocess.model_dump(mode="json"),
                       "recon": {"backend": r.backend, "sino_360_to_180": r.sino_360_to_180.model_dump(mode="json"),
                                 "pad": r.pad.model_dump(mode="json"), "auto_center": r.center is None,
                                 "center_search": r.center_search.model_dump(mode="json"),
                                 "dtype": r.convert.output_dtype,
                                 "lamino": r.lamino.model_dump(mode="json")}}
    if stage == "preprocess":
        return base | {"preprocess": cfg.preprocess.model_dump(mode="json")}
    if stage == "recon":
        return {"recon": cfg.recon.model_dump(mode="json")}
    if stage == "output":
        return {"output": cfg.output.model_dump(mode="json")}
    raise KeyError(stage)
