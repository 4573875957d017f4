"""What a user sees when a connection cannot be made: one line on stderr, exit 255."""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess

import pytest

from conftest import Job, Workbench, session_leftovers

BAD_HOSTS = ["job-", "job-x.0", "job-1.-1", "job-1.0.0.0", "job-" + "1" * 296, "job-01", "job-1.",
             "node-1.0"]


@pytest.mark.parametrize("host", BAD_HOSTS, ids=lambda h: h[:12])
def test_bad_host_name_is_one_line_and_255(bench: Workbench, host: str) -> None:
    result = bench.proxy("connect", host, "root")
    assert result.returncode == 255
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "is not a job host name" in lines[0], lines
    assert "Traceback" not in result.stderr.decode()


def test_ssh_to_unknown_job_fails_cleanly(bench: Workbench) -> None:
    result = bench.ssh("job-99.0", "true")
    assert result.returncode == 255
    assert "condor-job-proxy: job 99.0 is not in the queue" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


def test_wrong_login_name_is_refused_naming_the_job_user(bench: Workbench, job: Job) -> None:
    result = bench.ssh("-l", "nobody", job.host, "true")
    assert result.returncode == 255
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    assert f"job {job.id} runs as user '{user}', not 'nobody'" in result.stderr.decode()


def test_debug_shows_the_traceback(bench: Workbench) -> None:
    result = bench.proxy("--debug", "connect", "job-99.0", "root")
    assert result.returncode != 0
    assert "Traceback" in result.stderr.decode()


def test_key_not_authorized_is_refused_before_any_sshd(bench: Workbench, job: Job) -> None:
    stranger = bench.root / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    result = bench.proxy("connect", "--identity", str(stranger), job.host, _me())
    assert result.returncode == 255
    assert "you are not the job's owner" in result.stderr.decode()
    assert not session_leftovers(bench)


def test_forged_starter_key_in_record_is_detected(bench: Workbench, job: Job) -> None:
    record_file = bench.root / "queue" / f"{job.id}.json"
    record = json.loads(record_file.read_text())
    impostor = bench.root / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    record["starter_key"] = " ".join(impostor.with_suffix(".pub").read_text().split()[:2])
    record_file.write_text(json.dumps(record))
    result = bench.ssh(job.host, "true")
    assert result.returncode == 255
    assert "did not prove it holds the job's published key" in result.stderr.decode()


def test_record_writable_by_others_is_not_trusted(bench: Workbench, job: Job) -> None:
    os.chmod(bench.root / "queue" / f"{job.id}.json", 0o666)
    result = bench.ssh(job.host, "true")
    assert result.returncode == 255
    assert "writable by others" in result.stderr.decode()


def test_oversized_handshake_message_is_refused(bench: Workbench, job: Job) -> None:
    address = json.loads(bench.proxy("jobs", "--json", check=True).stdout)[0]["address"]
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(struct.pack(">I", 10_000_000) + b"{")
        length = struct.unpack(">I", conn.recv(4))[0]
        reply = json.loads(conn.recv(length))
    assert reply["type"] == "refused" and reply["code"] == "protocol"
    assert not session_leftovers(bench)


def test_jobs_lists_the_queue_like_condor_q(bench: Workbench, job: Job) -> None:
    table = bench.proxy("jobs", check=True).stdout.decode().splitlines()
    assert table[0].split() == ["ID", "OWNER", "STATE", "AGE", "CMD"]
    assert table[1].split()[0] == job.id and "running" in table[1] and "sleep 600" in table[1]
    records = json.loads(bench.proxy("jobs", "--json", check=True).stdout)
    assert records[0]["job"] == job.id and records[0]["address"].startswith("127.0.0.1:")
    names = bench.proxy("jobs", "--names", check=True).stdout.decode()
    assert names == f"{job.host}\n"


def _me() -> str:
    return subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
