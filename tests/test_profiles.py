"""The Snakemake profiles in profiles/ and their installation under a name Snakemake finds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yte

from tomosnake.profiles import install_profiles
from tomosnake.workflow import PROFILES as REPO_PROFILES

ROOT = Path(__file__).resolve().parent.parent


def _load(profile_dir: Path) -> dict:
    """A profile as Snakemake reads it: YTE expressions evaluated where the profile asks for them."""
    with open(profile_dir / "profile.yaml") as f:
        return yte.process_yaml(f, require_use_yte=True)


PROFILES = {p.name: _load(p) for p in REPO_PROFILES.iterdir()}
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

TOY = """\
localrules: all

rule all:
    input: "out/b.txt"

rule a:
    output: "out/a.txt"
    shell: "echo a $SLURM_JOB_PARTITION ${{CUDA_VISIBLE_DEVICES:-none}} > {output}"

rule b:
    input: "out/a.txt"
    output: "out/b.txt"
    resources: slurm_partition="gpu", gpu=1, mem_mb=500, runtime=5
    shell: "cat {input} > {output}; echo b $SLURM_JOB_PARTITION ${{CUDA_VISIBLE_DEVICES:-none}} >> {output}"
"""


def snakemake(args: list[str], config_home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run Snakemake as a user would, at the repository root, with a private config home."""
    env = dict(os.environ, XDG_CONFIG_HOME=str(config_home))
    return subprocess.run(SNAKEMAKE + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_four_profiles_exist():
    assert set(PROFILES) == {"maxiv", "maxiv-conda", "slurm-test", "local"}


def test_profile_keys_are_snakemake_options():
    from snakemake.cli import get_argument_parser

    options = {s for action in get_argument_parser()._actions for s in action.option_strings}
    for name, profile in PROFILES.items():
        unknown = {f"--{key}" for key in profile} - options
        assert not unknown, f"{name}: not Snakemake options: {unknown}"


def test_slurm_test_is_maxiv_with_test_polling():
    maxiv, test = PROFILES["maxiv"], PROFILES["slurm-test"]
    polling = {"slurm-init-seconds-before-status-checks", "seconds-between-status-checks"}
    differing = {k for k in maxiv.keys() | test.keys() if maxiv.get(k) != test.get(k)}
    assert differing <= polling, f"slurm-test differs from maxiv beyond polling intervals: {differing - polling}"
    # both read job states the plugin's default way (sacct): the test cluster has accounting
    assert "slurm-status-command" not in maxiv.keys() | test.keys()
    assert maxiv["executor"] == "slurm"


def test_site_settings_are_not_profile_config():
    """A CLI --config/--configfile replaces a profile's whole key: partitions stay in config files."""
    for name, profile in PROFILES.items():
        assert not {"config", "configfile", "configfiles"} & profile.keys(), name


def test_conda_only_in_its_own_layer():
    with_conda = {n for n, p in PROFILES.items() if "software-deployment-method" in p}
    assert with_conda == {"maxiv-conda"}
    assert PROFILES["maxiv-conda"] == {"software-deployment-method": "conda"}


def test_install_profiles_links_updates_and_refuses_to_clobber(tmp_path: Path):
    target = tmp_path / "snakemake"
    links = install_profiles(target)
    assert sorted(link.name for link in links) == sorted(PROFILES)
    assert all(link.is_symlink() and (link / "profile.yaml").is_file() for link in links)
    assert install_profiles(target) == links  # idempotent

    stale = target / "maxiv"
    stale.unlink()
    stale.symlink_to(tmp_path, target_is_directory=True)  # an old checkout
    install_profiles(target)
    assert stale.resolve() == (REPO_PROFILES / "maxiv").resolve()

    mine = target / "local"
    mine.unlink()
    mine.mkdir()  # a user's own profile of the same name
    with pytest.raises(FileExistsError):
        install_profiles(target)
    assert mine.is_dir() and not mine.is_symlink()


def test_profile_by_name_works_at_repo_root_after_install(tmp_path: Path):
    (tmp_path / "Snakefile").write_text(TOY)
    args = ["--profile", "maxiv", "-n", "-s", str(tmp_path / "Snakefile"), "-d", str(tmp_path)]
    before = snakemake(args, tmp_path / "xdg")
    assert before.returncode != 0 and "maxiv" in before.stderr

    install_profiles(tmp_path / "xdg" / "snakemake")
    after = snakemake(args, tmp_path / "xdg")
    assert after.returncode == 0, after.stderr
    text = after.stdout + after.stderr
    # rule a declares nothing: the profile's default-resources fill in
    assert "mem_mb=4000" in text and "runtime=120" in text
    assert "slurm_partition=gpu" in text


def test_readme_steps_make_maxiv_work_at_repo_root(tmp_path: Path, small_scan: Path):
    """As the README says: `python -m tomosnake.profiles` once, then at the repository root
    `snakemake --profile maxiv ...` with the repository's own Snakefile and the profile applied."""
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    typed = [str(Path(sys.executable).with_name("snakemake")), "--profile", "maxiv", "-n",
             "--config", f"input={small_scan}", f"outdir={tmp_path / 'out'}"]

    def at_root(cmd: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)

    before = at_root(typed)
    assert before.returncode != 0 and "maxiv" in before.stderr
    installed = at_root([sys.executable, "-m", "tomosnake.profiles"])
    assert installed.returncode == 0, installed.stderr
    link = tmp_path / "xdg" / "snakemake" / "maxiv"
    assert link.is_symlink() and link.resolve() == (REPO_PROFILES / "maxiv").resolve()
    after = at_root(typed)
    assert after.returncode == 0, after.stderr[-3000:]
    text = after.stdout + after.stderr
    assert "Using profile maxiv for setting default command line arguments" in text
    # the plan job declares no resources: the profile's fallbacks fill them in
    plan_job = re.search(r"^checkpoint plan:\n((?:    .*\n)+)", text, re.MULTILINE)
    assert plan_job and re.search(r"resources: .*mem_mb=4000.*runtime=120", plan_job.group(1)), text[-3000:]


def _cluster_idle() -> bool:
    if not shutil.which("sinfo"):
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mix"))


@pytest.mark.slurm
@pytest.mark.skipif(not _cluster_idle(), reason="no running SLURM (start it with .ci/slurm/start.sh)")
def test_toy_workflow_runs_on_the_test_cluster(tmp_path: Path):
    """Two jobs through the real executor plugin: rule a on the default partition, b on gpu."""
    (tmp_path / "Snakefile").write_text(TOY)
    install_profiles(tmp_path / "xdg" / "snakemake")
    run = snakemake(
        ["--profile", "slurm-test", "-s", str(tmp_path / "Snakefile"), "-d", str(tmp_path)],
        tmp_path / "xdg",
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "out" / "b.txt").read_text().split("\n")[:2] == ["a cpu none", "b gpu 0"]
