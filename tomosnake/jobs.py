"""What every Snakemake script does first: logging to the rule's log, timing records, config; fault injection."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from types import TracebackType

from tomosnake import config as tconfig
from tomosnake.report import timings
from tomosnake.config import TomoConfig


def start(smk: object) -> TomoConfig:
    """Send logging to the job's log file and stderr, record its timings (`timings.install`);
    return the validated config."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    logs = list(getattr(smk, "log", []))
    if logs:
        handlers.append(logging.FileHandler(logs[0]))
        timings.install(logs[0], int(getattr(smk, "threads", 1)))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sys.excepthook = _log_uncaught
    return tconfig.load(dict(smk.config))  # type: ignore[attr-defined]


def _log_uncaught(kind: type[BaseException], err: BaseException, tb: TracebackType | None) -> None:
    """Put a job's fatal error in its log file, where Snakemake points the user."""
    logging.getLogger("tomosnake").critical("%s: %s", kind.__name__, err, exc_info=(kind, err, tb))


def fault(cfg: TomoConfig, rule: str, chunk: int) -> Callable[[], None] | None:
    """The test hook for ``rule``'s chunk ``chunk``: a callable that fails the job, or None.

    Enabled by config ``fault: {rule, chunk, kind}``; ``raise`` fails with an exception,
    ``kill`` sends SIGKILL to the job itself, as a node failure would.
    """
    f = cfg.fault
    if f.rule != rule or f.chunk != chunk:
        return None

    def trigger() -> None:
        if f.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"injected fault in {rule} chunk {chunk} (config key 'fault')")

    return trigger
