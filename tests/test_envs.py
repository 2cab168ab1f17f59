"""The conda environments in envs/: parseable, exactly pinned, mutually consistent.

No conda is needed: these check the files, not an installation. Pin files
(envs/<name>.linux-64.pin.txt, conda's explicit format) are checked against their yaml
whenever they exist.
"""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tomosnake.config import ReconConfig
from tomosnake.workflow import ENVS, SNAKEFILE, WORKFLOW_DIR, conda_env

ROOT = Path(__file__).resolve().parent.parent
ENV_FILES = sorted(ENVS.glob("*.yaml"))
PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)=(?P<version>\d[\w.+!]*)$")
# an explicit-format line: https://conda.anaconda.org/conda-forge/<subdir>/<name>-<version>-<build>.<ext>[#hash]
EXPLICIT = re.compile(
    r"^https://conda\.anaconda\.org/conda-forge/(?:linux-64|noarch)/"
    r"(?P<name>[a-z0-9_.-]+?)-(?P<version>[^-]+)-(?P<build>[^-]+)\.(?:conda|tar\.bz2)(?:#[0-9a-f]{32,64})?$"
)
# Snakemake's own environment stays apart from the jobs' (the executor plugin's numpy and
# pandas floors would otherwise constrain the backends).
WORKFLOW_ONLY = {"snakemake", "snakemake-executor-plugin-slurm"}


def pins(env_file: Path) -> dict[str, str]:
    """Package name -> exact version for every dependency of an environment file."""
    env = yaml.safe_load(env_file.read_text())
    out = {}
    for dep in env["dependencies"]:
        assert isinstance(dep, str), f"{env_file.name}: only conda packages, no pip section: {dep!r}"
        match = PIN.match(dep)
        assert match, f"{env_file.name}: '{dep}' is not pinned as name=version"
        out[match["name"]] = match["version"]
    return out


def explicit_pins(text: str) -> dict[str, str]:
    """Package name -> version from a conda explicit file (``conda list --explicit``)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines and lines[0] == "@EXPLICIT", "an explicit file starts with @EXPLICIT"
    out = {}
    for line in lines[1:]:
        match = EXPLICIT.match(line)
        assert match, f"not a conda-forge package URL: {line}"
        out[match["name"]] = match["version"]
    return out


def test_there_are_the_three_environments():
    assert {f.stem for f in ENV_FILES} >= {"core", "tomopy", "tomocupy"}


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_is_conda_forge_only_and_exactly_pinned(env_file: Path):
    env = yaml.safe_load(env_file.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    versions = pins(env_file)
    for name, version in versions.items():
        assert len(Version(version).release) >= 3 or name == "cuda-version", f"{name}={version} is not a full version"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_satisfies_the_package_requirements(env_file: Path):
    """Every job environment can import tomosnake: its dependencies, at versions pyproject allows."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    versions = pins(env_file)
    for spec in project["dependencies"]:
        req = Requirement(spec)
        if req.name in WORKFLOW_ONLY:
            assert req.name not in versions
            continue
        assert req.name in versions, f"{env_file.name} lacks {req.name}"
        assert req.specifier.contains(versions[req.name]), f"{env_file.name}: {req.name}={versions[req.name]} vs {req}"
    assert SpecifierSet(project["requires-python"]).contains(versions["python"])


def test_backend_envs_extend_core_with_the_same_versions():
    core = pins(ENVS / "core.yaml")
    for name, extra in (("tomopy", {"tomopy"}), ("tomocupy", {"tomocupy", "cupy", "cuda-version"})):
        env = pins(ENVS / f"{name}.yaml")
        assert set(env) - set(core) == extra
        assert {k: env[k] for k in core} == core, f"{name}.yaml pins core packages differently"


PIN_FILES = sorted(ENVS.glob("*.linux-64.pin.txt"))


def test_pin_files_agree_with_their_yaml():
    if not PIN_FILES:
        pytest.skip("no envs/*.linux-64.pin.txt shipped: conda-forge is unreachable where they would be made; "
                    "generate them as envs/core.yaml describes and this test checks them")
    for pin_file in PIN_FILES:
        env_file = ENVS / pin_file.name.replace(".linux-64.pin.txt", ".yaml")
        assert env_file.is_file(), f"{pin_file.name} has no yaml beside it"
        locked = explicit_pins(pin_file.read_text())
        for name, version in pins(env_file).items():
            assert locked.get(name) == version, f"{pin_file.name}: {name} is {locked.get(name)}, yaml says {version}"


def test_explicit_pin_parser_reads_and_rejects():
    text = (
        "# platform: linux-64\n@EXPLICIT\n"
        "https://conda.anaconda.org/conda-forge/linux-64/numpy-2.4.6-py312h1234567_0.conda#0123456789abcdef0123456789abcdef\n"
        "https://conda.anaconda.org/conda-forge/noarch/tomopy-1.15.3-pyhd8ed1ab_2.conda\n"
    )
    assert explicit_pins(text) == {"numpy": "2.4.6", "tomopy": "1.15.3"}
    with pytest.raises(AssertionError):
        explicit_pins("numpy=2.4.6\n")
    with pytest.raises(AssertionError):
        explicit_pins("@EXPLICIT\nhttps://repo.anaconda.com/pkgs/main/linux-64/numpy-2.4.6-py312_0.conda\n")


def test_conda_directives_point_at_existing_env_files():
    """Every `conda:` directive of the workflow names a file in envs/: a literal path (relative to its .smk
    file), or `conda_env(stage)`, the package's choice, for every backend."""
    sources = [SNAKEFILE, *sorted((WORKFLOW_DIR / "rules").glob("*.smk"))]
    backends = typing.get_args(ReconConfig.model_fields["backend"].annotation)
    directives = scripts = 0
    for src in sources:
        scripts += len(re.findall(r"^\s*run:\n\s*run_job\(", src.read_text(), flags=re.MULTILINE))
        # the value follows on the same line or (snakefmt's layout) on the next one
        for value in re.findall(r"^\s*conda:[ \t]*\n?\s*(.+?)\s*$", src.read_text(), flags=re.MULTILINE):
            directives += 1
            if literal := re.fullmatch(r"[\"']([^\"']+)[\"']", value):
                targets = [(src.parent / literal[1]).resolve()]
            elif call := re.fullmatch(r"conda_env\([\"'](\w+)[\"']\)", value):
                targets = [Path(conda_env(call[1], backend)) for backend in backends]
            else:
                pytest.fail(f"{src.name}: conda: {value} is neither a path nor conda_env(stage)")
            for target in targets:
                assert target.parent == ENVS and target.is_file(), f"{src.name}: conda: {value} -> {target}"
    assert directives == scripts > 0, "every rule with a job runs in a conda env"
