"""A job that runs in a container of its own is entered: sessions see its files, pid 1 and
localhost. The container is a real one: `unshare` with user, mount, pid and net namespaces
and a small root filesystem (busybox) made here, run by an unprivileged account."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from condor_job_proxy.starter import processes

from accounts import Account, account, ensure_venv
from conftest import free_port, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creating test accounts needs root")

BUSYBOX = "/bin/busybox"
APPLETS = ("cat", "ls", "sleep", "nc", "ip", "echo", "id", "mount")
# Run by the job, in its new namespaces (as uid 0 there): give the container /dev, /proc and
# a loopback, start a server that listens only there, then become the container's process.
JOB_SCRIPT = """\
set -e
root=$1 port=$2
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
chroot "$root" /bin/busybox ip link set lo up
chroot "$root" /bin/busybox nc -ll -p "$port" -e /bin/busybox echo secret-inside &
exec chroot "$root" /bin/busybox env MARKER=in-the-job /bin/busybox sh -c \
    'cd /work && exec /bin/busybox sleep 900'
"""


def _rootfs(where: Path, shell: bool) -> Path:
    """A root filesystem of busybox's applets, with or without a shell."""
    root = where / "rootfs"
    for name in ("bin", "dev", "proc", "work", "tmp"):
        (root / name).mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in (*APPLETS, *(("sh",) if shell else ())):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "marker-inside").write_text("only-in-the-container\n")
    return root


def _container_job(user: Account, shell: bool, dev: bool = True):
    if not Path(BUSYBOX).exists():
        pytest.fail("missing /bin/busybox: apt-get install busybox-static")
    where = Path(tempfile.mkdtemp(prefix="cjp-container-"))
    os.chmod(where, 0o755)
    root = _rootfs(where, shell)
    (where / "job.sh").write_text(JOB_SCRIPT if dev else JOB_SCRIPT.replace(
        'mount --rbind /dev "$root/dev"', ":"))
    (where / "tmp").mkdir()
    subprocess.run(["chown", "-R", user.name, str(where)], check=True)
    port = free_port()
    err_file = where / "starter.err"
    with open(err_file, "wb") as err:
        starter = user.popen(
            "condor-job-starter", "run", "--", "unshare", "--user", "--map-root-user", "--mount",
            "--pid", "--net", "--fork", "/bin/sh", str(where / "job.sh"), str(root), str(port),
            env={"TMPDIR": str(where / "tmp")}, cwd=where,
            stderr=err, stdin=subprocess.DEVNULL)
    assert wait_until(lambda: "running: ssh" in err_file.read_text(), timeout=20), err_file.read_text()
    host = err_file.read_text().split("running: ssh ")[1].split()[0]
    return {"user": user, "host": host, "root": root, "port": port, "starter": starter,
            "where": where, "err": err_file, "runtime": "unshare"}


PODMAN = ("podman", "--runtime", "runc", "--cgroup-manager=cgroupfs")   # see containers-here.md


def _podman_job(user: Account):
    """The same root filesystem as an image, run by rootless Podman (a registry is out of
    reach: the image is imported from a tarball)."""
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (apt-get install podman runc)")
    where = Path(tempfile.mkdtemp(prefix="cjp-podman-"))
    os.chmod(where, 0o755)
    root = _rootfs(where, shell=True)
    subprocess.run(["tar", "-C", str(root), "-cf", str(where / "image.tar"), "."], check=True)
    (where / "tmp").mkdir()
    subprocess.run(["chown", "-R", user.name, str(where)], check=True)
    imported = user.run(*PODMAN, "import", str(where / "image.tar"), "localhost/cjp-test:1",
                        cwd=where, timeout=120)
    if imported.returncode != 0:
        pytest.skip(f"podman cannot import an image here: {imported.stderr.decode().strip()}")
    port = free_port()
    err_file = where / "starter.err"
    with open(err_file, "wb") as err:
        starter = user.popen(
            "condor-job-starter", "run", "--", *PODMAN, "run", "--rm", "--ulimit",
            "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--network", "none",
            "-e", "MARKER=in-the-job", "localhost/cjp-test:1", "/bin/sh", "-c",
            f"ip link set lo up; nc -ll -p {port} -e /bin/busybox echo secret-inside & "
            "cd /work && exec sleep 900",
            env={"TMPDIR": str(where / "tmp")}, cwd=where, stderr=err, stdin=subprocess.DEVNULL)
    assert wait_until(lambda: "running: ssh" in err_file.read_text(), timeout=30), err_file.read_text()
    host = err_file.read_text().split("running: ssh ")[1].split()[0]
    job = {"user": user, "host": host, "root": None, "port": port, "starter": starter,
           "where": where, "err": err_file, "runtime": "podman"}
    if not wait_until(lambda: _job_process(job), timeout=30):
        _end(job)
        pytest.fail(f"the podman container did not start: {err_file.read_text()}")
    return job


