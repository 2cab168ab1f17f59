"""tomosnake end to end against nabu (ESRF) on the same phantom scan, in one invocation (issue 15).

    .venv/bin/python benchmarks/end_to_end.py                # 720 x 64 x 1024 (47 Mpx)
    .venv/bin/python benchmarks/end_to_end.py --large        # 1500 x 256 x 2048 (786 Mpx)
    .venv/bin/python benchmarks/end_to_end.py --skip-nabu    # tomosnake only

Scan: `tomosnake.phantom`'s analytic 3D Shepp-Logan (exact ray sums, so the ground truth is
exact), uint16, 10 flats, 5 darks, rotation axis 5.5 px right of the detector middle, Poisson
noise; generated once into the work folder and reused. Both pipelines do flat/dark, -log, an
automatic centre, filtered backprojection and write an HDF5 volume:

- tomosnake: ``snakemake --profile local`` with the defaults (report and cleanup included).
- nabu: installed into its own virtual environment (``benchmarks/.nabu-venv``) when missing;
  the scan is converted with ``nxtomomill dxfile2nx`` (timed apart), ``nabu-config`` writes the
  default configuration, which gets ``rotation_axis_position = sliding-window`` and
  ``enable_halftomo = 0``; FBP runs on the CPU through OpenCL (Debian's pocl).

Figures per pipeline: wall time, raw Mpx/s in total and per core, CPU seconds (user + system of
the whole process tree: the figure to compare on a shared machine, where wall times depend on the
others' load), peak RSS (the whole process tree, sampled every 50 ms) and the relative RMSE
against the ground truth. Accuracy, the same
method for both volumes: each slice is registered to the truth (the one of the eight flips and
rotations that correlates best, then a sub-pixel shift by phase correlation, applied as a Fourier
shift), fitted by least squares (gain and offset) inside 0.98 of the field of view, and its RMSE
divided by the truth's range there; the mean over the evaluated slices.

tomosnake's split comes from its job records (``logs/*.timing.json``: start, end, HDF5 IO seconds,
named phases) and is in wall-clock seconds: centre search (the plan's ``center`` phase); compute
(pre-processing and reconstruction jobs less their IO and start-up); IO (those jobs' HDF5 reads
and writes); combine (less its start-up); other work (the rest of the plan, vds_merge, report,
cleanup, less start-up); start-up and scheduling (the rest of the wall time: Snakemake itself,
every job's interpreter and imports, gaps between jobs). Overhead is everything but compute and
IO. With the local profile (threads = cores) jobs run one at a time, so the parts add up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import psutil
import yaml

from tomosnake.cli import snakemake_command
from tomosnake.config import scan_name
from tomosnake.phantom import PhantomSpec, ground_truth, read_spec, write_scan
from tomosnake.recon.quality import fov_mask
from tomosnake.report.timings import read_benchmarks, read_jobs

HERE = Path(__file__).resolve().parent
NABU_VENV = HERE / ".nabu-venv"
NABU_PIP = ["nabu", "pyopencl", "PyWavelets", "nxtomomill"]
DEBIAN = ["opencl-headers", "ocl-icd-opencl-dev", "pocl-opencl-icd"]
SIZES = {
    False: PhantomSpec(n_proj=720, n_rows=64, n_cols=1024, n_flat=10, n_dark=5, center_offset=5.5, seed=15),
    True: PhantomSpec(n_proj=1500, n_rows=256, n_cols=2048, n_flat=10, n_dark=5, center_offset=5.5, seed=15),
}
EVAL_SLICES = {False: 64, True: 16}  # evenly spaced slices compared with the truth


# ----------------------------------------------------------------------------- running and sampling
@dataclass
class Run:
    wall: float
    cpu: float  # user + system seconds of the whole process tree
    peak_rss_mb: float
    returncode: int
    output: str


def run_sampled(cmd: list[str], cwd: Path, env: dict | None = None, interval: float = 0.05) -> Run:
    """Run ``cmd``; sample the summed RSS of its whole process tree every ``interval`` seconds.

    The page cache's dirty data (the previous run's GBs of output) is written out first, so that no run
    pays for another's writes."""
    os.sync()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not done.is_set():
            total = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            peak[0] = max(peak[0], total)
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # every descendant that was waited for
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Run(wall, cpu, peak[0] / 2**20, proc.returncode, out)


def ensure_scan(work: Path, spec: PhantomSpec) -> Path:
    path = work / f"scan_{spec.n_proj}x{spec.n_rows}x{spec.n_cols}.h5"
    if not (path.exists() and read_spec(path) == spec):
        t0 = time.time()
        write_scan(path, spec, block=16)
        print(f"generated {path.name} in {time.time() - t0:.0f} s")
    return path


