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
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import accounts
from condor_job_proxy.proxycmd.daemon import quick
from conftest import ROOT, Job, Workbench, wait_until

FALSE = "/bin/false"


def daemon_sockets(bench: Workbench) -> list[Path]:
    return sorted((bench.root / "run").glob("cjp-d-*.sock"))


def proxy_command(bench: Workbench) -> list[str]:
    include = (bench.root / "config" / "condor-job-proxy" / "ssh_config").read_text()
    line = next(line.strip() for line in include.splitlines()
                if line.strip().startswith("ProxyCommand "))
    return shlex.split(line[len("ProxyCommand "):])


def client_only(bench: Workbench) -> str:
    """The fast client with `false` as the full command's interpreter: only a daemon can serve."""
    words = proxy_command(bench)
    python = words.index("-m") - 1
    return shlex.join(words[:python] + [FALSE] + words[python + 1:])


@pytest.fixture(params=["compiled", "python"])
def client(request, bench: Workbench) -> str:
    """Each test runs with the client built from quick.c and with quick.py."""
    if request.param == "compiled" and not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler here to build quick.c (contrib/install-deps.sh installs gcc)")
    if request.param == "python":
        settings = bench.root / "config" / "condor-job-proxy" / "config.toml"
        settings.write_text(settings.read_text() + "compiled_client = false\n")
        assert bench.proxy("config", "refresh").returncode == 0
    words = proxy_command(bench)
    assert ("quick.py" in words[4]) == (request.param == "python"), words
    return request.param


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


def test_second_ssh_is_served_by_the_connect_daemon(bench: Workbench, job: Job,
                                                     client: str) -> None:
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


def test_daemon_gives_the_proxys_one_line_errors(bench: Workbench, job: Job, client: str) -> None:
    """Relayed (no fd asked for): the fast client says the daemon's line itself. An ssh that
    asks for an fd is handed a refusal server by the full command (test_refusals_reach_ssh)."""
    first_connect(bench, job)
    direct = bench.proxy("connect", "job-99.0")
    served = bench.ssh("-o", f"ProxyCommand={client_only(bench)}", "-o", "ProxyUseFdpass=no",
                       "job-99.0", "true")
    assert served.returncode == 255
    line = direct.stderr.decode().strip()
    assert line.startswith("condor-job-proxy: ") and "99.0" in line
    assert served.stderr.decode().splitlines()[0] == line


def test_each_environment_gets_its_own_daemon(bench: Workbench, job: Job, client: str) -> None:
    """ssh from another environment (here another queue variable; in life another login's
    agent socket or PATH) starts and then uses a daemon of its own."""
    first_connect(bench, job)
    env = {**bench.env, "CONDOR_JOB_PROXY_QUEUE": str(bench.root / "another-queue")}

    def ssh(*options: str) -> int:
        return subprocess.run(["ssh", "-F", str(bench.ssh_config), "-o", "BatchMode=yes",
                               *options, job.host, "true"], env=env, capture_output=True,
                              timeout=60).returncode
    assert ssh("-o", f"ProxyCommand={client_only(bench)}") == 255   # no daemon of its own yet
    assert ssh() == 0
    assert wait_until(lambda: len(daemon_sockets(bench)) == 2, timeout=20)
    assert ssh("-o", f"ProxyCommand={client_only(bench)}") == 0


def ask_daemon(socket_path: Path, command: list[str], context: list[bytes]) -> bytes:
    """Send the daemon a request as the fast client does; its answer's first bytes."""
    words = [b"1", str(len(command)).encode(), *map(os.fsencode, command), *context]
    with socket.socket(socket.AF_UNIX) as channel:
        channel.settimeout(20)
        channel.connect(str(socket_path))
        channel.sendall(b"\0".join(words))
        channel.shutdown(socket.SHUT_WR)
        return channel.recv(100)


def full_command(bench: Workbench, job: Job) -> list[str]:
    command = proxy_command(bench)
    return command[command.index("-m") - 1:-2] + [job.host, "x"]


def test_daemon_declines_a_request_from_another_environment(bench: Workbench, job: Job) -> None:
    """Whatever socket a request reaches, a daemon serves only its own environment."""
    socket_path = first_connect(bench, job)
    assert ask_daemon(socket_path, full_command(bench, job), [b"CONDOR_X=other"]) == b"F"


