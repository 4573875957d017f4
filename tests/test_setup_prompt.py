"""`setup` at a terminal: it shows the change to ~/.ssh/config and asks before writing anything."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def _setup_at_a_terminal(tmp_path: Path, answer: bytes, *args: str) -> subprocess.CompletedProcess:
    controller, terminal = os.openpty()
    os.write(controller, answer)
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONPATH": str(ROOT),
           "CONDOR_JOB_PROXY_QUEUE": str(tmp_path / "queue")}
    try:
        return subprocess.run([sys.executable, "-m", "condor_job_proxy", "setup", *args],
                              stdin=terminal, capture_output=True, env=env, timeout=60)
    finally:
        os.close(terminal)
        os.close(controller)


def test_answering_no_at_setups_prompt_writes_nothing(tmp_path: Path) -> None:
    ssh_config = tmp_path / "ssh" / "config"
    done = _setup_at_a_terminal(tmp_path, b"n\n", "--ssh-config", str(ssh_config))
    assert done.returncode != 0
    assert b"Change " in done.stderr and b"Aborted" in done.stderr
    assert not ssh_config.exists()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [], written


def test_answering_yes_at_setups_prompt_sets_up(tmp_path: Path) -> None:
    ssh_config = tmp_path / "ssh" / "config"
    done = _setup_at_a_terminal(tmp_path, b"y\n", "--ssh-config", str(ssh_config))
    assert done.returncode == 0, done.stderr
    assert "Include" in ssh_config.read_text()
    assert (tmp_path / "config" / "condor-job-proxy" / "ssh_config").exists()


def test_dry_run_when_already_set_up_ends_its_line(tmp_path: Path) -> None:
    ssh_config = tmp_path / "ssh" / "config"
    assert _setup_at_a_terminal(tmp_path, b"", "--yes", "--ssh-config", str(ssh_config)).returncode == 0
    shown = _setup_at_a_terminal(tmp_path, b"", "--dry-run", "--ssh-config", str(ssh_config))
    assert shown.stdout == f"{ssh_config}: already set up\n".encode(), shown
