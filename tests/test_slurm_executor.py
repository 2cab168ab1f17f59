"""tomosnake/slurm_executor.py without a cluster: state words, the pinned plugin range, the swap in
Snakemake's executor registry. Its behaviour on a real SLURM is tested in tests/test_slurm_chaos.py."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from tests.conftest import REPO
from tomosnake.slurm_executor import FAILED_STATES, PLUGIN_VERSIONS, base_state


@pytest.mark.parametrize("state, base", [
    ("CANCELLED by 0", "CANCELLED"), ("CANCELLED by 1000", "CANCELLED"), ("FAILED+", "FAILED"),
    ("NODE_FAIL", "NODE_FAIL"), ("COMPLETED", "COMPLETED"), ("RUNNING", "RUNNING"), ("", ""),
])
def test_base_state(state, base):
    assert base_state(state) == base


def test_every_final_failure_of_sacct_is_a_failure():
    """sacct's words for a job that ended without doing its work (Slurm 22.05's job states)."""
    for state in ("CANCELLED by 0", "PREEMPTED", "NODE_FAIL", "TIMEOUT", "OUT_OF_MEMORY", "BOOT_FAIL",
                  "DEADLINE", "FAILED"):
        assert base_state(state) in FAILED_STATES, state
    for state in ("COMPLETED", "RUNNING", "PENDING", "REQUEUED", "RESIZING", "SUSPENDED", "COMPLETING"):
        assert base_state(state) not in FAILED_STATES, state


def test_plugin_pinned_to_the_wrapped_versions():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    req = next(Requirement(d) for d in deps if Requirement(d).name == "snakemake-executor-plugin-slurm")
    assert req.specifier == PLUGIN_VERSIONS


def test_install_puts_the_subclass_in_the_registry():
    """In a fresh interpreter, as Snakemake's would be when the Snakefile calls it."""
    code = """
from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
import snakemake_executor_plugin_slurm as plugin
from tomosnake import slurm_executor
assert slurm_executor.install() and slurm_executor.install()  # twice: the second leaves it in place
executor = ExecutorPluginRegistry().get_plugin("slurm").executor
assert issubclass(executor, plugin.Executor) and executor is not plugin.Executor, executor
assert executor.__module__ == "tomosnake.slurm_executor", executor.__module__
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
