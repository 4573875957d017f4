"""A pool job that runs our starter, from submit file to its end, as a new user meets it.

HTCondor's daemons and tools are stand-ins (tests/htcondor_standin): condor_submit, the
schedd (queue and history) and the execute node's condor_starter, which gives the job the
environment a real one does (no PATH, ``_CONDOR_BIN``, chirp only in the sibling libexec).
The starter, chirp publishing, the proxy and ssh are real.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, wait_for_job_line
from htcondor_standin.execute import job_environment, run_to_completion
from test_htcondor_native import native  # noqa: F401 - fixture
from test_htcondor_pool import STANDIN, Pool, _me, pool  # noqa: F401 - fixture
from test_waiting import _change_job, _stderr, _wait_for_line, _waiting

BROKEN = "/nonexistent/interactive-program"


def _install_starter(pool: Pool) -> Path:
    """condor-job-starter "installed" at a path the execute node has (this checkout's code),
    and first on the user's PATH, so submit-snippet names it; HTCondor's tools on PATH too."""
    bin_dir = pool.root / "installed"
    bin_dir.mkdir(exist_ok=True)
    starter = bin_dir / "condor-job-starter"
    starter.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m condor_job_proxy.starter \"$@\"\n")
    starter.chmod(0o755)
    pool.env["PATH"] = f"{bin_dir}:{STANDIN / 'bin'}:{os.environ['PATH']}"
    return starter


def _condor_submit(pool: Pool, submit_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["condor_submit", str(submit_file)], env=pool.env, cwd=submit_file.parent,
                          capture_output=True, text=True, timeout=60)


def _submitted_cluster(result: subprocess.CompletedProcess) -> int:
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().rsplit(" ", 1)[1].rstrip("."))


def _history_ad(pool: Pool, cluster: int) -> dict:
    history = json.loads(pool.file.read_text())["schedds"]["ap.test"].get("history", [])
    return next(ad for ad in history if ad["ClusterId"] == cluster)


def _submit_file(pool: Pool, text: str) -> Path:
    path = pool.root / "submit" / "job.sub"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


# --- item 1: a job on an execute node (no PATH; chirp beside $_CONDOR_BIN) ---------------------

def _reachable_job_file(pool: Pool, starter: Path) -> Path:
    return _submit_file(pool, f"executable = {starter}\ntransfer_executable = false\n"
                        "arguments = \"run -- sh -c 'echo ran > marker; exit 3'\"\n"
                        "error = job.err\n+WantIOProxy = true\n"
                        f"+CondorJobProxyOwnerKey = \"{pool.public_key()}\"\nqueue\n")


def test_job_on_an_execute_node_without_path_publishes_through_chirp_and_runs(pool: Pool) -> None:
    starter = _install_starter(pool)
    cluster = _submitted_cluster(_condor_submit(pool, _reachable_job_file(pool, starter)))
    scratch = pool.root / "execute" / "dir_1"
    status = run_to_completion(pool.file, "ap.test", cluster, scratch)
    err = (pool.root / "submit" / "job.err").read_text()
    assert status == 3, err
    assert (scratch / "marker").read_text() == "ran\n"
    ad = _history_ad(pool, cluster)
    assert ad["ExitCode"] == 3 and ad["JobStatus"] == 4
    assert ad["CondorJobProxyAddress"].startswith("127.0.0.1:"), err   # chirp beside _CONDOR_BIN
    assert "without ssh access" not in err


def test_job_on_a_node_without_chirp_runs_and_says_why_ssh_is_refused(pool: Pool) -> None:
    starter = _install_starter(pool)
    cluster = _submitted_cluster(_condor_submit(pool, _reachable_job_file(pool, starter)))
    scratch = pool.root / "execute" / "dir_2"
    elsewhere = pool.root / "other-condor" / "bin"   # an installation without libexec/condor_chirp
    elsewhere.mkdir(parents=True)
    status = run_to_completion(pool.file, "ap.test", cluster, scratch,
                               own={"_CONDOR_BIN": str(elsewhere)})
    assert status == 3
    assert (scratch / "marker").read_text() == "ran\n"   # the user's program ran to its end
    lines = (pool.root / "submit" / "job.err").read_text().splitlines()
    refused = [line for line in lines if "without ssh access" in line]
    assert refused == [f"condor-job-starter: job {cluster}.0 runs without ssh access: "
                       f"condor_chirp not found in {elsewhere.parent}/libexec/condor_chirp, "
                       "/usr/libexec/condor/condor_chirp, /usr/lib/condor/libexec/condor_chirp, "
                       "/usr/libexec/condor_chirp, /usr/local/libexec/condor_chirp nor on PATH "
                       "(set $CONDOR_JOB_PROXY_CHIRP)"], lines
    assert "CondorJobProxyAddress" not in _history_ad(pool, cluster)


def start_pool_starter(pool: Pool, cluster: int, none_keys: Path,
                       own: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path, dict]:
    """Our starter as pool job ``cluster``'s wrapper, in the scratch directory and with the
    environment condor_starter gives it (no PATH); returns it once it said its job's line."""
    pool.add_job(cluster, WantIOProxy=True, CondorJobProxyOwnerKey=pool.public_key())
    scratch = pool.root / "execute" / f"dir_{cluster}"
    env = job_environment(scratch, pool.job_ad(cluster), pool.file, "ap.test", "<127.0.0.1:9618>",
                          own={"PYTHONPATH": str(ROOT), **(own or {})})
    err_file = pool.root / f"starter{cluster}.err"
    with open(err_file, "wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "condor_job_proxy.starter", "run",
                                    "--super-users-keys", str(none_keys), "--", "sleep", "600"],
                                   cwd=scratch, env=env, stdin=subprocess.DEVNULL, stderr=err)
    wait_for_job_line(process, err_file)
    return process, scratch, env


