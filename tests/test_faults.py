"""Faults: a client killed mid-handshake, sshd killed mid-session, a full or read-only TMPDIR,
a starter killed and started again, and 200 sessions with random faults. Afterwards the
machine is as it was: no session directory, no process, no open port left over."""
from __future__ import annotations

import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import Job, Workbench, can_connect, session_leftovers, sshd_children, wait_until
from handshake import (address, descendants, frame, job_record, listening_ports, open_channel,
                       open_fds, public_line, running_command, send_hello, user_key)
from jobstart import end_job
from condor_job_proxy.common import sshsig

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small TMPDIR needs root")




class Machine:
    """What a job's starter has on the machine: processes, session directories, ports, fds."""

    def __init__(self, bench: Workbench, job: Job) -> None:
        self.bench, self.job = bench, job
        self.before = self.now()

    def now(self) -> tuple:
        pid = self.job.process.pid
        return (sorted(descendants(pid)), session_leftovers(self.bench),
                listening_ports({pid} | descendants(pid)), open_fds(pid))

    def is_as_it_was(self, timeout: float = 15) -> bool:
        return wait_until(lambda: self.now() == self.before, timeout=timeout)


def rst_close(sock: socket.socket) -> None:
    """Close as a killed process's kernel may: a reset, no orderly goodbye."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def authenticated(bench: Workbench, job: Job) -> socket.socket:
    """A connection that has passed the handshake: an sshd now listens on it."""
    record = job_record(bench.root / "queue", job.id)
    channel = open_channel(address(record))
    send_hello(channel, job.id, record["owner"], public_line(user_key(bench.root)))
    assert channel.receive("challenge")["type"] == "challenge"
    channel.send("auth", sig=sshsig.sign(str(user_key(bench.root)),
                                         channel.transcript.signed_data("client")))
    assert channel.receive("accept")["type"] == "accept"
    channel.receive("sig")
    return channel.sock.sock


def test_client_killed_mid_handshake_leaves_nothing(bench: Workbench, job: Job) -> None:
    machine = Machine(bench, job)
    record = job_record(bench.root / "queue", job.id)
    hello = frame({"type": "hello", "proto": 1, "job": job.id, "user": record["owner"],
                   "key": public_line(user_key(bench.root)), "nonce": "ab" * 32})
    for cut in (1, 4, len(hello) // 2, len(hello)):       # inside and after the hello
        sock = socket.create_connection(address(record))
        sock.sendall(hello[:cut])
        rst_close(sock)
    rst_close(authenticated(bench, job))                    # sshd already started on it
    for delay in (0.0, 0.05, 0.1, 0.2, 0.4):                # the real proxy, killed -9
        proxy = subprocess.Popen([sys.executable, "-m", "condor_job_proxy", "connect", job.host],
                                 env=bench.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proxy.kill()
        proxy.communicate()
    assert machine.is_as_it_was(), (machine.before, machine.now())
    assert bench.ssh(job.host, "true").returncode == 0




def test_sshd_killed_mid_session_leaves_nothing(bench: Workbench, job: Job) -> None:
    machine = Machine(bench, job)
    ssh = subprocess.Popen(["ssh", "-F", str(bench.ssh_config), "-o", "BatchMode=yes", job.host,
                            "sleep 61 & sleep 62; wait"], env=bench.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert wait_until(lambda: running_command(job.process.pid, b"sleep\x0062\x00"), timeout=20)
    for pid in sshd_children(job.process.pid):
        os.kill(pid, signal.SIGKILL)
    assert ssh.wait(10) == 255
    assert machine.is_as_it_was(), (machine.before, machine.now())
    assert bench.ssh(job.host, "true").returncode == 0


@contextmanager
def small_tmpdir(where: Path, size: str = "2m"):
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=1777", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    return filler


@as_root
def test_full_tmpdir_is_a_clear_error_and_leaves_nothing(bench: Workbench) -> None:
    with small_tmpdir(bench.root / "small") as tmpdir:
        job = bench.start_job("sleep", "600", env={"TMPDIR": str(tmpdir)})
        filler = fill(tmpdir)
        result = bench.ssh(job.host, "true")
        assert result.returncode == 255
        line = result.stderr.decode().splitlines()[0]
        assert line == (f"condor-job-proxy: job {job.id}: cannot open a session: no space left "
                        f"in the job's TMPDIR ({tmpdir})"), line
        assert not list(tmpdir.glob("cjp-starter-*/cjp-session-*"))
        assert not sshd_children(job.process.pid)
        time.sleep(2.5)   # an accounting tick, which writes in TMPDIR, fails: the job goes on
        assert job.process.poll() is None, job.stderr
        filler.unlink()
        assert bench.ssh(job.host, "true").returncode == 0
        end_job(job.process)


@as_root
def test_read_only_tmpdir_is_a_clear_error(bench: Workbench) -> None:
    with small_tmpdir(bench.root / "small") as tmpdir:
        job = bench.start_job("sleep", "600", env={"TMPDIR": str(tmpdir)})
        subprocess.run(["mount", "-o", "remount,ro", str(tmpdir)], check=True)
        result = bench.ssh(job.host, "true")
        assert result.returncode == 255
        line = result.stderr.decode().splitlines()[0]
        assert line == (f"condor-job-proxy: job {job.id}: cannot open a session: the job's "
                        f"TMPDIR ({tmpdir}) is not writable"), line
        subprocess.run(["mount", "-o", "remount,rw", str(tmpdir)], check=True)
        assert bench.ssh(job.host, "true").returncode == 0
        end_job(job.process)


def test_starter_killed_and_started_again_leaves_nothing(bench: Workbench, job: Job) -> None:
    """A starter killed -9 with a session open takes its job and session with it; the next
    starter sharing the TMPDIR sweeps up what it could not."""
    ssh = subprocess.Popen(["ssh", "-F", str(bench.ssh_config), "-o", "BatchMode=yes", job.host,
                            "sleep 63"], env=bench.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    assert wait_until(lambda: running_command(job.process.pid, b"sleep\x0063\x00"), timeout=20)
    old_tree = descendants(job.process.pid)
    (_, port), = listening_ports({job.process.pid})
    job.process.kill()
    job.process.wait()
    ssh.wait(10)
    again = bench.start_job("sleep", "600")
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in old_tree))
    assert session_leftovers(bench) == []
    assert len(list((bench.root / "tmp").glob("cjp-starter-*"))) == 1
    assert not can_connect(port)
    assert bench.ssh(again.host, "true").returncode == 0


def test_sessions_left_by_an_older_starter_are_swept(bench: Workbench) -> None:
    """Starters before 2026-12 kept each session's directory beside their own, with the pids of
    the starter and of its sshd: a new starter sharing the TMPDIR removes those of dead ones,
    and leaves those of a live starter alone."""
    tmp = bench.root / "tmp"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp / "cjp-session-olddead"
    stale.mkdir(mode=0o700)
    (stale / "starter.pid").write_text(f"{dead.pid}\n")
    (stale / "sshd.pid").write_text(f"{dead.pid}\n")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "starter"])
    live = tmp / "cjp-session-oldalive"
    live.mkdir(mode=0o700)
    (live / "starter.pid").write_text(f"{alive.pid}\n")
    try:
        job = bench.start_job("sleep", "600")
        assert f"removed {stale.name}" in job.stderr
        assert not stale.exists() and live.exists()
    finally:
        alive.kill()
        alive.wait()


def random_fault(rng: random.Random, bench: Workbench, job: Job) -> str:
    """One session that goes wrong in a random way; its name, for the failure message."""
    record = job_record(bench.root / "queue", job.id)
    fault = rng.choice(["reset in hello", "hang up after challenge", "reset after handshake",
                        "garbage after handshake", "banner then hang up", "hang up at once",
                        "bad signature"])
    if fault == "reset in hello":
        sock = socket.create_connection(address(record))
        sock.sendall(struct.pack(">I", 300) + b'{"type":"hello"')
        rst_close(sock)
    elif fault == "hang up after challenge":
        channel = open_channel(address(record))
        send_hello(channel, job.id, record["owner"], public_line(user_key(bench.root)))
        channel.receive("challenge")
        channel.sock.close()
    elif fault == "bad signature":
        channel = open_channel(address(record))
        send_hello(channel, job.id, record["owner"], public_line(user_key(bench.root)))
        channel.receive("challenge")
        channel.send("auth", sig="x")
        channel.receive("accept")
        channel.sock.close()
    else:
        sock = authenticated(bench, job)
        if fault == "reset after handshake":
            rst_close(sock)
            return fault
        if fault == "garbage after handshake":
            sock.sendall(rng.randbytes(rng.randrange(1, 3000)))
        elif fault == "banner then hang up":
            sock.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            sock.settimeout(5)
            sock.recv(100)
        sock.close()
    return fault


def test_200_sessions_with_random_faults_leave_the_machine_as_it_was(bench: Workbench,
                                                                    job: Job) -> None:
    assert bench.ssh(job.host, "true").returncode == 0     # steady state: a session has run
    assert wait_until(lambda: not sshd_children(job.process.pid))
    machine = Machine(bench, job)
    rng = random.Random(200)
    faults = []
    for number in range(200):
        if number % 40 == 39:       # now and then a real ssh whose sshd is killed mid-session
            ssh = subprocess.Popen(["ssh", "-F", str(bench.ssh_config), "-o", "BatchMode=yes",
                                    job.host, "sleep 64"], env=bench.env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert wait_until(lambda: running_command(job.process.pid, b"sleep\x0064\x00"), timeout=20)
            for pid in sshd_children(job.process.pid):
                os.kill(pid, signal.SIGKILL)
            ssh.wait(10)
            faults.append("sshd killed")
        else:
            faults.append(random_fault(rng, bench, job))
    assert machine.is_as_it_was(timeout=30), (sorted(set(faults)), machine.before, machine.now())
    result = bench.ssh(job.host, "echo $MARKER")
    assert result.returncode == 0 and result.stdout == b"only-in-the-job\n", result.stderr