# ----------------------------------------------------------------------------- accuracy
def _dihedral(img: np.ndarray, k: int) -> np.ndarray:
    out = np.rot90(img, k % 4)
    return out[:, ::-1] if k >= 4 else out


def register(rec: np.ndarray, truth: np.ndarray) -> tuple[int, np.ndarray]:
    """The flip/rotation (0-7) and sub-pixel shift (dy, dx) that best map ``rec`` onto ``truth``."""
    from skimage.registration import phase_cross_correlation

    m = fov_mask(truth.shape[-1])
    best = max(range(8), key=lambda k: np.corrcoef(_dihedral(rec, k)[m], truth[m])[0, 1])
    shift, _, _ = phase_cross_correlation(truth, _dihedral(rec, best), upsample_factor=20, normalization=None)
    return best, shift


def _aligned(rec: np.ndarray, k: int, shift: np.ndarray) -> np.ndarray:
    from scipy.ndimage import fourier_shift

    img = _dihedral(rec, k)
    return np.real(np.fft.ifft2(fourier_shift(np.fft.fft2(img), shift)))


def relative_rmse(rec: np.ndarray, truth: np.ndarray) -> float:
    """RMSE after a least-squares gain/offset fit inside 0.98 of the FOV, over the truth's range there."""
    m = fov_mask(truth.shape[-1])
    a, b = rec[m].astype(np.float64), truth[m].astype(np.float64)
    design = np.stack([a, np.ones_like(a)], axis=1)
    (gain, offset), *_ = np.linalg.lstsq(design, b, rcond=None)
    return float(np.sqrt(np.mean((gain * a + offset - b) ** 2)) / ((b.max() - b.min()) or 1.0))


def score(volume: h5py.Dataset, spec: PhantomSpec, n_eval: int) -> tuple[float, str]:
    """Mean relative RMSE of ``n_eval`` evenly spaced slices; the registration found on the middle one."""
    rows = np.unique(np.linspace(0, spec.n_rows - 1, min(n_eval, spec.n_rows)).round().astype(int))
    truth = ground_truth(spec, rows)
    if volume.shape[1:] != truth.shape[1:]:
        raise ValueError(f"volume slices {volume.shape[1:]} differ from the truth's {truth.shape[1:]}")
    mid = len(rows) // 2
    k, shift = register(volume[rows[mid]].astype(np.float64), truth[mid])
    errors = [relative_rmse(_aligned(volume[r].astype(np.float64), k, shift), t)
              for r, t in zip(rows, truth, strict=False)]
    return float(np.mean(errors)), f"flip/rot {k}, shift ({shift[0]:+.2f}, {shift[1]:+.2f}) px"


# ----------------------------------------------------------------------------- tomosnake
@dataclass
class Result:
    name: str
    run: Run
    rmse: float
    registration: str
    notes: list[str] = field(default_factory=list)
    split: dict[str, float] = field(default_factory=dict)


def tomosnake_split(scan_dir: Path, wall: float) -> tuple[dict[str, float], list[str]]:
    """Wall-clock split of a tomosnake run from its job records (see the module's docstring)."""
    records = read_jobs(scan_dir / "logs", read_benchmarks(scan_dir / "benchmarks"))
    parts = dict.fromkeys(("centre search", "compute", "IO", "combine", "other work"), 0.0)
    lines = []
    for r in records:
        startup = r.phases.get("startup", 0.0)
        io = r.io_s or 0.0
        work = max(0.0, r.wall - startup)
        if r.stage in ("preprocess", "recon"):
            parts["compute"] += max(0.0, work - io)
            parts["IO"] += io
        elif r.stage == "combine":
            parts["combine"] += work
        elif r.stage == "plan":
            center = r.phases.get("center", 0.0)
            parts["centre search"] += center
            parts["other work"] += max(0.0, work - center)
        else:
            parts["other work"] += work
        lines.append(f"    {r.job:16s} wall {r.wall:6.2f} s  start-up {startup:5.2f} s  IO {io:5.2f} s  "
                     + "  ".join(f"{k} {v:.2f} s" for k, v in r.phases.items() if k != "startup"))
    parts["start-up and scheduling"] = max(0.0, wall - sum(parts.values()))
    return parts, lines