def test_starter_without_path_serves_ssh_sessions(pool: Pool, tmp_path: Path) -> None:
    """sshd, ssh-keygen and setpriv are found although the job's environment has no PATH."""
    process, scratch, env = start_pool_starter(pool, 6, tmp_path / "none")
    try:
        assert "PATH" not in env
        result = subprocess.run(["ssh", "-F", str(pool.ssh_config), "-o", "BatchMode=yes",
                                 "job-6.0", "pwd"], env=pool.env, capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode().strip() == str(scratch)
    finally:
        process.terminate()
        process.wait(15)


# --- item 3: submit-snippet into a submit file that ends in queue ------------------------------

def test_submit_snippet_into_a_submit_file_makes_it_submit_a_reachable_job(pool: Pool) -> None:
    starter = _install_starter(pool)
    submit_file = _submit_file(pool, "executable = /bin/sh\n"
                               "arguments = \"-c 'echo ran > marker'\"\nrequest_memory = 512\n"
                               "queue\n")
    result = pool.proxy("submit-snippet", "--into", str(submit_file))
    assert result.returncode == 0, result.stderr
    lines = submit_file.read_text().splitlines()
    assert lines[-1] == "queue"
    cluster = _submitted_cluster(_condor_submit(pool, submit_file))
    ad = pool.job_ad(cluster)
    assert ad["Cmd"] == str(starter) and ad["WantIOProxy"] is True
    assert ad["CondorJobProxyOwnerKey"] == pool.public_key() and ad["RequestMemory"] == 512
    scratch = pool.root / "execute" / "dir_3"
    assert run_to_completion(pool.file, "ap.test", cluster, scratch) == 0
    assert (scratch / "marker").read_text() == "ran\n"   # the file's own program, under the starter
    again = pool.proxy("submit-snippet", "--into", str(submit_file))
    assert again.returncode == 255
    assert again.stderr.decode() == f"condor-job-proxy: {submit_file} already has " \
                                    "condor-job-proxy's lines\n"


def test_stand_in_condor_submit_ignores_lines_after_queue(pool: Pool) -> None:
    """What `submit-snippet >> job.sub` did: the lines after queue describe no job."""
    _install_starter(pool)
    submit_file = _submit_file(pool, "request_memory = 512\nqueue\n")
    with open(submit_file, "a") as out:
        out.write(pool.proxy("submit-snippet").stdout.decode())
    result = _condor_submit(pool, submit_file)
    assert result.returncode == 1
    assert "ERROR: No 'executable' parameter was provided" in result.stderr


# --- item 2: ssh condor-interactive and a job that ends while it waits -------------------------

def _interactive(pool: Pool, command: str) -> None:
    starter = _install_starter(pool)
    pool.configure(f'resolver = "htcondor"\n[interactive]\nstarter = "{starter}"\n'
                   f'command = {command}\n')


def test_condor_interactive_job_that_exits_is_reported_with_its_status_and_stderr(
        pool: Pool) -> None:
    _interactive(pool, f'["{BROKEN}"]')
    waiting = _waiting(pool, "connect", "condor-interactive", _me())
    _wait_for_line(pool, "condor-interactive: submitted job 1.0")
    ad = pool.job_ad(1)
    assert ad["InteractiveJob"] is True and ad["CondorJobProxyInteractive"] == "default"
    err_file = pool.root / "state" / "condor-job-proxy" / "interactive" / "default.1.err"
    assert ad["Err"] == str(err_file)
    _wait_for_line(pool, "job 1.0 (condor-interactive): idle")
    assert run_to_completion(pool.file, "ap.test", 1, pool.root / "execute" / "dir_1") == 1
    assert waiting.wait(30) == 255
    lines = _stderr(pool)
    assert lines[-1].startswith("condor-job-proxy: job 1.0 has ended: exit status 1; its stderr "
                                f"is in {err_file} (after waiting 0:"), lines
    assert f"condor-job-starter: cannot run {BROKEN}: command not found" in err_file.read_text()
    assert not any("Traceback" in line or "could not remove" in line for line in lines), lines


def test_condor_interactive_job_that_is_held_is_reported_with_the_reason_and_stderr(
        pool: Pool) -> None:
    _interactive(pool, '["sleep", "infinity"]')
    waiting = _waiting(pool, "connect", "condor-interactive", _me())
    _wait_for_line(pool, "job 1.0 (condor-interactive): idle")
    _change_job(pool, 1, JobStatus=5, HoldReason="Error from slot1@exec.test: out of disk")
    assert waiting.wait(30) == 255
    err_file = pool.root / "state" / "condor-job-proxy" / "interactive" / "default.1.err"
    assert _stderr(pool)[-1].startswith(
        "condor-job-proxy: job 1.0 is held: Error from slot1@exec.test: out of disk; its stderr "
        f"is in {err_file} (after waiting 0:"), _stderr(pool)


def test_condor_interactive_stderr_goes_where_the_template_says(pool: Pool) -> None:
    _interactive(pool, '["sleep", "infinity"]')
    (pool.root / "config" / "condor-job-proxy" / "interactive").mkdir()
    (pool.root / "config" / "condor-job-proxy" / "interactive" / "default.sub").write_text(
        f"error = {pool.root / 'elsewhere.err'}\n")
    waiting = _waiting(pool, "connect", "condor-interactive", _me())
    _wait_for_line(pool, "job 1.0 (condor-interactive): idle")
    assert pool.job_ad(1)["Err"] == str(pool.root / "elsewhere.err")
    _change_job(pool, 1, JobStatus=5, HoldReason="Error from slot1@exec.test: out of disk")
    assert waiting.wait(30) == 255
    assert f"; its stderr is in {pool.root / 'elsewhere.err'} (after" in _stderr(pool)[-1]


# --- item 5: a local universe job (HTCondor's starter on the access point) --------------------

@pytest.mark.parametrize("universe, remote_host", [(5, "slot1_2@exec.test"), (12, None)],
                         ids=["vanilla", "local"])
def test_first_ssh_reaches_a_job_whatever_its_universe(native: Pool, universe: int,
                                                       remote_host: str | None) -> None:
    """A job that runs no starter of ours, reached through the pool's condor_ssh_to_job on the
    first connect, before any config refresh, when my login name here is not the job's (a
    laptop's name, as ssh's default): local universe jobs as vanilla ones."""
    iwd = native.root / "iwd"
    iwd.mkdir()
    process = subprocess.Popen(["sleep", "600"])
    try:
        native.add_job(40, Iwd=str(iwd), StandinJobPid=process.pid, JobUniverse=universe,
                       **({"RemoteHost": remote_host} if remote_host else {}))
        config = native.root / "ssh_config.laptop_name"
        config.write_text(native.ssh_config.read_text() + "\nHost *\n    User nobody\n")
        result = subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", "job-40.0",
                                 "pwd"], env=native.env, capture_output=True, timeout=90)
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode().strip() == str(iwd)
    finally:
        process.kill()
        process.wait()
