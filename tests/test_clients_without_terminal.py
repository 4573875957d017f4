"""Clients away from a terminal, as VS Code, Ansible, CI jobs and scripts run them.

A script piped into a job's shell gets back only what its commands print, as from plain sshd;
the welcome is for terminals. A library that spawns the ProxyCommand itself (Node's
child_process.spawn under ssh2, as VSCodium's open-remote-ssh does; paramiko) gets the session
relayed on its stdin/stdout: only OpenSSH with ProxyUseFdpass, which gives the proxy one socket
as both, is handed the connection as a file descriptor. Real clients: OpenSSH, paramiko, and
Node with ssh2 from npm (contrib/install-deps.sh puts it in a cache directory).
"""
from __future__ import annotations

import getpass
import json
import os
import shlex
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import ROOT, Job, Workbench, can_connect, free_port, wait_until
from test_connect_daemon import (client, client_only, daemon_sockets, first_connect,  # noqa: F401
                                 proxy_command)
from test_generated_config import shared  # noqa: F401

# Commands a script pipes into the job's shell, and all that may come back on stdout.
SCRIPT = b'echo "$MARKER"\npwd\n[ -n "$_CONDOR_JOB_PIDS" ] && echo has-pids\n'
NOISE = ("Welcome to job", "condor job is running", "job control", "terminal process group")
# Where contrib/install-deps.sh installs ssh2 (npm's own layout: DIR/node_modules/ssh2).
NODE_DIR = Path(os.environ.get("CJP_TEST_NODE_DIR") or
                Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                / "condor-job-proxy-tests" / "node")


def expected(bench: Workbench) -> bytes:
    return f"only-in-the-job\n{bench.root / 'job0'}\nhas-pids\n".encode()


def quiet(stderr: bytes) -> bool:
    return not any(noise in stderr.decode(errors="replace") for noise in NOISE)


def expand(words: list[str], job: Job) -> str:
    """A ProxyCommand's words with ssh's %h and %r filled in, as one shell command line."""
    return shlex.join(w.replace("%h", job.host).replace("%r", getpass.getuser()) for w in words)


def full_command(bench: Workbench, job: Job) -> str:
    """The include's full proxy command alone (what runs when no daemon serves)."""
    words = proxy_command(bench)
    return expand(words[words.index("-m") - 1:], job)


def state_file(bench: Workbench, kind: str, job: Job) -> Path:
    return bench.root / "state" / "condor-job-proxy" / kind / job.host


def keys(bench: Workbench, job: Job) -> list[str]:
    """The include's IdentityFile list: the link the proxy points at this session's key, then
    the job-access key."""
    return [str(state_file(bench, "identities", job)),
            str(bench.root / "config" / "condor-job-proxy" / "id_ed25519")]


# ------------------------------------------------------------------ commands piped to a shell

@pytest.mark.parametrize("flags", [["-T"], []], ids=["ssh-T-piped", "ssh-redirected"])
def test_script_piped_into_the_jobs_shell_gets_back_only_its_output(
        shared: Workbench, job: Job, flags: list[str]) -> None:  # noqa: F811
    """`printf 'cmd\\n' | ssh -T job-1.0` and `ssh job-1.0 < script.sh`, the second time over
    the connection the first one left open."""
    for _ in range(2):
        result = shared.ssh(*flags, job.host, input=SCRIPT)
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected(shared)
        assert quiet(result.stderr), result.stderr
    check = shared.ssh("-O", "check", job.host)
    assert check.returncode == 0 and "Master running" in check.stderr.decode()


def test_forward_in_the_background_over_a_shared_connection_prints_nothing(
        shared: Workbench, job: Job) -> None:  # noqa: F811
    """`ssh -N -f -L ...` as a script starts a tunnel next to an open connection."""
    assert shared.ssh(job.host, "true").returncode == 0
    with socket.create_server(("127.0.0.1", 0)) as server:
        local = free_port()
        forward = f"127.0.0.1:{local}:127.0.0.1:{server.getsockname()[1]}"
        result = shared.ssh("-N", "-f", "-L", forward, job.host, input=b"")
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
        try:
            assert wait_until(lambda: can_connect(local), timeout=10)
        finally:
            shared.ssh("-O", "cancel", "-L", forward, job.host)


