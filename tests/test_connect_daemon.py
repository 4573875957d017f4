"""The connect daemon: the first ssh starts it, later ones are served by it, and it stays safe.

The include's ProxyCommand is the fast client followed by the full proxy command, which the
client runs when no daemon serves. Tests that must know who did the work put `false` in place
of the full command's interpreter: then only the daemon can make ssh succeed.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import accounts
from conftest import ROOT, Job, Workbench, wait_until

FALSE = "/bin/false"


def daemon_sockets(bench: Workbench) -> list[Path]:
    return sorted((bench.root / "run").glob("cjp-daemon-*.sock"))


def proxy_command(bench: Workbench) -> list[str]:
    include = (bench.root / "config" / "condor-job-proxy" / "ssh_config").read_text()
    line = next(line.strip() for line in include.splitlines()
                if line.strip().startswith("ProxyCommand "))
    return shlex.split(line[len("ProxyCommand "):])


def client_only(bench: Workbench) -> str:
    """The fast client with `false` as the full command's interpreter: only a daemon can serve."""
    words = proxy_command(bench)
    return shlex.join(words[:6] + [FALSE] + words[7:])


def first_connect(bench: Workbench, job: Job) -> Path:
    """ssh once (the full proxy runs and starts a daemon); the daemon's socket."""
    result = bench.ssh(job.host, "true")
    assert result.returncode == 0, result.stderr
    assert wait_until(lambda: daemon_sockets(bench), timeout=20), "no daemon started"
    return daemon_sockets(bench)[0]


def daemon_pid(socket_path: Path) -> int:
    return int(Path(f"{socket_path}.lock").read_text())


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited daemon waits for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_second_ssh_is_served_by_the_connect_daemon(bench: Workbench, job: Job) -> None:
    first_connect(bench, job)
    result = bench.ssh("-o", f"ProxyCommand={client_only(bench)}", job.host, "echo $MARKER; pwd")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == ["only-in-the-job", str(bench.root / "job0")]


def test_scp_through_the_daemon(bench: Workbench, job: Job) -> None:
    first_connect(bench, job)
    (bench.root / "job0" / "result.txt").write_text("computed\n")
    target = bench.root / "copy.txt"
    result = bench.ssh("-o", f"ProxyCommand={client_only(bench)}",
                       f"{job.host}:result.txt", str(target), tool="scp")
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "computed\n"


def test_daemon_gives_the_proxys_one_line_errors(bench: Workbench, job: Job) -> None:
    first_connect(bench, job)
    direct = bench.proxy("connect", "job-99.0")
    served = bench.ssh("-o", f"ProxyCommand={client_only(bench)}", "job-99.0", "true")
    assert served.returncode == 255
    line = direct.stderr.decode().strip()
    assert line.startswith("condor-job-proxy: ") and "99.0" in line
    assert served.stderr.decode().splitlines()[0] == line


def test_daemon_declines_another_environment(bench: Workbench, job: Job) -> None:
    """A connect made with another queue in the environment is the full command's to make."""
    first_connect(bench, job)
    env = {**bench.env, "CONDOR_JOB_PROXY_QUEUE": str(bench.root / "another-queue")}
    declined = subprocess.run(["ssh", "-F", str(bench.ssh_config), "-o", "BatchMode=yes",
                               "-o", f"ProxyCommand={client_only(bench)}", job.host, "true"],
                              env=env, capture_output=True, timeout=60)
    assert declined.returncode == 255   # `false` ran: the daemon did not serve it
    assert bench.ssh("-o", f"ProxyCommand={client_only(bench)}", job.host, "true").returncode == 0


def test_ssh_works_after_the_daemon_is_killed(bench: Workbench, job: Job) -> None:
    socket_path = first_connect(bench, job)
    os.kill(daemon_pid(socket_path), signal.SIGKILL)
    assert socket_path.exists()    # left behind: the next connect must not trip over it
    result = bench.ssh(job.host, "true")
    assert result.returncode == 0, result.stderr
    assert wait_until(lambda: bench.ssh("-o", f"ProxyCommand={client_only(bench)}",
                                        job.host, "true").returncode == 0, timeout=20)


def test_daemon_leaves_when_idle_or_when_config_changes(bench: Workbench, job: Job) -> None:
    settings = bench.root / "config" / "condor-job-proxy" / "config.toml"
    settings.write_text(settings.read_text() + "connect_daemon_idle = 1\n")
    socket_path = first_connect(bench, job)
    assert wait_until(lambda: not socket_path.exists(), timeout=15), "idle daemon stayed"
    socket_path = first_connect(bench, job)
    pid = daemon_pid(socket_path)
    settings.write_text(settings.read_text() + "# edited\n")
    assert wait_until(lambda: not running(pid), timeout=15)


def test_daemon_stop_command(bench: Workbench, job: Job) -> None:
    socket_path = first_connect(bench, job)
    pid = daemon_pid(socket_path)
    assert bench.proxy("daemon", "--stop").returncode == 0
    assert not running(pid) and not socket_path.exists()


def test_connect_daemon_can_be_turned_off(bench: Workbench, job: Job) -> None:
    settings = bench.root / "config" / "condor-job-proxy" / "config.toml"
    settings.write_text(settings.read_text() + "connect_daemon = false\n")
    assert bench.proxy("config", "refresh").returncode == 0
    assert proxy_command(bench)[:3] == [os.path.abspath(sys.executable), "-m", "condor_job_proxy"]
    assert bench.ssh(job.host, "true").returncode == 0
    time.sleep(1)
    assert not daemon_sockets(bench)


def test_another_user_is_refused_by_the_daemon(bench: Workbench, job: Job) -> None:
    """Even with its directory opened up, the daemon serves only the uid it runs as."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as a second account")
    stranger = accounts.account("stranger")
    shared = Path(tempfile.mkdtemp(prefix="cjp-daemon-"))
    try:
        socket_path = shared / "d.sock"
        daemon = subprocess.Popen([sys.executable, "-m", "condor_job_proxy", "daemon",
                                   "--socket", str(socket_path)], env=bench.env)
        assert wait_until(socket_path.exists, timeout=20)
        client = shared / "quick.py"
        shutil.copyfile(ROOT / "proxycmd" / "quick.py", client)
        os.chmod(shared, 0o755)
        os.chmod(socket_path, 0o777)
        argv = ["/usr/bin/python3", "-S", "-E", "-s", str(client), str(socket_path), FALSE,
                job.host, "x"]
        probe = ("import socket, subprocess, sys; a, b = socket.socketpair(); "
                 f"r = subprocess.run({argv!r}, stdout=b, stderr=subprocess.PIPE); "
                 "sys.stderr.buffer.write(r.stderr); sys.exit(r.returncode)")
        result = stranger.run("/usr/bin/python3", "-c", probe)
        assert result.returncode == 255
        assert b"serves only its own user" in result.stderr
    finally:
        daemon.terminate()
        daemon.wait(10)
        shutil.rmtree(shared, ignore_errors=True)