def test_a_key_with_a_passphrase_is_left_to_the_full_command(bench: Workbench, job: Job) -> None:
    """ssh-keygen asks for a passphrase on the terminal, which only the full command has."""
    socket_path = first_connect(bench, job)
    locked = bench.root / "locked_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret words", "-f", str(locked)],
                   check=True)
    command = full_command(bench, job)
    command[command.index("--identity") + 1] = str(locked)
    context = quick.context({os.fsencode(k): os.fsencode(v) for k, v in bench.env.items()})
    assert ask_daemon(socket_path, full_command(bench, job), context)[:1] in (b"K", b"E")
    assert ask_daemon(socket_path, command, context) == b"F"


def test_ssh_works_after_the_daemon_is_killed(bench: Workbench, job: Job, client: str) -> None:
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
    assert not socket_path.exists()   # gone before the daemon lets go of its lock
    assert wait_until(lambda: not running(pid), timeout=5)   # the kernel ends it after that


def test_connect_daemon_can_be_turned_off(bench: Workbench, job: Job) -> None:
    settings = bench.root / "config" / "condor-job-proxy" / "config.toml"
    settings.write_text(settings.read_text() + "connect_daemon = false\n")
    assert bench.proxy("config", "refresh").returncode == 0
    assert proxy_command(bench)[:3] == [os.path.abspath(sys.executable), "-m", "condor_job_proxy"]
    assert bench.ssh(job.host, "true").returncode == 0
    time.sleep(1)
    assert not daemon_sockets(bench)


