"""ssh starts the ProxyCommand for every connection: it must start lean and behave like the CLI."""
from __future__ import annotations

import getpass
import socket
import shlex
import subprocess

from conftest import Job, Workbench


def _include_connect_argv(bench: Workbench, job: Job) -> list[str]:
    """The include's full proxy command (what the connect daemon's client runs when no daemon
    serves: a first connect)."""
    include = (bench.root / "config" / "condor-job-proxy" / "ssh_config").read_text()
    line = next(text.strip() for text in include.splitlines()
                if text.strip().startswith("ProxyCommand "))
    argv = shlex.split(line[len("ProxyCommand "):])
    argv = argv[argv.index("-m") - 1:]
    return [job.host if a == "%h" else getpass.getuser() if a == "%r" else a for a in argv]


def test_proxycommand_hands_over_the_socket_without_click_or_platformdirs(bench: Workbench,
                                                                          job: Job) -> None:
    argv = _include_connect_argv(bench, job)
    argv[1:1] = ["-X", "importtime"]
    ours, theirs = socket.socketpair()
    with ours:
        result = subprocess.run(argv, stdin=theirs, stdout=theirs, stderr=subprocess.PIPE,
                                env=bench.env, timeout=60)   # one socket for both, as ssh does
        theirs.close()
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    assert result.returncode == 0, result.stderr
    with socket.socket(fileno=fds[0]) as conn:
        assert conn.recv(64).startswith(b"SSH-2.0-")   # the job's sshd speaks first
    imported = {line.split("|")[-1].strip() for line in result.stderr.decode().splitlines()}
    assert "click" not in imported and "condor_job_proxy.proxycmd.transports.starter" in imported
    assert "platformdirs" not in imported   # the include names our directories


def test_connect_help_is_the_command_line_help(bench: Workbench) -> None:
    result = bench.proxy("connect", "--help")
    assert result.returncode == 0
    assert b"Usage:" in result.stdout and b"--relay" in result.stdout


def test_unknown_connect_option_is_a_usage_error(bench: Workbench) -> None:
    result = bench.proxy("connect", "--no-such-option", "job-1.0")
    assert result.returncode == 2
    assert b"No such option" in result.stderr


def test_queue_option_before_connect_is_honoured(bench: Workbench, job: Job) -> None:
    result = bench.proxy("--queue", str(bench.root / "empty-queue"), "connect", job.host)
    assert result.returncode == 255
    assert f"job {job.id} is not in the queue ({bench.root / 'empty-queue'})".encode() \
        in result.stderr
