"""Atomic writes remove the temporaries that dead writers of the same output left, and only those."""

from __future__ import annotations

import os
import socket
import subprocess

from tomosnake.io.atomic import atomic_dir, atomic_path


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_completed_write_removes_dead_writers_temporaries_only(tmp_path):
    target = tmp_path / "vol.h5"
    host = socket.gethostname()
    dead = [tmp_path / f".vol.h5.tmp-{host}-{_dead_pid()}", tmp_path / ".vol.h5.tmp-4242424",
            tmp_path / ".vol.h5.tmp-othernode-17"]
    for f in dead:
        f.write_text("partial")
    (tmp_path / f".vol.h5.tmp-{host}-{_dead_pid()}").mkdir()  # a killed atomic_dir
    dead.append(tmp_path / f".vol.h5.tmp-{host}-{_dead_pid()}")
    dead[-1].mkdir()
    alive = tmp_path / f".vol.h5.tmp-{host}-{os.getppid()}"  # a writer still running here
    alive.write_text("writing")
    other = tmp_path / f".other.h5.tmp-{host}-{_dead_pid()}"
    other.write_text("another output's")
    with atomic_path(target) as tmp:
        tmp.write_text("done")
    assert target.read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, alive.name, other.name])


def test_a_completed_directory_write_removes_dead_writers_temporaries(tmp_path):
    target = tmp_path / "stack"
    left = tmp_path / f".stack.tmp-{socket.gethostname()}-{_dead_pid()}"
    left.mkdir()
    (left / "z0.tif").write_text("partial")
    with atomic_dir(target) as tmp:
        (tmp / "z0.tif").write_text("done")
    assert [p.name for p in tmp_path.iterdir()] == ["stack"]