@pytest.mark.parametrize("client", ["quick.py", "quick.c"])
def test_another_users_daemon_refuses_them_and_their_client_never_asks_it(
        bench: Workbench, job: Job, client: str) -> None:
    """Even with its directory opened up, the daemon serves only the uid it runs as; and a
    client that finds another user's daemon at its socket (someone took a directory in /tmp)
    runs the full command itself rather than hand that daemon its environment."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as a second account")
    stranger = accounts.account("stranger")
    shared = Path(tempfile.mkdtemp(prefix="cjp-daemon-"))
    daemon = None
    try:
        daemon = ROOT / "condor_job_proxy" / "proxycmd" / "daemon"
        shutil.copyfile(daemon / "quick.py", shared / "quick.py")
        if client == "quick.c":
            subprocess.run(["cc", "-O2", "-o", str(shared / "quick"), str(daemon / "quick.c")],
                           check=True)
        os.chmod(shared, 0o755)
        base = str(shared / "d")
        where = stranger.run("/usr/bin/python3", "-c", f"import os, sys; sys.path[0] = {str(shared)!r}; "
                             f"import quick; print(quick.socket_path({base!r}, "
                             "quick.context(os.environb)))")
        socket_path = Path(where.stdout.decode().strip())
        os.chmod(shared, 0o700)        # as a daemon's directory must be when it starts
        daemon = subprocess.Popen([sys.executable, "-m", "condor_job_proxy", "daemon",
                                   "--socket", str(socket_path)], env=bench.env)
        assert wait_until(socket_path.exists, timeout=20)
        os.chmod(shared, 0o755)
        os.chmod(socket_path, 0o777)
        command = [FALSE, "-m", "condor_job_proxy", "connect", job.host, "x"]
        ask = (f"import os, sys, _socket; sys.path[0] = {str(shared)!r}; import quick; "
               "c = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM); "
               f"c.connect({str(socket_path)!r}); "
               f"answer, _ = quick._ask(c, {command!r}, quick.context(os.environb)); "
               "sys.stdout.buffer.write(answer + quick._rest(c, 65536))")
        refused = stranger.run("/usr/bin/python3", "-c", ask)
        assert refused.stdout.startswith(b"E255\n") and b"serves only its own user" in refused.stdout
        program = ([str(shared / "quick")] if client == "quick.c" else
                   ["/usr/bin/python3", "-S", "-E", "-s", str(shared / "quick.py")])
        argv = [*program, base, *command]
        probe = ("import socket, subprocess, sys; a, b = socket.socketpair(); "
                 f"r = subprocess.run({argv!r}, stdout=b, stderr=subprocess.PIPE); "
                 "sys.stderr.buffer.write(r.stderr); sys.exit(r.returncode)")
        result = stranger.run("/usr/bin/python3", "-c", probe)
        assert (result.returncode, result.stderr) == (1, b""), "not the full command (false)"
    finally:
        if daemon:
            daemon.terminate()
            daemon.wait(10)
        shutil.rmtree(shared, ignore_errors=True)


def test_both_clients_choose_the_same_daemon_socket(bench: Workbench) -> None:
    """The compiled client and quick.py name the daemon's socket alike, whatever the
    environment holds (here: non-ASCII, a control character, an empty value)."""
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler here to build quick.c (contrib/install-deps.sh installs gcc)")
    compiled = proxy_command(bench)[0]
    assert "cjp-quick-" in compiled
    python_client = [sys.executable, "-S", "-E", "-s",
                     str(ROOT / "condor_job_proxy" / "proxycmd" / "daemon" / "quick.py")]
    report = [sys.executable, "-c",
              "import os; print(os.environ['CONDOR_JOB_PROXY_START_DAEMON'], flush=True)"]
    env = {**bench.env, "CONDOR_NOTE": "café\x01", "_CONDOR_EMPTY": "", "PYTHONX": "1" * 300}
    chosen = []
    for client in ([compiled], python_client):
        ours, theirs = socket.socketpair()
        with ours, theirs:
            subprocess.run([*client, str(bench.root / "nowhere" / "d"), *report], env=env,
                           stdout=theirs, timeout=30, check=True)
            chosen.append(ours.recv(1000).decode().strip())
    assert chosen[0] == chosen[1] and chosen[0].startswith(str(bench.root / "nowhere" / "d-"))


def test_errors_reach_the_terminal_when_ssh_hides_the_proxys_stderr(bench: Workbench, job: Job,
                                                                    client: str) -> None:
    """With ControlPersist on (the default include), ssh puts a ProxyCommand's stderr on
    /dev/null: the one-line error goes to the terminal, from the daemon's client and from
    the full command alike."""
    runtime = Path(tempfile.mkdtemp(prefix="cjp-"))     # short enough for control sockets
    try:
        bench.env["XDG_RUNTIME_DIR"] = str(runtime)
        settings = bench.root / "config" / "condor-job-proxy" / "config.toml"
        settings.write_text(settings.read_text().replace("control_master = false", ""))
        assert bench.proxy("config", "refresh").returncode == 0
        include = (bench.root / "config" / "condor-job-proxy" / "ssh_config").read_text()
        assert "ControlPersist 60s" in include

        def on_a_terminal(host: str) -> str:
            ssh = shlex.join(["ssh", "-F", str(bench.ssh_config), "-o", "BatchMode=yes", host,
                              "true"])
            return subprocess.run(["script", "-qec", ssh, "/dev/null"], env=bench.env,
                                  capture_output=True, timeout=60).stdout.decode()
        line = "condor-job-proxy: job 99.0 is not in the queue"
        assert line in on_a_terminal("job-99.0")             # the full command: no daemon yet
        on_a_terminal(job.host)                               # starts the daemon
        assert wait_until(lambda: list(runtime.glob("cjp-d-*.sock")), timeout=20)
        assert line in on_a_terminal("job-99.0")             # the daemon's answer
        bench.ssh("-O", "exit", job.host)
        bench.proxy("daemon", "--stop")
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def test_fast_client_builds_without_a_static_c_library(bench: Workbench, job: Job) -> None:
    """The client is linked statically where the C library allows; where it does not (here a
    compiler that refuses -static), refresh builds it dynamically and ssh works the same."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        pytest.skip("no C compiler here to build quick.c (contrib/install-deps.sh installs gcc)")
    built = Path(proxy_command(bench)[0])
    assert b"ld-linux" not in built.read_bytes()[:4096], "linked dynamically, with libc.a here"
    no_static = bench.root / "cc-without-libc.a"
    no_static.write_text("#!/bin/sh\nfor a; do [ \"$a\" = -static ] && exit 1; done\n"
                         f"exec {compiler} \"$@\"\n")
    no_static.chmod(0o755)
    built.unlink()
    refresh = subprocess.run([sys.executable, "-m", "condor_job_proxy", "config", "refresh"],
                             env={**bench.env, "CC": str(no_static)}, capture_output=True)
    assert refresh.returncode == 0, refresh.stderr
    assert Path(proxy_command(bench)[0]) == built
    assert b"ld-linux" in built.read_bytes()[:4096]
    result = bench.ssh(job.host, "echo $MARKER")
    assert (result.returncode, result.stdout) == (0, b"only-in-the-job\n"), result.stderr
