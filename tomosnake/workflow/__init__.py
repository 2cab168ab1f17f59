"""Where the Snakemake workflow is: the repository's top level (the design card's layout), which a wheel ships
inside this package.

``Snakefile`` (table of contents) · ``rules/`` (one .smk per stage) · ``scripts/`` (each rule's job:
unpacks its arguments, calls its stage) · ``config/config.yaml`` (defaults) · ``profiles/`` (local,
SLURM) · ``envs/`` (per-rule conda envs) · ``report/`` (captions
of Snakemake's HTML report).

In a checkout or an editable install these are the repository's own folders; ``pip install .`` copies them into
this package's folder (setup.py's ``build_py``), where they are found first.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

# The folders and files of the workflow, as named at the repository's top level (setup.py copies these).
LAYOUT = ("Snakefile", "rules", "scripts", "config", "profiles", "envs", "report")

_PACKAGE_DIR = Path(__file__).resolve().parent
WORKFLOW_DIR = _PACKAGE_DIR if (_PACKAGE_DIR / "Snakefile").is_file() else _PACKAGE_DIR.parents[1]
SNAKEFILE = WORKFLOW_DIR / "Snakefile"
PROFILES = WORKFLOW_DIR / "profiles"
DEFAULT_CONFIG = WORKFLOW_DIR / "config" / "config.yaml"
ENVS = WORKFLOW_DIR / "envs"
SCRIPTS = WORKFLOW_DIR / "scripts"

# The backends with a conda env of their own (envs/<backend>.yaml); every other job runs in envs/core.yaml.
BACKEND_ENVS = ("tomopy", "tomocupy")


def conda_env(stage: str, backend: str) -> str:
    """The conda env file of a rule's jobs (used with ``--sdm conda``): the backend's for reconstruction
    (``stage`` "recon"), else core. The env holds the dependencies; jobs import the installed `tomosnake`
    (`tomosnake.jobs` appends the submitting interpreter's package folder to the job's sys.path).
    """
    name = backend if stage == "recon" and backend in BACKEND_ENVS else "core"
    return str(ENVS / f"{name}.yaml")


def script(name: str) -> ModuleType:
    """The module ``scripts/<name>.py`` (a rule's job), imported once per process from its file: ``scripts/`` is
    a folder of the workflow, not a package on sys.path, in a checkout and in a wheel alike."""
    module_name = f"tomosnake.workflow.scripts.{name}"
    if module_name not in sys.modules:
        path = SCRIPTS / f"{name}.py"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None or not path.is_file():
            raise ModuleNotFoundError(f"no job script {path}", name=module_name)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    return sys.modules[module_name]


def job_function(name: str) -> Callable[[Any], None]:
    """The function ``run`` of ``scripts/<name>.py``."""
    return script(name).run
