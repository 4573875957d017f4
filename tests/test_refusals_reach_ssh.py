"""A refusal reaches ssh's own stderr where no terminal is: VS Code's log, Ansible, git, cron.

With shared connections on (the default include), ssh puts the ProxyCommand's stderr on
/dev/null. These run ssh as scripts do: BatchMode, no terminal at all (a new session, stdin
/dev/null), and check that the proxy's one line is in what ssh printed, with exit status 255.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import Job, Workbench


@pytest.fixture
def shared(bench: Workbench):
    """The bench with the default settings: shared connections in a short runtime dir."""
    runtime = Path(tempfile.mkdtemp(prefix="cjp-"))
    bench.env["XDG_RUNTIME_DIR"] = str(runtime)
    (bench.root / "config" / "condor-job-proxy" / "config.toml").write_text("")
    bench.proxy("config", "refresh", check=True)
    yield bench
    for job in bench.jobs:
        _script_ssh(bench, "-O", "exit", job.host)
    shutil.rmtree(runtime, ignore_errors=True)


def _script_ssh(bench: Workbench, *args: str) -> subprocess.CompletedProcess:
    """ssh as a script runs it: no controlling terminal, stdin from /dev/null, BatchMode."""
    return subprocess.run(["ssh", "-F", str(bench.ssh_config), "-o", "BatchMode=yes", *args],
                          env=bench.env, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=60, start_new_session=True)


def _first_connect_starts_the_daemon(bench: Workbench, job: Job) -> None:
    done = _script_ssh(bench, job.host, "true")
    assert done.returncode == 0, done.stderr
    _script_ssh(bench, "-O", "exit", job.host)


def test_script_ssh_to_a_missing_job_shows_why(shared: Workbench) -> None:
    done = _script_ssh(shared, "job-99.0", "true")
    assert done.returncode == 255
    assert "condor-job-proxy: job 99.0 is not in the queue" in done.stderr.decode(), done.stderr
    assert "proxy dialer did not pass back a connection" not in done.stderr.decode()


@pytest.mark.parametrize("client", ["compiled", "python"])
def test_script_ssh_through_the_connect_daemon_shows_why(shared: Workbench, job: Job,
                                                          client: str) -> None:
    if client == "python":
        (shared.root / "config" / "condor-job-proxy" / "config.toml").write_text(
            "compiled_client = false\n")
        shared.proxy("config", "refresh", check=True)
    _first_connect_starts_the_daemon(shared, job)
    done = _script_ssh(shared, "job-98.0", "true")
    assert done.returncode == 255
    assert "condor-job-proxy: job 98.0 is not in the queue" in done.stderr.decode(), done.stderr


def test_script_ssh_with_a_wrong_login_name_shows_the_right_one(shared: Workbench,
                                                                 job: Job) -> None:
    done = _script_ssh(shared, "-l", "nobody", job.host, "true")
    assert done.returncode == 255
    assert f"job {job.id} runs as user" in done.stderr.decode(), done.stderr
    assert "not 'nobody'" in done.stderr.decode()


def test_script_ssh_after_a_refusal_reaches_the_job(shared: Workbench, job: Job) -> None:
    """The refusal's throwaway host key is the job's pin only for that connect."""
    refused = _script_ssh(shared, "-l", "nobody", job.host, "true")
    assert refused.returncode == 255
    done = _script_ssh(shared, job.host, "echo", "$MARKER")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == "only-in-the-job"


def test_stranger_key_refusal_reaches_a_script(shared: Workbench, job: Job) -> None:
    stranger = shared.root / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    include = shared.root / "config" / "condor-job-proxy" / "ssh_config"
    text = include.read_text().replace(
        str(shared.root / "config" / "condor-job-proxy" / "id_ed25519"), str(stranger))
    include.write_text(text)
    done = _script_ssh(shared, job.host, "true")
    assert done.returncode == 255
    assert "you are not the job's owner" in done.stderr.decode(), done.stderr


@pytest.mark.parametrize("client", ["full-command", "compiled", "python"])
@pytest.mark.parametrize("unshared", [["-S", "none"], ["-o", "ControlPath=none"]],
                         ids=["S-none", "ControlPath-none"])
def test_script_ssh_without_shared_connections_shows_why_and_no_fd_noise(
        shared: Workbench, job: Job, client: str, unshared: list[str]) -> None:
    """ssh shows our stderr here and asked for a connection (fd): it gets the refusal server
    without a banner, so the line is said once, and OpenSSH's mm_receive_fd pair never."""
    if client == "python":
        (shared.root / "config" / "condor-job-proxy" / "config.toml").write_text(
            "compiled_client = false\n")
        shared.proxy("config", "refresh", check=True)
    if client != "full-command":
        _first_connect_starts_the_daemon(shared, job)
    done = _script_ssh(shared, *unshared, "job-99.0", "true")
    stderr = done.stderr.decode()
    assert done.returncode == 255
    assert stderr.count("condor-job-proxy: job 99.0 is not in the queue") == 1, stderr
    assert "Permission denied (refused@condor-job-proxy)" in stderr, stderr
    assert "mm_receive_fd" not in stderr and "proxy dialer" not in stderr, stderr
