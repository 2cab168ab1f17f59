"""The command line as a user meets it: --version, run --help (the workflow's own keys, from the config model),
init (a commented config that runs as written once input is filled in), a did-you-mean for an unknown key, and
Ctrl-C (one line, exit 130; the same command resumes). Every command runs as a subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from tomosnake import __version__, config, config_doc
from tomosnake.cli import INTERRUPTED
from tomosnake.config import TomoConfig
from tomosnake.phantom import PhantomSpec, write_scan

ROOT = Path(__file__).resolve().parents[1]
TOOTH = ROOT / "tests" / "data" / "tooth.h5"
TOMOSNAKE = str(Path(sys.executable).parent / "tomosnake")


def model_keys(model: type[BaseModel] = TomoConfig, prefix: str = "") -> list[str]:
    """Every leaf key of the config model, walked here independently of config_doc."""
    out = []
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out += model_keys(sub, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def tomosnake(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([TOMOSNAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_version(tmp_path: Path) -> None:
    done = tomosnake("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, f"tomosnake {__version__}")
    run = tomosnake("run", "--version", cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.splitlines()[0] == f"tomosnake {__version__}"


def test_every_key_has_a_default_and_a_meaning() -> None:
    keys = config_doc.keys()
    assert [k.name for k in keys] == model_keys()
    assert not [k.name for k in keys if not k.meaning.strip()]
    assert {k.name: k.default for k in keys}["memory_mb"] == TomoConfig().memory_mb


def test_run_help_lists_the_workflows_keys_then_points_to_snakemake(tmp_path: Path) -> None:
    done = tomosnake("run", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    listed = [m[1] for line in lines if (m := re.match(r"  (\S+)\s{2,}", line))]
    assert listed == model_keys()
    assert "snakemake --help" in lines[-1]
    assert len(lines) < len(listed) + 30  # not Snakemake's 1,100 lines of options
    memory = next(line for line in lines if line.startswith("  memory_mb "))
    assert "2000.0" in memory and "memory budget per job" in memory


def _uncommented(text: str) -> str:
    """The init file with every commented key (and section) made active."""
    return "\n".join(re.sub(r"^# (\s*[a-z0-9_]+:)", r"\1", line) for line in text.splitlines())


def test_init_writes_every_key_and_runs_as_written_once_input_is_filled_in(tmp_path: Path) -> None:
    done = tomosnake("init", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "config.yaml"
    text = path.read_text()
    for key in config_doc.keys():  # each key on a line of its own, with its default and meaning
        leaf = key.name.split(".")[-1]
        assert any(re.match(rf"^#?\s*{leaf}: ", line) and key.meaning in line for line in text.splitlines()), key
    # every default written is valid as written: all keys made active, the config loads to the model's defaults
    active = yaml.safe_load(_uncommented(text)) | {"input": [str(TOOTH)]}
    assert config.validate(active).model_dump() == TomoConfig(input=[str(TOOTH)]).model_dump()
    again = tomosnake("init", cwd=tmp_path)
    assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1 and "exists" in again.stderr

    path.write_text(text.replace("input: []", f"input: [{TOOTH}]"))
    run = tomosnake("run", "--profile", "local", "--cores", "2", "--configfile", str(path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "results" / "tooth" / "tooth_recon.h5").is_file()
    assert (tmp_path / "results" / "tooth" / "tooth_report.pdf").is_file()


def test_an_unknown_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    done = tomosnake("run", "--profile", "local", "-n", "--config", f"input={TOOTH}", f"outdir={tmp_path / 'out'}",
                     "memroy_mb=1000", "recon={centre: 300}", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "'memroy_mb': unknown key (did you mean 'memory_mb'?)" in last
    assert "'recon.centre': unknown key (did you mean 'recon.center'?)" in last


@pytest.mark.slow
def test_ctrl_c_stops_with_one_line_and_the_same_command_resumes(tmp_path: Path) -> None:
    scan = write_scan(tmp_path / "scan.h5", PhantomSpec(n_proj=720, n_rows=128, n_cols=512))
    out = tmp_path / "out"
    cmd = [TOMOSNAKE, "run", "--profile", "local", "--cores", "2", "--config", f"input={scan}", f"outdir={out}",
           "memory_mb=400"]
    # its own process group, as a shell gives a command: Ctrl-C sends SIGINT to the group
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=os.environ)
    deadline = time.time() + 120
    while not (out / "scan" / "plan.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert not (out / "scan" / "scan_recon.h5").exists(), "the run ended before Ctrl-C: nothing was interrupted"
    assert proc.returncode == 130, stderr[-3000:]
    assert stderr.splitlines()[-1] == INTERRUPTED
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr

    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "scan" / "scan_recon.h5").is_file() and (out / "scan" / "cleanup.done").is_file()


def test_audit_help_is_plain_text(tmp_path: Path) -> None:
    done = tomosnake("audit", "--help", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("tomosnake audit: what a run would submit")
    assert "`" not in done.stdout
