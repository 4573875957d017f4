"""A user starts a job under the local queue and reaches it with plain OpenSSH tools."""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import can_connect, free_port, Job, Workbench, session_leftovers, sshd_children, wait_until


def test_ssh_runs_in_job_cwd_with_job_environment(bench: Workbench, job: Job) -> None:
    result = bench.ssh(job.host, 'echo $_CONDOR_JOB_PIDS; pwd; echo $MARKER')
    assert result.returncode == 0, result.stderr
    pids, cwd, marker = result.stdout.decode().split("\n")[:3]
    sleep_pid = int(pids.split()[0])
    assert Path(f"/proc/{sleep_pid}/cmdline").read_bytes() == b"sleep\x00600\x00"
    assert cwd == str(bench.root / "job0")
    assert marker == "only-in-the-job"


def test_remote_command_exit_status_comes_back(bench: Workbench, job: Job) -> None:
    assert bench.ssh(job.host, "exit 7").returncode == 7


def test_bare_cluster_host_means_proc_zero(bench: Workbench, job: Job) -> None:
    cluster = job.id.split(".")[0]
    result = bench.ssh(f"job-{cluster}", "echo ok")
    assert result.stdout == b"ok\n", result.stderr


@pytest.mark.parametrize("legacy", [False, True], ids=["sftp-protocol", "scp-protocol"])
def test_scp_upload_and_download(bench: Workbench, job: Job, legacy: bool) -> None:
    flags = ["-O"] if legacy else []
    data = os.urandom(300_000)
    local = bench.root / "up.bin"
    local.write_bytes(data)
    up = bench.ssh(*flags, str(local), f"{job.host}:uploaded.bin", tool="scp")
    assert up.returncode == 0, up.stderr
    assert (bench.root / "job0" / "uploaded.bin").read_bytes() == data
    down = bench.ssh(*flags, f"{job.host}:uploaded.bin", str(bench.root / "down.bin"), tool="scp")
    assert down.returncode == 0, down.stderr
    assert (bench.root / "down.bin").read_bytes() == data


def test_sftp_batch_in_job_directory(bench: Workbench, job: Job) -> None:
    (bench.root / "job0" / "result.txt").write_text("answer 42\n")
    batch = f"pwd\nget result.txt {bench.root / 'fetched.txt'}\n".encode()
    result = bench.ssh("-b", "-", job.host, input=batch, tool="sftp")
    assert result.returncode == 0, result.stderr
    assert str(bench.root / "job0") in result.stdout.decode()
    assert (bench.root / "fetched.txt").read_text() == "answer 42\n"


def test_rsync_to_and_from_job(bench: Workbench, job: Job) -> None:
    source = bench.root / "tree"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "a.txt").write_text("alpha")
    (source / "b.bin").write_bytes(os.urandom(100_000))
    rsh = f"ssh -F {bench.ssh_config} -o BatchMode=yes"
    up = subprocess.run(["rsync", "-a", "-e", rsh, f"{source}/", f"{job.host}:copy/"],
                        capture_output=True, env=bench.env, timeout=60)
    assert up.returncode == 0, up.stderr
    down = subprocess.run(["rsync", "-a", "-e", rsh, f"{job.host}:copy/", f"{bench.root}/back/"],
                          capture_output=True, env=bench.env, timeout=60)
    assert down.returncode == 0, down.stderr
    assert (bench.root / "back" / "sub" / "a.txt").read_text() == "alpha"
    assert _digest(bench.root / "back" / "b.bin") == _digest(source / "b.bin")


def test_local_forward_reaches_server_started_in_job(bench: Workbench, job: Job) -> None:
    port = free_port()
    script = ("import socket\n"
              "s=socket.create_server(('127.0.0.1',0)); print(s.getsockname()[1], flush=True)\n"
              "while True:\n"
              "    c,_=s.accept(); c.sendall(b'hello from the job'); c.close()\n")
    (bench.root / "job0" / "server.py").write_text(script)
    server = subprocess.Popen(["ssh", "-F", str(bench.ssh_config), "-o", "BatchMode=yes",
                               job.host, "python3 server.py"], stdout=subprocess.PIPE,
                              env=bench.env)
    try:
        remote_port = int(server.stdout.readline())
        forward = subprocess.Popen(["ssh", "-F", str(bench.ssh_config), "-o", "BatchMode=yes",
                                    "-N", "-o", "ExitOnForwardFailure=yes",
                                    "-L", f"127.0.0.1:{port}:127.0.0.1:{remote_port}", job.host],
                                   env=bench.env)
        try:
            assert wait_until(lambda: can_connect(port), timeout=10)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                assert _read_all(conn) == b"hello from the job"
        finally:
            forward.terminate()
            forward.wait()
    finally:
        server.terminate()
        server.wait(10)


def test_ssh_T_bash_runs_script_from_stdin(bench: Workbench, job: Job) -> None:
    script = b"cd .. && cd - >/dev/null\necho \"$MARKER in $(pwd)\"\nexit 3\n"
    result = bench.ssh("-T", job.host, "bash", input=script)
    assert result.returncode == 3
    assert result.stdout.decode() == f"only-in-the-job in {bench.root / 'job0'}\n"


def test_relay_mode_carries_a_session(bench: Workbench, job: Job) -> None:
    config = bench.root / "relay_config"
    include = (bench.root / "config" / "condor-job-proxy" / "ssh_config").read_text()
    config.write_text(include.replace("connect --identity", "connect --relay --identity")
                      .replace("ProxyUseFdpass yes", "ProxyUseFdpass no"))
    payload = os.urandom(2_000_000)
    result = subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", job.host,
                             "sha256sum"], input=payload, capture_output=True, env=bench.env,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0].decode() == hashlib.sha256(payload).hexdigest()


def test_nothing_left_after_sessions(bench: Workbench, job: Job) -> None:
    for _ in range(3):
        assert bench.ssh(job.host, "true").returncode == 0
    bench.proxy("daemon", "--stop", check=True)   # with the spare session it kept for a 4th ssh
    assert wait_until(lambda: not session_leftovers(bench))
    assert wait_until(lambda: not sshd_children(job.process.pid))


def test_host_key_is_pinned_per_job(bench: Workbench, job: Job) -> None:
    assert bench.ssh(job.host, "true").returncode == 0
    known = bench.root / "state" / "condor-job-proxy" / "known_hosts" / job.host
    host, key_type, _ = known.read_text().split()
    assert (host, key_type) == (job.host, "ssh-ed25519")


def test_completed_job_is_refused_with_its_exit_status(bench: Workbench) -> None:
    finished = bench.start_job("sh", "-c", "sleep 0.5; exit 3")
    assert finished.wait() == 3
    result = bench.ssh(finished.host, "true")
    assert result.returncode == 255
    assert f"job {finished.id} is not running: it has completed (exit status 3)" in result.stderr.decode()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_all(conn: socket.socket) -> bytes:
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    return data
