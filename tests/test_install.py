"""`pip install .` (not editable) ships the whole workflow: a fresh environment holding only the wheel runs the demo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import h5py
import pytest

REPO = Path(__file__).resolve().parents[1]


def _build_wheel(tmp_path: Path) -> Path:
    """The wheel of a clean copy of the sources (no build artefacts in the checkout, no network)."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "tomosnake", src / "tomosnake", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "Snakefile"):
        shutil.copy2(REPO / name, src / name)
    for name in ("rules", "scripts", "config", "profiles", "envs", "report"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, text=True)
    return next((tmp_path / "dist").glob("tomosnake-*.whl"))


def _workflow_files() -> set[str]:
    """Every file of the workflow at the checkout's top level, as the wheel must hold it under tomosnake/workflow/."""
    from tomosnake.workflow import LAYOUT

    files = {"Snakefile"}
    for name in LAYOUT[1:]:
        files |= {p.relative_to(REPO).as_posix() for p in (REPO / name).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts}
    return {f"tomosnake/workflow/{f}" for f in files}


def test_wheel_ships_the_top_level_workflow(tmp_path: Path):
    """The design card's top level (Snakefile, rules/, scripts/, config/, profiles/, envs/) travels in the wheel,
    inside the package, and nothing of it lands outside the package."""
    names = set(zipfile.ZipFile(_build_wheel(tmp_path)).namelist())
    assert _workflow_files() <= names, sorted(_workflow_files() - names)
    assert {"tomosnake/workflow/scripts/plan.py", "tomosnake/workflow/profiles/local/profile.yaml",
            "tomosnake/workflow/config/config.yaml", "tomosnake/workflow/rules/common.smk"} <= names
    assert not {n for n in names if not n.startswith(("tomosnake/", "tomosnake-"))}, sorted(names)[:20]


@pytest.mark.slow
def test_wheel_in_a_fresh_environment_runs_the_demo(tmp_path: Path):
    wheel = _build_wheel(tmp_path)
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, text=True)
    # The dependencies come from the test environment, appended after the fresh site-packages: the
    # wheel's tomosnake comes first, and the editable install of the checkout (a .pth hook of the test
    # environment, which a plain path entry does not run) stays invisible. `--system-site-packages`
    # would give the base interpreter's packages, not the test environment's.
    fresh_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     check=True, capture_output=True, text=True).stdout.strip())
    (fresh_site / "test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    where = subprocess.run([str(python), "-c", "import tomosnake; print(tomosnake.__file__)"], cwd=tmp_path, env=env,
                           check=True, capture_output=True, text=True).stdout
    assert Path(where.strip()).is_relative_to(fresh_site), where
    snakefile = subprocess.run([str(python), "-c", "from tomosnake.workflow import SNAKEFILE; print(SNAKEFILE)"],
                               cwd=tmp_path, env=env, check=True, capture_output=True, text=True).stdout
    assert Path(snakefile.strip()) == fresh_site / "tomosnake" / "workflow" / "Snakefile", snakefile

    # k = j = 1 (a budget the demo scan fits in): the fewest jobs, the whole chain
    demo = subprocess.run([str(env_dir / "bin" / "tomosnake"), "demo", "--workdir", str(tmp_path / "demo"),
                           "--memory-mb", "2000"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-4000:]
    volume = tmp_path / "demo" / "results" / "phantom" / "phantom_recon.h5"
    assert f"volume: {volume}" in demo.stdout
    with h5py.File(volume, "r") as f:
        assert f["exchange/data"].shape == (32, 256, 256)
    assert (volume.parent / "phantom_report.pdf").stat().st_size > 0