def _end(job) -> None:
    """End the starter, then whatever of the job outlived it (a pid namespace's first process
    can: issue 27 item 3, not this test's subject)."""
    everything = processes.snapshot()
    job_processes = [everything[pid] for pid in processes.descendants(job["starter"].pid, everything)]
    job["starter"].terminate()
    try:
        job["starter"].wait(15)
    except subprocess.TimeoutExpired:
        job["starter"].kill()
    for info in job_processes:
        if (processes.read(info.pid) or info).start_ticks == info.start_ticks:
            try:
                os.kill(info.pid, signal.SIGKILL)
            except OSError:
                pass
    shutil.rmtree(job["where"], ignore_errors=True)


@pytest.fixture(scope="module")
def user():
    ensure_venv()
    person = account("container")
    person.run("sh", "-c", "mkdir -p ~/.config/condor-job-proxy && "
               "echo 'control_master = false' > ~/.config/condor-job-proxy/config.toml")
    result = person.run("condor-job-proxy", "setup", "--yes")
    assert result.returncode == 0, result.stderr
    yield person
    person.run("condor-job-proxy", "daemon", "--stop")


@pytest.fixture(scope="module")
def job(user: Account):
    started = _container_job(user, shell=True)
    yield started
    _end(started)


@pytest.fixture(scope="module", params=["unshare", "podman"])
def any_job(request, user: Account):
    """The unshare job above, or the same container run by Podman."""
    if request.param == "unshare":
        yield request.getfixturevalue("job")
        return
    started = _podman_job(user)
    yield started
    _end(started)


@pytest.fixture(scope="module")
def shell_less_job(user: Account):
    started = _container_job(user, shell=False)
    yield started
    _end(started)