def run_tomosnake(work: Path, scan: Path, spec: PhantomSpec, threads: int, n_eval: int,
                  extra_config: dict | None = None, label: str = "tomosnake") -> Result:
    # Not "tomosnake": Snakemake gives jobs its launch directory's sys.path, and a folder of the package's
    # name there would shadow an editable install's package as a namespace package.
    out = work / "out-tomosnake"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(work / ".snakemake", ignore_errors=True)
    config = {"input": [str(scan)], "outdir": str(out), "threads": threads, **(extra_config or {})}
    cfg_file = work / "tomosnake.yaml"
    cfg_file.write_text(yaml.safe_dump(config))
    cmd = snakemake_command("local", {}, "--configfile", str(cfg_file), "--directory", str(work),
                            "--cores", str(threads))
    run = run_sampled(cmd, work)
    if run.returncode != 0:
        raise SystemExit(f"tomosnake failed (exit {run.returncode}):\n{run.output[-4000:]}")
    scan_dir = out / scan_name(scan)
    with h5py.File(scan_dir / f"{scan_name(scan)}_recon.h5", "r") as f:
        rmse, reg = score(f["exchange/data"], spec, n_eval)
    plan = json.loads((scan_dir / "plan.json").read_text())
    split, lines = tomosnake_split(scan_dir, run.wall)
    notes = [f"k = {plan['k']}, j = {plan['j']}, centre {plan['center']:.2f} (truth {spec.center:.2f}), "
             f"{plan['center_method']}", *lines]
    return Result(label, run, rmse, reg, notes, split)


# ----------------------------------------------------------------------------- nabu
def _venv_bin(name: str) -> Path:
    return NABU_VENV / "bin" / name


def ensure_nabu() -> None:
    """Install nabu and its OpenCL stack into `NABU_VENV` if it is not there yet."""
    if _venv_bin("nabu").exists() and _venv_bin("nxtomomill").exists():
        if subprocess.run([_venv_bin("python"), "-c", "import pyvkfft.opencl"], capture_output=True).returncode == 0:
            return
    missing = [p for p in DEBIAN if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if missing:
        print("installing Debian packages:", " ".join(missing))
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True,
                       env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"})
    print(f"installing nabu into {NABU_VENV}")
    subprocess.run([sys.executable, "-m", "venv", str(NABU_VENV)], check=True)
    pip = [str(_venv_bin("python")), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *NABU_PIP], check=True)
    # pyvkfft's FFTs for nabu on OpenCL: built from source against the OpenCL headers.
    subprocess.run([*pip, "--no-binary", "pyvkfft", "pyvkfft"], check=True,
                   env=os.environ | {"VKFFT_BACKEND": "opencl"})


def _set_options(text: str, values: dict[tuple[str, str], str]) -> str:
    """Set ``key = value`` lines of a nabu configuration by (section, key); each must be there."""
    lines, section, seen = text.splitlines(), "", set()
    for i, line in enumerate(lines):
        head = re.match(r"^\[(\w+)\]", line)
        if head:
            section = head.group(1)
            continue
        m = re.match(r"^(\w+)\s*=", line)
        if m and (section, m.group(1)) in values:
            lines[i] = f"{m.group(1)} = {values[section, m.group(1)]}"
            seen.add((section, m.group(1)))
    if missing := set(values) - seen:
        raise KeyError(f"nabu configuration lacks {sorted(missing)}")
    return "\n".join(lines) + "\n"


def _find_volume(folder: Path) -> tuple[Path, str]:
    """The 3D dataset of the HDF5 volume nabu wrote under ``folder``."""
    for path in sorted(folder.rglob("*.h*5")):
        found: list[str] = []
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o, found=found: found.append(n) if isinstance(o, h5py.Dataset) and o.ndim == 3
                         else None)
        if found:
            return path, found[0]
    raise FileNotFoundError(f"no 3D HDF5 dataset under {folder}")


