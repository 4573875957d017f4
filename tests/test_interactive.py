"""`ssh condor-interactive`: a job on demand on the local queue, reused while it lives, gone
after the last session plus its linger time. Real ssh, real starters, nothing mocked."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import Workbench, wait_until

LINGER = 4


@pytest.fixture
def interactive(bench: Workbench):
    """The bench with a short linger; every interactive job's starter is ended afterwards."""
    settings = bench.root / "config" / "condor-job-proxy" / "config.toml"
    settings.write_text(settings.read_text() + f"\n[interactive]\nlinger = {LINGER}\n"
                        "[interactive.big]\nrequest_memory = 4096\n")
    bench.proxy("config", "refresh", check=True)
    yield bench
    for record in _records(bench):
        if record.get("label") and record.get("state") == "running":
            try:
                os.kill(record["starter_pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass


def _records(bench: Workbench) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((bench.root / "queue").glob("*.json"))]


def _record(bench: Workbench, job: str) -> dict:
    return json.loads((bench.root / "queue" / f"{job}.json").read_text())


def _submitted_job(stderr: bytes) -> str:
    line = next(line for line in stderr.decode().splitlines() if "submitted job" in line)
    return line.split("submitted job ")[1].split()[0]


def test_ssh_condor_interactive_submits_a_job_and_lands_in_it(interactive: Workbench) -> None:
    result = interactive.ssh("condor-interactive", "echo $_CONDOR_JOB_PIDS; pwd")
    assert result.returncode == 0, result.stderr
    job = _submitted_job(result.stderr)
    record = _record(interactive, job)
    assert record["state"] == "running" and record["label"] == "default"
    pids, cwd = result.stdout.decode().split("\n")[:2]
    assert int(pids.split()[0]) == record["pids"][0]   # the session is one of the job's
    assert Path(f"/proc/{record['pids'][0]}/cmdline").read_bytes() == b"sleep\x00infinity\x00"
    assert cwd == os.path.expanduser("~")


def test_second_ssh_reuses_the_live_interactive_job(interactive: Workbench) -> None:
    first = interactive.ssh("condor-interactive", "true")
    job = _submitted_job(first.stderr)
    second = interactive.ssh("condor-interactive", "true")
    assert second.returncode == 0, second.stderr
    assert f"condor-interactive: reusing job {job}" in second.stderr.decode()
    assert len([r for r in _records(interactive) if r.get("label")]) == 1


def test_named_template_gets_its_own_job_with_its_resources(interactive: Workbench) -> None:
    default = _submitted_job(interactive.ssh("condor-interactive", "true").stderr)
    result = interactive.ssh("condor-interactive-big", "true")
    assert result.returncode == 0, result.stderr
    big = _submitted_job(result.stderr)
    assert big != default
    assert _record(interactive, big)["label"] == "big memory=4096"


def test_unknown_template_is_one_clear_line(interactive: Workbench) -> None:
    result = interactive.ssh("condor-interactive-nosuch", "true")
    assert result.returncode == 255
    assert b"no interactive template 'nosuch'" in result.stderr
    assert b"Traceback" not in result.stderr


def test_interactive_job_goes_away_after_last_session_plus_linger(interactive: Workbench) -> None:
    result = interactive.ssh("condor-interactive", "sleep 1")
    assert result.returncode == 0, result.stderr
    job = _submitted_job(result.stderr)
    ended = time.monotonic()
    assert _record(interactive, job)["state"] == "running"   # kept for reconnects
    assert wait_until(lambda: _record(interactive, job)["state"] == "removed", timeout=LINGER + 10)
    assert time.monotonic() - ended >= LINGER - 0.5
    assert "no session for 4 s" in _record(interactive, job)["reason"]
    again = interactive.ssh("condor-interactive", "true")
    assert again.returncode == 0, again.stderr
    assert _submitted_job(again.stderr) != job   # a fresh job, not the removed one


def test_include_lists_the_interactive_hosts(interactive: Workbench) -> None:
    include = (interactive.root / "config" / "condor-job-proxy" / "ssh_config").read_text()
    # Literal names for VS Code's host list; the pattern lets an unknown one say so clearly.
    assert "Host condor-interactive condor-interactive-big condor-interactive-*\n" in include
