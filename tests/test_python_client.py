"""Python code (Fabric, Parsl, notebooks) runs commands in a job through paramiko."""
from __future__ import annotations

import subprocess
import sys

from conftest import Job, Workbench

# What a script does: connect by job host name, run a command, read its output.
CLIENT = '''import sys
import paramiko
from condor_job_proxy import client
host, via, command = sys.argv[1], sys.argv[2] or None, sys.argv[3] or None
try:
    ssh = client.connect(host, via=via, via_command=command)
except paramiko.BadHostKeyException as err:
    sys.exit(f"refused: {type(err).__name__}")
except client.ProxyError as err:
    sys.exit(f"no session: {err}")
_, out, _ = ssh.exec_command("echo $MARKER; pwd")
print(out.read().decode(), end="")
ssh.close()
'''

# Code that makes its own SSHClient (here with the AutoAddPolicy Fabric sets) and takes the
# job's socket: pin_in pins the job's key and turns the policy to reject.
OWN_CLIENT = '''import sys
import paramiko
from condor_job_proxy.client import open_job
job = open_job(sys.argv[1])
ssh = paramiko.SSHClient()
ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())   # Fabric's default
job.pin_in(ssh, sys.argv[1])
ssh.connect(sys.argv[1], username=job.user, **job.connect_kwargs())
print(ssh.exec_command("whoami")[1].read().decode(), end="")
'''


def run_client(bench: Workbench, script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], env=bench.env,
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)


def test_paramiko_client_runs_a_command_in_a_local_job(bench: Workbench, job: Job) -> None:
    result = run_client(bench, CLIENT, job.host, "", "")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == ["only-in-the-job", str(bench.root / "job0")]


def test_own_paramiko_client_takes_the_jobs_socket_and_pinned_key(bench: Workbench, job: Job) -> None:
    result = run_client(bench, OWN_CLIENT, job.host)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == subprocess.run(
        ["id", "-un"], capture_output=True, text=True).stdout.strip()


def test_client_raises_the_proxys_error_for_a_job_that_is_not_there(bench: Workbench) -> None:
    result = run_client(bench, CLIENT, "job-404.0", "", "")
    assert result.returncode == 1
    assert result.stderr.decode().startswith("no session: job 404.0 is not in the queue")