def run_nabu(work: Path, scan: Path, spec: PhantomSpec, threads: int, n_eval: int) -> Result:
    ensure_nabu()
    nwork = work / "nabu"
    shutil.rmtree(nwork, ignore_errors=True)
    (nwork / "rec").mkdir(parents=True)
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "POCL_MAX_PTHREAD_COUNT": str(threads),
                        "PYOPENCL_CTX": os.environ.get("PYOPENCL_CTX", "0")}
    nx = nwork / "scan.nx"
    last_angle = spec.theta()[-1]  # nxtomomill spaces the angles evenly from the first to the last, both included
    conv = run_sampled([str(_venv_bin("nxtomomill")), "dxfile2nx", str(scan), str(nx),
                        "--scan-range", f"0,{last_angle}"], nwork, env)
    if conv.returncode != 0:
        raise SystemExit(f"nxtomomill failed:\n{conv.output[-4000:]}")
    gen = subprocess.run([str(_venv_bin("nabu-config")), "--nocomments", "--output", "nabu.conf"], cwd=nwork, env=env,
                         capture_output=True, text=True)
    if gen.returncode != 0:
        raise SystemExit(f"nabu-config failed:\n{gen.stdout}{gen.stderr}")
    conf = nwork / "nabu.conf"
    conf.write_text(_set_options(conf.read_text(), {
        ("dataset", "location"): str(nx),
        ("reconstruction", "rotation_axis_position"): "sliding-window",
        ("reconstruction", "enable_halftomo"): "0",
        ("output", "location"): str(nwork / "rec"),
        ("output", "file_format"): "hdf5",
    }))
    run = run_sampled([str(_venv_bin("nabu")), str(conf)], nwork, env)
    if run.returncode != 0:
        raise SystemExit(f"nabu failed (exit {run.returncode}):\n{run.output[-4000:]}")
    path, dset = _find_volume(nwork / "rec")
    with h5py.File(path, "r") as f:
        rmse, reg = score(f[dset], spec, n_eval)
    centre = re.findall(r"[Ee]stimated center of rotation[^\d-]*(-?[\d.]+)", run.output)
    notes = [f"nxtomomill dxfile2nx {conv.wall:.1f} s (not in nabu's wall time; peak {conv.peak_rss_mb:.0f} MB)",
             f"centre {centre[-1] if centre else 'not found in the log'} (truth {spec.center:.2f})"]
    return Result("nabu", run, rmse, reg, notes)


# ----------------------------------------------------------------------------- table
def print_table(results: list[Result], spec: PhantomSpec, threads: int) -> None:
    raw_mpx = spec.n_proj * spec.n_rows * spec.n_cols / 1e6
    print(f"\nscan {spec.n_proj} x {spec.n_rows} x {spec.n_cols} uint16 ({raw_mpx:.1f} Mpx raw), "
          f"{threads} cores, {os.cpu_count()} on the machine")
    print(f"{'':40s} {'wall s':>7s} {'Mpx/s':>7s} {'/core':>7s} {'CPU s':>7s} {'peak RSS MB':>11s} {'rel. RMSE':>9s}")
    for r in results:
        print(f"{r.name:40s} {r.run.wall:7.1f} {raw_mpx / r.run.wall:7.2f} {raw_mpx / r.run.wall / threads:7.2f} "
              f"{r.run.cpu:7.1f} {r.run.peak_rss_mb:11.0f} {r.rmse:9.4f}")
    nabu = next((r for r in results if r.name == "nabu"), None)
    for r in results:
        print(f"\n{r.name}: registration {r.registration}")
        for line in r.notes:
            print("  " + line)
        if r.split:
            overhead = r.run.wall - r.split["compute"] - r.split["IO"]
            print("  split (wall-clock s): " + ", ".join(f"{k} {v:.1f} ({v / r.run.wall:.0%})"
                                                         for k, v in r.split.items()))
            print(f"  overhead (all but compute and IO): {overhead:.1f} s = {overhead / r.run.wall:.0%} "
                  "of the wall time")
        if nabu is not None and r is not nabu:
            print(f"  speed-up over nabu: {nabu.run.wall / r.run.wall:.2f}x in wall time, "
                  f"{nabu.run.cpu / r.run.cpu:.2f}x in CPU time; RMSE ratio {r.rmse / nabu.rmse:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", action="store_true", help="the 1500 x 256 x 2048 scan")
    parser.add_argument("--workdir", default=None, help="default: bench-e2e-small / bench-e2e-large")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-nabu", action="store_true")
    parser.add_argument("--variant", action="append", default=[], metavar="YAML",
                        help="also run tomosnake with these config overrides, e.g. "
                             "'{recon: {filter_name: ramlak}}' (repeatable; shows accuracy/speed trade-offs)")
    args = parser.parse_args(argv)
    spec = SIZES[args.large]
    work = Path(args.workdir or f"bench-e2e-{'large' if args.large else 'small'}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    scan = ensure_scan(work, spec)
    n_eval = EVAL_SLICES[args.large]
    results = [run_tomosnake(work, scan, spec, args.threads, n_eval)]
    for v in args.variant:
        results.append(run_tomosnake(work, scan, spec, args.threads, n_eval, yaml.safe_load(v), f"tomosnake {v}"))
    if not args.skip_nabu:
        results.append(run_nabu(work, scan, spec, args.threads, n_eval))
    print_table(results, spec, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