def test_login_at_a_terminal_still_greets_and_runs_in_the_job(shared: Workbench,
                                                              job: Job) -> None:  # noqa: F811
    ssh = shlex.join(["ssh", "-F", str(shared.ssh_config), "-o", "BatchMode=yes", job.host])
    result = subprocess.run(["script", "-qec", ssh, "/dev/null"], env=shared.env, timeout=60,
                            input=b'echo "[$MARKER]"; pwd; exit 3\n', capture_output=True)
    out = result.stdout.decode(errors="replace").replace("\r", "")
    assert result.returncode == 3, out
    assert f"Welcome to job {job.id} on " in out and "Your condor job is running with pid(s)" in out
    assert "[only-in-the-job]" in out and f"\n{shared.root / 'job0'}\n" in out


def test_paramiko_shell_without_a_terminal_gets_back_only_the_scripts_output(
        bench: Workbench, job: Job) -> None:
    """Fabric's and asyncssh's way: a shell channel, no pty, commands on its stdin; paramiko's
    own ProxyCommand (pipes) carries it."""
    import paramiko
    environment = [f"{name}={value}" for name, value in bench.env.items()]
    proxy = paramiko.ProxyCommand(f"env -i {shlex.join(environment)} {full_command(bench, job)}")
    try:
        out, err, status = ask_with_paramiko(proxy, bench, job, shell_input=SCRIPT)
    finally:
        proxy.close()
    assert (status, out) == (0, expected(bench)), err
    assert quiet(err), err


# ------------------------------------------------------------- a ProxyCommand a library spawns

class SpawnedProxy:
    """The ProxyCommand spawned as Node's child_process.spawn does it (libuv): stdin and stdout
    each a socketpair of its own. Enough of a socket for paramiko's Transport."""

    def __init__(self, command: str, env: dict[str, str]) -> None:
        self.to_proxy, theirs_in = socket.socketpair()
        self.from_proxy, theirs_out = socket.socketpair()
        with theirs_in, theirs_out:
            self.process = subprocess.Popen(["/bin/sh", "-c", command], stdin=theirs_in,
                                            stdout=theirs_out, env=env)

    def send(self, data: bytes) -> int:
        return self.to_proxy.send(data)

    def recv(self, size: int) -> bytes:
        return self.from_proxy.recv(size)

    def settimeout(self, seconds: float | None) -> None:
        self.from_proxy.settimeout(seconds)

    @property
    def _closed(self) -> bool:     # paramiko looks at this when it stops
        return self.from_proxy.fileno() < 0

    def close(self) -> None:
        self.to_proxy.close()
        self.from_proxy.close()
        self.process.wait(10)


def ask_with_paramiko(sock, bench: Workbench, job: Job, command: str | None = None,
                      shell_input: bytes | None = None) -> tuple[bytes, bytes, int]:
    """Log in over ``sock`` with paramiko, checking the host key the proxy pinned; run
    ``command``, or a shell without a terminal fed ``shell_input``: (stdout, stderr, status)."""
    import paramiko
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=30)
        shown = transport.get_remote_server_key()
        pinned = state_file(bench, "known_hosts", job).read_text()
        assert f" {shown.get_name()} {shown.get_base64()}" in pinned
        key = paramiko.Ed25519Key(filename=str(state_file(bench, "identities", job)))
        transport.auth_publickey(getpass.getuser(), key)
        channel = transport.open_session(timeout=30)
        channel.settimeout(30)
        if shell_input is None:
            channel.exec_command(command)
        else:
            channel.invoke_shell()
            channel.sendall(shell_input)
            channel.shutdown_write()
        errors: list[bytes] = []
        reader = threading.Thread(target=lambda: errors.append(channel.makefile_stderr().read()))
        reader.start()
        out = channel.makefile().read()
        reader.join(30)
        return out, b"".join(errors), channel.recv_exit_status()
    finally:
        transport.close()