def _ssh(job, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return job["user"].run("ssh", "-o", "BatchMode=yes", *args, input=input)


def _job_process(job) -> int | None:
    """The container's `sleep`, as the host sees it."""
    everything = processes.snapshot()
    return next((pid for pid in processes.descendants(job["starter"].pid, everything)
                 if everything[pid].name in ("sleep", "busybox")), None)


def _job_sees(job, path: str) -> bytes:
    """A file as the job's own process sees it (through its root, from the host)."""
    return Path(f"/proc/{_job_process(job)}/root{path}").read_bytes()


def test_command_sees_the_containers_files(any_job) -> None:
    result = _ssh(any_job, any_job["host"], "cat /marker-inside; ls /")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().split()
    assert lines[0] == "only-in-the-container"
    assert "usr" not in lines and "home" not in lines   # not the host's root


def test_command_sees_the_jobs_pid_1_and_pids_inside(any_job) -> None:
    result = _ssh(any_job, any_job["host"], "cat /proc/1/cmdline; echo; echo $_CONDOR_JOB_PIDS; pwd")
    assert result.returncode == 0, result.stderr
    cmdline, pids, cwd = result.stdout.decode().splitlines()[:3]
    assert cmdline.split("\0")[-3:-1] == ["sleep", "900"]
    assert pids.split()[0] == "1"   # then nc's, as seen inside: small numbers
    assert all(int(pid) < 100 for pid in pids.split()), pids
    assert cwd == "/work"


def test_terminal_session_runs_in_the_container(any_job) -> None:
    result = _ssh(any_job, "-tt", any_job["host"], "tty; cat /marker-inside")
    assert result.returncode == 0, result.stderr
    tty, marker = result.stdout.decode().split()
    assert tty.startswith("/dev/pts/") and marker == "only-in-the-container"


def test_session_has_the_jobs_environment(any_job) -> None:
    result = _ssh(any_job, any_job["host"], "echo $MARKER")
    assert result.stdout == b"in-the-job\n", result.stderr


def test_forward_reaches_a_server_listening_only_inside(any_job) -> None:
    job = any_job
    with socket.socket() as probe:   # nothing listens on the host's loopback there
        assert probe.connect_ex(("127.0.0.1", job["port"])) != 0
    local = free_port()
    tunnel = job["user"].popen("ssh", "-o", "BatchMode=yes", "-N", "-o", "ExitOnForwardFailure=yes",
                               "-L", f"{local}:127.0.0.1:{job['port']}", job["host"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def answered() -> bytes:
            try:
                with socket.create_connection(("127.0.0.1", local), timeout=2) as conn:
                    return conn.recv(100)
            except OSError:
                return b""
        assert wait_until(lambda: answered() == b"secret-inside\n", timeout=15)
    finally:
        tunnel.terminate()
        tunnel.wait(10)


def test_remote_forward_listens_inside_the_container(any_job) -> None:
    """ssh -R: a port opened inside the container leads back to the user's side."""
    received = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                received.append(conn.recv(100))

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        inside = free_port()
        result = _ssh(any_job, "-o", "ExitOnForwardFailure=yes", "-R",
                      f"{inside}:127.0.0.1:{server.getsockname()[1]}", any_job["host"],
                      f"cat /marker-inside >/dev/null && echo from-inside | nc 127.0.0.1 {inside}")
        thread.join(10)
    assert result.returncode == 0, result.stderr
    assert received == [b"from-inside\n"]


def test_sftp_writes_a_file_the_job_sees(any_job) -> None:
    data = os.urandom(50_000)
    local = any_job["where"] / "upload.bin"
    local.write_bytes(data)
    os.chmod(local, 0o644)
    batch = f"put {local} uploaded-by-sftp\n".encode()
    result = any_job["user"].run("sftp", "-o", "BatchMode=yes", "-b", "-", any_job["host"], input=batch)
    assert result.returncode == 0, result.stderr
    assert _job_sees(any_job, "/work/uploaded-by-sftp") == data


def test_scp_reads_the_containers_file(any_job) -> None:
    target = any_job["where"] / "fetched"
    result = any_job["user"].run("scp", "-o", "BatchMode=yes", f"{any_job['host']}:/marker-inside",
                                 str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "only-in-the-container\n"


def test_doctor_says_sessions_land_inside_the_container(any_job) -> None:
    line = f"container: sessions land inside the job's {any_job['runtime']} container"
    assert wait_until(lambda: line in _doctor(any_job), timeout=10), _doctor(any_job)


def _doctor(job) -> str:
    return job["user"].run("condor-job-proxy", "doctor", job["host"]).stdout.decode()


def test_command_runs_in_a_container_without_a_shell(shell_less_job) -> None:
    result = _ssh(shell_less_job, shell_less_job["host"], "cat /marker-inside")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"only-in-the-container\n"
    assert not (shell_less_job["root"] / "bin" / "sh").exists()


def test_login_without_a_shell_says_so(shell_less_job) -> None:
    result = _ssh(shell_less_job, shell_less_job["host"], input=b"")
    assert result.returncode == 1
    assert b"container has no shell: give a command" in result.stderr


@pytest.fixture(params=["unshare", "podman"])
def own_job(request, user: Account):
    """A container job of this test's own, which the test ends."""
    started = _container_job(user, shell=True) if request.param == "unshare" else _podman_job(user)
    yield started
    _end(started)


def _open_session(job, command: str) -> subprocess.Popen:
    """An ssh session that stays open, running ``command`` in the container (no master)."""
    session = job["user"].popen("ssh", "-o", "BatchMode=yes", "-o", "ControlPath=none",
                                job["host"], command, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: _running(job, command), timeout=20), "the session did not start"
    return session


def _running(job, command: str) -> bool:
    """Whether a job process runs ``command`` (its command line, words joined by spaces)."""
    return any(_command_line(pid) == command for pid in processes.descendants(job["starter"].pid, processes.snapshot()))


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_removing_a_job_ends_its_container_with_a_session_open(own_job) -> None:
    """Issue 27 item 1: the container's first process waits for its pid namespace to empty,
    which holds the session's processes, zombies for the starter to reap."""
    session = _open_session(own_job, "sleep 1000")
    starter = _starter_pid(own_job)
    os.kill(starter, signal.SIGTERM)
    try:
        assert wait_until(lambda: processes.read(starter) is None, timeout=25), \
            "the starter is still there 25 s after SIGTERM"
    finally:
        session.kill()
        session.wait()


def _starter_pid(job) -> int:
    """The starter itself (runuser, which the test started, waits for it and would SIGKILL
    it 2 s after passing on a SIGTERM)."""
    return next(pid for pid in processes.children(job["starter"].pid))


def test_ssh_to_a_suspended_container_job_is_told_so(own_job) -> None:
    """Issue 27 item 2: the spare session the connect daemon keeps is ended on suspension,
    not stopped and handed to the next ssh, which would hang."""
    for _ in range(2):   # the second leaves a spare open
        assert _ssh(own_job, "-o", "ControlPath=none", own_job["host"], "true").returncode == 0
    starter = _starter_pid(own_job)
    assert wait_until(lambda: any(".enter" in _command_line(pid)
                                  for pid in processes.children(starter)), timeout=10), "no spare"
    os.kill(starter, signal.SIGTSTP)
    assert wait_until(lambda: b"suspended" in own_job["user"].run(
        "condor-job-proxy", "doctor", own_job["host"]).stdout, timeout=10)
    result = own_job["user"].run("timeout", "12", "ssh", "-o", "BatchMode=yes", "-o",
                                 "ControlPath=none", own_job["host"], "true", timeout=30)
    assert result.returncode == 255, result
    assert b"suspended" in result.stderr


def test_sftp_lists_each_name_once_with_its_owner(any_job) -> None:
    """Issue 27 item 4: the first listing of a session showed every name twice (in about
    half the sessions: a few are tried)."""
    for _ in range(4):
        result = any_job["user"].run("sftp", "-b", "-", any_job["host"],
                                     input=b"cd /\nls -1\nls -1\n")
        assert result.returncode == 0, result.stderr
        listings = result.stdout.decode().split("sftp> ls -1\n")[1:]
        assert len(listings) == 2 and listings[0] == listings[1], result.stdout
        assert listings[0].splitlines().count("marker-inside") == 1, result.stdout
    listing = any_job["user"].run("sftp", "-b", "-", any_job["host"], input=b"ls -l /\n")
    assert any_job["user"].name.encode() in listing.stdout, listing.stdout   # names, not uids


def test_home_missing_in_the_container_falls_back_to_the_working_directory(job) -> None:
    """Issue 27 item 6: HOME came from the job's environment, a host path the image lacks
    (unshare passes on the host's; Podman gives a HOME of the container's own)."""
    result = _ssh(job, job["host"], 'echo "$HOME"')
    assert result.stdout == b"/work\n", result


def test_doctor_says_the_container_has_no_dev_null(user: Account) -> None:
    """Issue 27 item 6: sshd cannot run without /dev/null; the session failed with only
    "Connection reset". Such a container is not entered, and doctor says why."""
    job = _container_job(user, shell=True, dev=False)
    try:
        assert wait_until(lambda: "the container has no /dev/null" in _doctor(job), timeout=10)
    finally:
        _end(job)


def test_what_a_session_orphans_is_reaped_under_a_pid_1_that_never_reaps(job) -> None:
    """Issue 27 item 5: the container's pid 1 is a `sleep`; a process a session orphans is
    collected by the session, not left a zombie under it."""
    result = _ssh(job, job["host"], "sh -c 'sleep 0.2 &'; sleep 1")
    assert result.returncode == 0, result.stderr
    time.sleep(1)
    everything = processes.snapshot()
    zombies = [pid for pid in processes.descendants(job["starter"].pid, everything)
               if everything[pid].state == "Z"]
    assert not zombies, [everything[pid] for pid in zombies]
