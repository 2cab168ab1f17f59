"""The SLURM executor of snakemake-executor-plugin-slurm with two of its status gaps closed.

The plugin (2.8.x, read in ``Executor.check_active_jobs``) leaves a run waiting for ever when

1. a job ends in a state it does not match exactly: sacct writes a cancelled job as
   ``CANCELLED by <uid>``, and a preempted job (``PREEMPTED``) is only warned about;
2. every status query of a cycle fails (slurmdbd unreachable): it then yields none of the active
   jobs, and Snakemake forgets them (plugin issue 207).

`Executor` runs the plugin's check, then settles the jobs it left unsettled (still waiting, or
dropped) from one more query of the run's jobs, by sacct or, when sacct fails, by squeue (slurmctld
answers without the database): a job whose state's first word is a final failure is reported
failed with its whole state, COMPLETED reported done, anything else (or no answer) kept waiting.
`install` puts it in place of the plugin's executor for the executor name ``slurm``; the Snakefile
calls it, so every SLURM run of the workflow gets it, whatever profile.

Upstream the fix belongs in the plugin's ``Executor.check_active_jobs``: compare
``status.split()[0]`` (not the whole state) with its ``fail_stati``, add ``PREEMPTED`` to them unless
``requeue`` is set, and when every attempt of a cycle failed (``status_of_jobs is None``) yield every
active job again (or query ``squeue`` once) instead of none.
"""

from __future__ import annotations

from importlib.metadata import version

from packaging.specifiers import SpecifierSet

# The plugin versions whose check_active_jobs this wraps (read and tested); pyproject.toml pins the same.
PLUGIN_VERSIONS = SpecifierSet(">=2.8.0,<2.9")
# Final states that mean the job did not do its work. NODE_FAIL and PREEMPTED are left to SLURM
# when the plugin's ``requeue`` setting is on (SLURM puts the job back in the queue).
FAILED_STATES = frozenset(
    {"BOOT_FAIL", "CANCELLED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT"}
)
REQUEUED_BY_SLURM = frozenset({"NODE_FAIL", "PREEMPTED"})


def base_state(state: str) -> str:
    """A SLURM job state without its qualifiers: ``CANCELLED by 0`` -> ``CANCELLED``, ``FAILED+`` -> ``FAILED``."""
    words = state.split()
    return words[0].rstrip("+").upper() if words else ""


def _executor_class() -> type:
    from snakemake_executor_plugin_slurm import Executor as PluginExecutor
    from snakemake_executor_plugin_slurm.job_status_query import (
        query_job_status,
        query_job_status_sacct,
        query_job_status_squeue,
    )

    class Executor(PluginExecutor):
        """The plugin's executor; jobs its status check leaves unsettled are settled here."""

        def __post_init__(self, test_mode: bool = False) -> None:
            super().__post_init__(test_mode)
            self._settled: set[str] = set()  # external job ids reported done or failed

        def report_job_success(self, job_info) -> None:
            self._settled.add(job_info.external_jobid)
            super().report_job_success(job_info)

        def report_job_error(self, job_info, msg=None, **kwargs) -> None:
            self._settled.add(job_info.external_jobid)
            super().report_job_error(job_info, msg=msg, **kwargs)

        async def _run_states(self) -> dict[str, str]:
            """The run's jobs' states by sacct, else by squeue, else none."""
            for command in (query_job_status_sacct(self.run_uuid), query_job_status_squeue(self.run_uuid)):
                async with self.status_rate_limiter:
                    states, _ = await query_job_status(command, self.logger)
                if states is not None:
                    return states
                self.logger.debug(f"status query failed: {command}")
            return {}

        async def check_active_jobs(self, active_jobs):
            waiting = [j async for j in super().check_active_jobs(active_jobs)]
            # jobs the plugin neither reported nor yielded were dropped (all its queries failed)
            waiting_ids = {j.external_jobid for j in waiting}
            unsettled = waiting + [j for j in active_jobs
                                   if j.external_jobid not in waiting_ids | self._settled]
            if not unsettled:
                return
            states = await self._run_states()
            failed = FAILED_STATES - (REQUEUED_BY_SLURM if self.workflow.executor_settings.requeue else frozenset())
            for job in unsettled:
                state = states.get(job.external_jobid, "")
                if base_state(state) == "COMPLETED":
                    self.report_job_success(job)
                elif base_state(state) in failed:
                    log = job.aux.get("slurm_logfile")
                    self.report_job_error(job, msg=f"SLURM-job '{job.external_jobid}' failed, SLURM status is: "
                                          f"'{state}'.", aux_logs=[str(log)] if log else [])
                else:
                    yield job
                    continue
                # something finished: poll again soon, as the plugin does after a finished job
                self.next_seconds_between_status_checks = getattr(
                    self.workflow.executor_settings, "init_seconds_before_status_checks", 40)

    return Executor


def install() -> bool:
    """Make Snakemake's executor ``slurm`` this module's `Executor`, where the plugin is installed in one of
    `PLUGIN_VERSIONS`. Returns whether it did (no plugin, or another version: the plugin's own executor)."""
    try:
        installed = version("snakemake-executor-plugin-slurm")
        from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
    except ImportError:
        return False
    if installed not in PLUGIN_VERSIONS:
        return False
    registry = ExecutorPluginRegistry()
    if not registry.is_installed("slurm"):
        return False
    plugin = registry.get_plugin("slurm")
    if getattr(plugin.executor, "__module__", "") != __name__:
        plugin.executor = _executor_class()
    return True
