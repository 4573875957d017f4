"""Spare sessions: a job connected to again and again without a shared connection gets its next
session opened ahead of need by the connect daemon, and the starter never lets one stand in
the way of the job's end, its suspension or its session count.

The bench has shared connections off (conftest), as `ssh -o ControlPath=none`, scp loops and
Ansible-style tools have them: every ssh is a connect of its own.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, Job, Workbench, session_leftovers, wait_until


def set_spare_seconds(bench: Workbench, seconds: int) -> None:
    settings = bench.root / "config" / "condor-job-proxy" / "config.toml"
    settings.write_text(settings.read_text() + f"spare_session_seconds = {seconds}\n")


def open_a_spare(bench: Workbench, job: Job) -> Path:
    """ssh until the daemon keeps a spare for the job: the first ssh starts the daemon, the
    next two make a run of connects. The spare is then a session directory no ssh ran in."""
    used = set()
    for _ in range(6):
        result = bench.ssh(job.host, "echo $CONDOR_JOB_PROXY_SESSION")
        assert result.returncode == 0, result.stderr
        used.add(Path(result.stdout.decode().strip()).name)
        if wait_until(lambda: set(session_leftovers(bench)) - used, timeout=0.7):
            spare, = set(session_leftovers(bench)) - used
            return next((bench.root / "tmp").glob(f"cjp-starter-*/{spare}"))
    pytest.fail(f"no spare session: {session_leftovers(bench)}")


def record(bench: Workbench, job: Job) -> dict:
    return json.loads((bench.root / "queue" / f"{job.id}.json").read_text())


def test_next_ssh_lands_in_the_session_opened_for_it(bench: Workbench, job: Job) -> None:
    spare = open_a_spare(bench, job)
    result = bench.ssh(job.host, "echo $CONDOR_JOB_PROXY_SESSION; echo $MARKER; pwd")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == [str(spare), "only-in-the-job",
                                              str(bench.root / "job0")]


def test_scp_through_a_spare_session(bench: Workbench, job: Job) -> None:
    open_a_spare(bench, job)
    (bench.root / "job0" / "result.txt").write_text("computed\n")
    result = bench.ssh(f"{job.host}:result.txt", str(bench.root / "copy.txt"), tool="scp")
    assert result.returncode == 0, result.stderr
    assert (bench.root / "copy.txt").read_text() == "computed\n"


def test_a_spare_session_is_not_counted_as_open(bench: Workbench, job: Job) -> None:
    spare = open_a_spare(bench, job)
    time.sleep(1)   # the starter accounts for a session's start or end 0.25 s later
    assert spare.exists() and record(bench, job)["sessions"] == 0


def test_job_that_exits_ends_at_once_despite_a_spare_session(bench: Workbench) -> None:
    job = bench.start_job("sh", "-c", "while [ ! -e stop ]; do sleep 0.05; done; exit 3")
    open_a_spare(bench, job)
    (bench.root / "job0" / "stop").touch()
    assert job.wait(timeout=10) == 3      # not held for the spare's sshd (its login grace: 120 s)
    assert record(bench, job)["state"] == "completed"
    assert not session_leftovers(bench)


def test_suspended_job_refuses_rather_than_hand_over_a_spare(bench: Workbench, job: Job) -> None:
    open_a_spare(bench, job)
    job.process.send_signal(signal.SIGTSTP)
    try:
        assert wait_until(lambda: record(bench, job)["state"] == "suspended")
        refused = bench.ssh(job.host, "true", timeout=20)
        assert refused.returncode == 255
        assert "suspended" in refused.stderr.decode()
    finally:
        job.process.send_signal(signal.SIGCONT)
    assert wait_until(lambda: record(bench, job)["state"] == "running")
    assert bench.ssh(job.host, "true").returncode == 0


def test_spare_session_closes_after_its_time(bench: Workbench, job: Job) -> None:
    set_spare_seconds(bench, 2)
    open_a_spare(bench, job)
    assert wait_until(lambda: not session_leftovers(bench), timeout=10)


def test_spare_session_seconds_0_opens_none(bench: Workbench, job: Job) -> None:
    set_spare_seconds(bench, 0)
    for _ in range(4):
        assert bench.ssh(job.host, "true").returncode == 0
    time.sleep(1)
    assert not session_leftovers(bench)


def test_new_job_access_key_is_not_met_by_a_spare_opened_for_the_old_one(
        bench: Workbench, job: Job) -> None:
    """The spare's sshd lets in only the key that opened it; a new key gets a new session."""
    spare = open_a_spare(bench, job)
    key = bench.root / "config" / "condor-job-proxy" / "id_ed25519"
    for path in (key, key.with_name(key.name + ".pub")):
        path.unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    result = bench.ssh(job.host, "echo $CONDOR_JOB_PROXY_SESSION")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() != str(spare)


def test_doctor_says_how_long_a_spare_session_is_kept(bench: Workbench, job: Job) -> None:
    assert "gets a spare session, kept 30 s (spare_session_seconds)" in \
        bench.proxy("doctor", job.host).stdout.decode()
    set_spare_seconds(bench, 0)
    assert "no spare sessions (spare_session_seconds = 0)" in \
        bench.proxy("doctor", job.host).stdout.decode()


def test_starter_that_predates_spares_keeps_no_idle_session(bench: Workbench,
                                                            tmp_path: Path) -> None:
    """A job whose starter does not acknowledge spares (an older version on an execute node)
    gets none kept: to that starter a spare would be an open session holding the job."""
    older = tmp_path / "older"
    shutil.copytree(ROOT / "condor_job_proxy", older / "condor_job_proxy",
                    ignore=shutil.ignore_patterns("__pycache__"))
    server = older / "condor_job_proxy" / "starter" / "server.py"
    acknowledging = 'extra = {"spare": True} if session.spare else {}'
    assert acknowledging in server.read_text()
    server.write_text(server.read_text().replace(acknowledging, "extra = {}"))
    job = bench.start_job("sleep", "600", env={"PYTHONPATH": f"{older}:{ROOT}"})
    for _ in range(4):
        assert bench.ssh(job.host, "true").returncode == 0
    time.sleep(1)
    assert not session_leftovers(bench)