def test_library_spawned_full_proxy_command_relays(bench: Workbench, job: Job) -> None:
    """No daemon yet: the full command itself serves a caller that cannot take an fd."""
    proxy = SpawnedProxy(full_command(bench, job), bench.env)
    try:
        out, err, status = ask_with_paramiko(proxy, bench, job, command='echo "$MARKER"; pwd')
    finally:
        proxy.close()
    assert (status, out) == (0, f"only-in-the-job\n{bench.root / 'job0'}\n".encode()), err
    assert proxy.process.returncode == 0


def test_library_spawned_first_connect_starts_the_daemon_while_its_session_is_open(
        bench: Workbench, job: Job) -> None:
    """A relayed session lasts as long as the client's: the next connect (VS Code opens
    several) gets the daemon at once, not after the first session has ended."""
    proxy = SpawnedProxy(expand(proxy_command(bench), job), bench.env)
    answers: list = []
    session = threading.Thread(target=lambda: answers.append(ask_with_paramiko(
        proxy, bench, job, command="sleep 8; echo $MARKER")))
    session.start()
    try:
        started = wait_until(lambda: daemon_sockets(bench), timeout=6)
        still_open = session.is_alive()
    finally:
        session.join(30)
        proxy.close()
    assert answers and answers[0][::2] == (b"only-in-the-job\n", 0), answers
    assert started and still_open, "the daemon started only after the relayed session ended"


def test_library_spawned_fast_client_relays_what_the_daemon_hands_it(
        bench: Workbench, job: Job, client: str) -> None:  # noqa: F811
    """With `false` as the full command, only the daemon and the fast client can serve."""
    first_connect(bench, job)
    proxy = SpawnedProxy(expand(shlex.split(client_only(bench)), job), bench.env)
    try:
        out, err, status = ask_with_paramiko(proxy, bench, job, command="echo $MARKER")
    finally:
        proxy.close()
    assert (status, out) == (0, b"only-in-the-job\n"), err


def test_openssh_without_fd_passing_is_relayed_by_the_fast_client(
        bench: Workbench, job: Job, client: str) -> None:  # noqa: F811
    """ssh on pipes: 4 MB through `cat` in the job, both ways at once, and the end of input."""
    first_connect(bench, job)
    payload = os.urandom(4_000_000)
    result = bench.ssh("-o", "ProxyUseFdpass=no", "-o", f"ProxyCommand={client_only(bench)}",
                       job.host, "cat; echo $MARKER", input=payload)
    assert result.returncode == 0, result.stderr
    assert result.stdout == payload + b"only-in-the-job\n"


def node_with_ssh2() -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("no node here: contrib/install-deps.sh '[test]' installs nodejs and ssh2")
    if not (NODE_DIR / "node_modules" / "ssh2").is_dir():
        pytest.skip(f"no ssh2 in {NODE_DIR}: run contrib/install-deps.sh '[test]'")
    return node


@pytest.mark.parametrize("shell", [False, True], ids=["exec", "shell-without-pty"])
def test_node_ssh2_spawning_the_proxy_command_reaches_the_job(bench: Workbench, job: Job,
                                                              shell: bool) -> None:
    """VSCodium's open-remote-ssh: the include's ProxyCommand under child_process.spawn, then
    ssh2. The first connect is the full command's, the second the connect daemon's."""
    node = node_with_ssh2()
    words = proxy_command(bench)
    options = {"proxyCommand": expand(words, job), "user": getpass.getuser(),
               "keys": keys(bench, job), "knownHosts": str(state_file(bench, "known_hosts", job)),
               "shell": shell, "input": SCRIPT.decode(), "command": SCRIPT.decode()}
    env = {**bench.env, "NODE_PATH": str(NODE_DIR / "node_modules")}
    for attempt in ("full command", "daemon"):
        result = subprocess.run([node, str(ROOT / "tests" / "data" / "ssh2_client.js"),
                                 json.dumps(options)], env=env, capture_output=True, timeout=90)
        assert result.returncode == 0, (attempt, result.stderr)
        answer = json.loads(result.stdout)
        assert (answer["code"], answer["stdout"]) == (0, expected(bench).decode()), answer
        assert quiet(answer["stderr"].encode()), answer
        if attempt == "full command":
            runtime = Path(bench.env["XDG_RUNTIME_DIR"])
            assert wait_until(lambda: list(runtime.glob("cjp-d-*.sock")), timeout=20)
