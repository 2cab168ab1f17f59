"""Malformed input (tests/malformed.py) stops before any job is queued, with one line naming the file and
dataset or config key; usable but odd input runs with a warning in the log and on the report's first page.

Every case goes through `preflight.check` (what the Snakefile calls at parse time); a few through the
real `snakemake` (local profile) in a subprocess, which must print the one line, build no DAG and
create no output folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfReader

from tests import malformed
from tests.test_preflight import _stopped_before_any_job
from tests.workflow import run
from tomosnake import preflight
from tomosnake.preflight import PreflightError


def _config(case: malformed.Malformed, outdir: Path) -> dict:
    return {"input": [str(case.scan)], "outdir": str(outdir), "memory_mb": 200, "overhead_mb": 0, "threads": 1,
            **case.config}


@pytest.mark.parametrize("make", malformed.REFUSED.values(), ids=malformed.REFUSED.keys())
def test_refused_with_one_line(tmp_path, make):
    case = make(tmp_path)
    raw = _config(case, tmp_path / "out")
    with pytest.raises(PreflightError) as err:
        preflight.check(raw)
    text = str(err.value)
    assert "\n" not in text.strip(), text
    for fragment in case.fragments:
        assert fragment in text, (fragment, text)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vds_missing_source", "equal_angles_auto_center"])
def test_snakemake_queues_nothing(tmp_path, name):
    case = malformed.REFUSED[name](tmp_path)
    _stopped_before_any_job(tmp_path / "work", _config(case, tmp_path / "out"), *case.fragments)


@pytest.mark.parametrize("make", malformed.WARNED.values(), ids=malformed.WARNED.keys())
def test_usable_input_passes_with_one_warning(tmp_path, make):
    case = make(tmp_path)
    (plan,) = preflight.check(_config(case, tmp_path / "out")).values()
    assert len(plan.warnings) == 1 and all(f in plan.warnings[0] for f in case.fragments), plan.warnings
    assert plan.theta_deg.max() == pytest.approx(malformed.SPEC.theta().max())  # radians read as degrees


@pytest.mark.slow
def test_warning_in_the_log_and_on_the_reports_first_page(tmp_path):
    case = malformed.radian_angles(tmp_path)
    raw = _config(case, tmp_path / "out") | {"cleanup": False}
    proc = run(tmp_path / "work", raw)
    warned = [line for line in proc.stderr.splitlines() if line.startswith("tomosnake: warning:")]
    assert len(warned) == 1 and "radians" in warned[0], proc.stderr[-3000:]
    d = tmp_path / "out" / "radians"
    assert "radians" in (d / "logs" / "plan.log").read_text()
    page_one = PdfReader(d / "radians_report.pdf").pages[0].extract_text()
    assert "Warnings" in page_one and "radians" in page_one, page_one[:2000]
