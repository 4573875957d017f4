"""Whatever ends the starter ends every process of its job, in any namespace: SIGKILL included,
which the starter cannot catch, and a pid namespace's first process, which ignores SIGTERM."""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import accounts
from conftest import Workbench, wait_for_job_line, wait_until
from test_job_lifecycle import _read_int, alive, as_root, job_dir, open_session, tree

# A job in its own user, mount, pid and network namespaces, as `unshare` gives any account
# here. Its first process is a shell that loops: as a namespace's init it ignores SIGTERM.
NAMESPACED = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--net", "--fork",
              "--mount-proc", "sh", "-c", "sleep 600 & while :; do sleep 0.2; done"]
# A session that ignores the polite signals a removal sends, so only SIGKILL ends it.
STUBBORN = "trap '' HUP TERM INT; echo $$ > shell.pid; echo open; while :; do sleep 0.2; done"


def namespace_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/pid")


def in_namespace(namespace: str) -> list[int]:
    """Every process on the machine in the pid namespace ``namespace`` (a /proc/PID/ns/pid link)."""
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and os.readlink(f"/proc/{name}/ns/pid") == namespace and \
                    alive(int(name)):
                found.append(int(name))
        except OSError:
            pass
    return found


def namespace_init(starter: int) -> int:
    """The host pid of the first process in the job's pid namespace (the child of unshare)."""
    def find() -> int | None:
        mine = namespace_of(os.getpid())
        return next((pid for pid in sorted(tree(starter))
                     if _namespace(pid) not in (mine, None)), None)
    assert wait_until(lambda: find() is not None)
    return find()


def _namespace(pid: int) -> str | None:
    try:
        return namespace_of(pid)
    except OSError:
        return None


@pytest.fixture
def leftover():
    """Pids and namespaces a failing test leaves behind, SIGKILLed by pid at teardown."""
    left: dict[str, list] = {"pids": [], "namespaces": []}
    yield left
    for namespace in left["namespaces"]:
        left["pids"] += in_namespace(namespace)
    for pid in left["pids"]:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_killing_the_starter_ends_the_job_in_its_own_pid_namespace(bench: Workbench,
                                                                   leftover) -> None:
    job = bench.start_job(*NAMESPACED)
    init = namespace_init(job.process.pid)
    namespace = namespace_of(init)
    leftover["namespaces"].append(namespace)
    assert wait_until(lambda: len(in_namespace(namespace)) >= 3)   # sh, sleep 600, sleep 0.2
    job.process.kill()
    job.process.wait()
    assert wait_until(lambda: not in_namespace(namespace)), in_namespace(namespace)
    assert not alive(init)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_starter_killed_during_its_grace_ends_the_namespace_and_the_sessions(
        bench: Workbench, leftover, signum: int) -> None:
    """HTCondor vacates a job with a signal, then SIGKILLs its wrapper once its own grace is
    over, which may be shorter than the starter's."""
    job = bench.start_job(*NAMESPACED, starter_args=("--grace", "60"))
    namespace = namespace_of(namespace_init(job.process.pid))
    leftover["namespaces"].append(namespace)
    session = open_session(bench, job, STUBBORN)
    assert session.stdout.readline() == b"open\n"
    shell = _read_int(job_dir(bench, job) / "shell.pid")
    leftover["pids"].append(shell)
    job.process.send_signal(signum)
    assert wait_until(lambda: f"removed by signal {signal.Signals(signum).name}"
                      in job.stderr_file.read_text())
    time.sleep(0.5)   # the polite signals have gone out; the namespace's init ignored SIGTERM
    assert in_namespace(namespace)
    job.process.kill()
    job.process.wait()
    assert wait_until(lambda: not in_namespace(namespace)), in_namespace(namespace)
    assert wait_until(lambda: not alive(shell))
    assert session.wait(20) != 0


def test_killing_the_starter_ends_its_sessions_and_what_the_job_just_started(
        bench: Workbench, leftover) -> None:
    """Right after the job double-forks a daemon (re-parented to the starter since its last
    look at its processes) and while a session runs a shell that ignores hangups."""
    job = bench.start_job("sh", "-c", "while [ ! -e go ]; do sleep 0.05; done; "
                          "(setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $! > daemon.pid); "
                          "exec sleep 600")
    cwd = job_dir(bench, job)
    session = open_session(bench, job, STUBBORN)
    assert session.stdout.readline() == b"open\n"
    shell = _read_int(cwd / "shell.pid")
    leftover["pids"].append(shell)
    time.sleep(2.5)   # the starter has listed the job's processes (every 2 s)
    (cwd / "go").touch()
    assert wait_until(lambda: _read_int(cwd / "daemon.pid"), interval=0.01)
    daemon = _read_int(cwd / "daemon.pid")
    leftover["pids"].append(daemon)
    job.process.kill()
    job.process.wait()
    assert wait_until(lambda: not alive(daemon) and not alive(shell)), (alive(daemon), alive(shell))
    assert session.wait(20) != 0
    assert wait_until(lambda: not list((bench.root / "tmp").glob("cjp-starter-*")))   # the keeper's


@as_root
def test_killing_a_plain_accounts_starter_ends_its_namespaced_job(bench: Workbench,
                                                                  leftover) -> None:
    """Unprivileged: the job's user namespace is the account's own; no root, no cgroup."""
    accounts.ensure_venv()
    user = accounts.account("keeper")
    uid = pwd.getpwnam(user.name).pw_uid
    workdir = Path(tempfile.mkdtemp(prefix="cjp-keeper-"))
    os.chown(workdir, uid, uid)
    err_file = bench.root / "plain.err"
    try:
        with open(err_file, "wb") as err:
            starter = subprocess.Popen(
                ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--init-groups", "env", "-i",
                 f"PATH={accounts.VENV}/bin:/usr/bin:/bin", f"HOME={workdir}", f"USER={user.name}",
                 f"CONDOR_JOB_PROXY_QUEUE={workdir}", f"TMPDIR={workdir}",
                 "condor-job-starter", "run", "--", *NAMESPACED],
                cwd=workdir, stdin=subprocess.DEVNULL, stderr=err)
        wait_for_job_line(starter, err_file, timeout=30)
        init = namespace_init(starter.pid)
        namespace = namespace_of(init)
        leftover["namespaces"].append(namespace)
        assert os.stat(f"/proc/{init}").st_uid == uid
        starter.kill()
        starter.wait()
        assert wait_until(lambda: not in_namespace(namespace)), in_namespace(namespace)
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
        shutil.rmtree(workdir, ignore_errors=True)
