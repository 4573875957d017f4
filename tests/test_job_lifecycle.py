"""Sessions live and die with their job: suspend, resume, removal, exit, limits, cleanup."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import accounts
from conftest import Job, Workbench, session_leftovers, wait_for_job_line, wait_until

# A session that counts, so we can see whether it runs; its shell's pid goes to a file first.
COUNTER = "echo $$ > shell.pid; i=0; while :; do i=$((i+1)); echo $i > counter; sleep 0.05; done"


def record(bench: Workbench, job: Job) -> dict:
    return json.loads((bench.root / "queue" / f"{job.id}.json").read_text())


def control(bench: Workbench, action: str, job: Job) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "condor_job_proxy.starter", action, job.id], env=bench.env,
                          capture_output=True, text=True, timeout=60)


def open_session(bench: Workbench, job: Job, command: str) -> subprocess.Popen:
    """An ssh session that stays open until its stdin closes or it is ended from the job side."""
    return subprocess.Popen(["ssh", "-F", str(bench.ssh_config), "-o", "BatchMode=yes", job.host,
                             command], env=bench.env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def job_dir(bench: Workbench, job: Job) -> Path:
    return bench.root / f"job{bench.jobs.index(job)}"


def counting_session(bench: Workbench, job: Job) -> tuple[subprocess.Popen, Path]:
    session = open_session(bench, job, COUNTER)
    counter = job_dir(bench, job) / "counter"
    assert wait_until(lambda: _read_int(counter) > 3), session.stderr and session.poll()
    return session, counter


def tree(root: int) -> dict[int, str]:
    """Every descendant of ``root`` with its state letter, straight from /proc."""
    parents, states = {}, {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2:].split()
            parents[int(name)], states[int(name)] = int(fields[1]), fields[0].decode()
    found, stack = {}, [root]
    while stack:
        parent = stack.pop()
        for pid, ppid in parents.items():
            if ppid == parent:
                found[pid] = states[pid]
                stack.append(pid)
    return found


def _command_name(pid: int) -> str:
    """A process's name, or "" for one that ended since it was listed (the job's own loop
    starts short-lived processes)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return state[state.rfind(b")") + 2:][:1] != b"Z"


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def test_job_pids_lists_the_main_process_first_then_its_children(bench: Workbench) -> None:
    job = bench.start_job("sh", "-c", "sleep 600 & wait")
    main = record(bench, job)["pids"][0]
    result = bench.ssh(job.host, "echo $_CONDOR_JOB_PIDS")
    pids = [int(pid) for pid in result.stdout.split()]
    assert pids[0] == main and len(pids) == 2, result
    assert Path(f"/proc/{pids[1]}/cmdline").read_bytes() == b"sleep\x00600\x00"


def test_suspending_a_job_stops_its_sessions(bench: Workbench, job: Job) -> None:
    session, counter = counting_session(bench, job)
    result = control(bench, "suspend", job)
    assert result.returncode == 0 and result.stdout == f"job {job.id} suspended\n", result.stderr
    processes = tree(job.process.pid)
    shell = _read_int(job_dir(bench, job) / "shell.pid")
    assert shell in processes and record(bench, job)["pids"][0] in processes
    assert set(processes.values()) == {"T"}, processes
    before = _read_int(counter)
    time.sleep(1)
    assert _read_int(counter) == before
    refused = bench.ssh(job.host, "true")
    assert refused.returncode == 255
    assert refused.stderr.decode().splitlines()[0] == \
        f"condor-job-proxy: job {job.id}: the job is suspended"
    control(bench, "resume", job)
    session.stdin.close()


def test_suspended_job_keeps_its_host_block_and_name(bench: Workbench, job: Job) -> None:
    assert control(bench, "suspend", job).returncode == 0
    bench.proxy("config", "refresh", check=True)
    include = bench.proxy("config", "show", check=True).stdout.decode()
    assert f"Host {job.host} " in include          # its User mapping is still there on resume
    assert bench.proxy("jobs", "--names", check=True).stdout.decode() == f"{job.host}\n"
    control(bench, "resume", job)


def test_resuming_a_job_continues_its_sessions(bench: Workbench, job: Job) -> None:
    session, counter = counting_session(bench, job)
    assert control(bench, "suspend", job).returncode == 0
    stopped_at = _read_int(counter)
    result = control(bench, "resume", job)
    assert result.returncode == 0 and result.stdout == f"job {job.id} running\n", result.stderr
    assert wait_until(lambda: _read_int(counter) > stopped_at + 3)
    assert "T" not in tree(job.process.pid).values()
    assert bench.ssh(job.host, "echo still here").stdout == b"still here\n"
    session.kill()


def test_suspend_signal_to_the_starter_suspends_like_htcondor(bench: Workbench, job: Job) -> None:
    session, counter = counting_session(bench, job)
    job.process.send_signal(signal.SIGTSTP)
    assert wait_until(lambda: record(bench, job)["state"] == "suspended")
    assert set(tree(job.process.pid).values()) == {"T"}
    job.process.send_signal(signal.SIGCONT)
    assert wait_until(lambda: record(bench, job)["state"] == "running")
    assert "T" not in tree(job.process.pid).values()
    session.stdin.close()


def test_removing_a_job_ends_its_sessions_and_escapees(bench: Workbench) -> None:
    job = bench.start_job("sleep", "600", starter_args=("--grace", "2"))
    # The session double-forks a daemon into a new session that ignores SIGHUP and SIGTERM.
    escape = "(setsid sh -c 'trap \"\" HUP TERM; echo $$ > daemon.pid; while :; do sleep 1; done' " \
             "</dev/null >/dev/null 2>&1 &); " \
             "ln -s /bin/sleep ssh-keygen; (./ssh-keygen 1000 & echo $! > fake.pid); " + COUNTER
    session = open_session(bench, job, escape)
    cwd = job_dir(bench, job)
    assert wait_until(lambda: _read_int(cwd / "counter") > 3 and _read_int(cwd / "daemon.pid"))
    daemon = _read_int(cwd / "daemon.pid")
    assert daemon in tree(job.process.pid)   # re-parented to the starter, not to init
    assert wait_until(lambda: daemon in record(bench, job)["pids"])
    result = control(bench, "rm", job)
    assert result.returncode == 0 and result.stdout == f"job {job.id} removed\n", result.stderr
    assert session.wait(20) != 0
    assert job.wait() == 128 + signal.SIGTERM
    assert not alive(daemon) and not alive(_read_int(cwd / "shell.pid"))
    assert not alive(_read_int(cwd / "fake.pid"))   # named like the starter's own helper
    assert not session_leftovers(bench)
    final = record(bench, job)
    assert final["state"] == "removed" and final["pids"] == [] and final["sessions"] == 0


def test_removing_a_suspended_job_ends_it(bench: Workbench, job: Job) -> None:
    session, _ = counting_session(bench, job)
    assert control(bench, "suspend", job).returncode == 0
    assert control(bench, "rm", job).returncode == 0
    assert session.wait(20) != 0 and job.wait() == 128 + signal.SIGTERM
    assert not session_leftovers(bench)


def test_job_exit_waits_for_the_last_session(bench: Workbench) -> None:
    job = bench.start_job("sh", "-c", "while [ ! -e stop ]; do sleep 0.05; done; exit 3")
    session = open_session(bench, job, "touch stop; echo open; exec cat")
    assert session.stdout.readline() == b"open\n"
    assert wait_until(lambda: record(bench, job)["state"] == "exited")
    now = record(bench, job)
    assert now["exit_status"] == 3 and now["sessions"] == 1
    table = bench.proxy("jobs", check=True).stdout.decode()
    assert "exited (1 sessions open)" in table
    refused = bench.ssh(job.host, "true")
    assert refused.returncode == 255
    assert refused.stderr.decode().splitlines()[0] == (
        f"condor-job-proxy: job {job.id}: job has exited: exit status 3; its open sessions may "
        "finish, no new ones start")
    assert job.process.poll() is None   # the starter (the slot) stays while the session is open
    session.stdin.write(b"still works\n")
    session.stdin.close()
    assert session.stdout.read() == b"still works\n" and session.wait(20) == 0
    assert job.wait() == 3
    final = record(bench, job)
    assert final["state"] == "completed" and final["exit_status"] == 3
    assert not session_leftovers(bench)


def test_32_sessions_at_once_and_one_more_is_refused(bench: Workbench) -> None:
    job = bench.start_job("sleep", "600", starter_args=("--max-sessions", "32"))
    sessions = []
    for _ in range(32):
        sessions.append(open_session(bench, job, "echo open; exec cat"))
    for session in sessions:
        assert session.stdout.readline() == b"open\n", session.stderr.read()
    assert wait_until(lambda: record(bench, job)["sessions"] == 32)
    assert len(session_leftovers(bench)) == 32   # each in its own directory
    refused = bench.ssh(job.host, "true")
    assert refused.returncode == 255
    assert f"job {job.id}: too many sessions: job {job.id} already has 32 sessions open" in \
        refused.stderr.decode()
    for session in sessions:
        session.stdin.close()
    assert all(session.wait(30) == 0 for session in sessions)
    assert wait_until(lambda: not session_leftovers(bench))
    assert bench.ssh(job.host, "echo again").stdout == b"again\n"


def test_record_counts_session_processes_and_memory(bench: Workbench, job: Job) -> None:
    hog = "python3 -c 'import sys; b = bytearray(200 << 20); print(\"held\", flush=True); sys.stdin.read()'"
    main = record(bench, job)["pids"][0]
    session = open_session(bench, job, hog)
    assert session.stdout.readline() == b"held\n"
    assert wait_until(lambda: record(bench, job)["memory_kb"] > 200 * 1024)
    now = record(bench, job)
    assert now["pids"][0] == main and len(now["pids"]) >= 3   # the job, sshd, python
    assert set(now["pids"]) <= set(tree(job.process.pid))
    session.stdin.close()
    assert session.wait(20) == 0
    assert wait_until(lambda: record(bench, job)["memory_kb"] < 100 * 1024)


def test_memory_limit_counts_sessions_and_removes_the_job(bench: Workbench) -> None:
    job = bench.start_job("sleep", "600", starter_args=("--memory-limit", "150", "--grace", "1"))
    hog = "python3 -c 'import sys; b = bytearray(200 << 20); print(\"held\", flush=True); sys.stdin.read()'"
    session = open_session(bench, job, hog)
    assert session.wait(30) != 0
    assert job.wait(30) == 128 + signal.SIGTERM
    final = record(bench, job)
    assert final["state"] == "removed" and "over the limit of 150 MB" in final["reason"]
    assert not session_leftovers(bench)


def test_cpu_limit_counts_sessions_and_removes_the_job(bench: Workbench) -> None:
    job = bench.start_job("sleep", "600", starter_args=("--cpu-limit", "1", "--grace", "1"))
    session = open_session(bench, job, "while :; do :; done")
    assert session.wait(60) != 0
    assert job.wait(30) == 128 + signal.SIGTERM
    final = record(bench, job)
    assert final["state"] == "removed" and "CPU time" in final["reason"]


def test_orphans_of_a_session_are_reaped(bench: Workbench, job: Job) -> None:
    """A process that outlives its parent re-parents to the starter, which collects it."""
    result = bench.ssh(job.host, "(sleep 0.5 & echo $! > orphan.pid) ; echo started")
    assert result.stdout == b"started\n"
    orphan = _read_int(job_dir(bench, job) / "orphan.pid")
    assert wait_until(lambda: orphan not in tree(job.process.pid))   # not even as a zombie


def test_client_killed_mid_session_leaves_nothing(bench: Workbench, job: Job) -> None:
    session = open_session(bench, job, "echo $$ > shell.pid; while :; do echo tick; sleep 0.05; done")
    assert session.stdout.readline() == b"tick\n"
    shell = _read_int(job_dir(bench, job) / "shell.pid")
    session.kill()
    session.wait()
    assert wait_until(lambda: not session_leftovers(bench))
    assert wait_until(lambda: record(bench, job)["sessions"] == 0)
    # The shell's output went nowhere and it ended; nothing of the session is left but the job.
    assert wait_until(lambda: not alive(shell))
    assert wait_until(lambda: set(tree(job.process.pid)) == {record(bench, job)["pids"][0]})


def test_client_killed_mid_handshake_leaves_nothing(bench: Workbench, job: Job) -> None:
    address = record(bench, job)["starter_address"]
    host, port = address.rsplit(":", 1)
    client = subprocess.Popen([sys.executable, "-c", (
        "import socket, time\n"
        f"s = socket.create_connection(('{host}', {port}))\n"
        "s.sendall(b'\\0\\0\\1\\0{\"type\": \"hel')\n"
        "print('sent', flush=True); time.sleep(600)\n")], stdout=subprocess.PIPE)
    assert client.stdout.readline() == b"sent\n"
    client.kill()
    client.wait()
    assert bench.ssh(job.host, "echo fine").stdout == b"fine\n"
    assert wait_until(lambda: not session_leftovers(bench))   # sshd may outlast ssh briefly
    assert wait_until(lambda: set(tree(job.process.pid)) == {record(bench, job)["pids"][0]})


def test_killed_sshd_ends_the_session_and_its_processes_stay_in_the_job(
        bench: Workbench, job: Job) -> None:
    session, _ = counting_session(bench, job)
    shell = _read_int(job_dir(bench, job) / "shell.pid")
    sshd = [pid for pid in tree(job.process.pid) if _command_name(pid) == "sshd"]
    assert len(sshd) == 1
    os.kill(sshd[0], signal.SIGKILL)
    assert session.wait(20) == 255
    assert wait_until(lambda: not session_leftovers(bench))
    # What the session started is still the job's: counted, and ended with the job.
    assert shell in tree(job.process.pid)
    assert wait_until(lambda: shell in record(bench, job)["pids"])
    assert control(bench, "rm", job).returncode == 0
    assert not alive(shell)


def test_next_starter_sweeps_up_after_a_killed_starter(bench: Workbench, job: Job) -> None:
    """A starter killed together with its keeper (which otherwise ends what it left at once)."""
    session, _ = counting_session(bench, job)
    shell = _read_int(job_dir(bench, job) / "shell.pid")
    job_pid = record(bench, job)["pids"][0]
    assert wait_until(lambda: shell in record(bench, job)["pids"])
    assert len(session_leftovers(bench)) == 1
    keeper, = (bench.root / "tmp").glob("cjp-starter-*/keeper.pid")
    os.kill(_read_int(keeper), signal.SIGKILL)
    job.process.kill()
    job.process.wait()
    assert session.wait(20) == 255        # the session's sshd died with its starter
    assert wait_until(lambda: not alive(job_pid))   # and so did the job
    assert bench.proxy("jobs", check=True).stdout.decode().count("lost") == 1
    second = bench.start_job("sleep", "600")
    assert "left behind by a starter that was killed" in second.stderr
    assert not alive(shell)
    assert not session_leftovers(bench)
    assert len(list((bench.root / "tmp").glob("cjp-starter-*"))) == 1   # the second's own


# Jobs under other accounts: root only (the tests create accounts and switch users).
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="creating test accounts needs root")
NO_PASSWD_UID = 47_311   # a uid with no passwd entry (checked in the test)


@pytest.fixture
def scratch(bench: Workbench):
    """Make directories every account can reach (pytest's tmp_path is root's alone)."""
    made: list[Path] = []

    def make(kind: str, mode: int) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"cjp-lifecycle-{kind}-"))
        os.chmod(path, mode)
        made.append(path)
        return path
    yield make
    bench.stop()
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def start_elsewhere(bench: Workbench, scratch, argv: list[str], uid: int,
                    env: dict) -> tuple[str, dict, Path]:
    """Start a job with argv (which switches to ``uid``), letting in the bench user's key.

    Returns its host name, and the environment and ssh config the bench user connects with
    (those of the bench, but for the queue: a shared one).
    """
    shared, keys, workdir = scratch("queue", 0o1777), scratch("keys", 0o755), scratch("cwd", 0o700)
    (keys / "owner.pub").write_bytes(bench.proxy("pubkey", check=True).stdout)
    os.chown(workdir, uid, uid)
    err_file = bench.root / f"elsewhere{len(bench.jobs)}.err"
    with open(err_file, "wb") as err:
        process = subprocess.Popen(
            [*argv, "env", "-i", f"PATH={accounts.VENV}/bin:/usr/bin:/bin", f"HOME={workdir}",
             f"CONDOR_JOB_PROXY_QUEUE={shared}", f"TMPDIR={workdir}", *(f"{k}={v}" for k, v in env.items()),
             "condor-job-starter", "run", "--authorized-keys-file", str(keys / "owner.pub"),
             "--", "sleep", "600"], cwd=workdir, stdin=subprocess.DEVNULL, stderr=err)
    job_id = wait_for_job_line(process, err_file, timeout=30)
    bench.jobs.append(Job(job_id, f"job-{job_id}", process, err_file))
    generated = bench.root / "config" / "condor-job-proxy" / "ssh_config"
    ssh_config = bench.root / "ssh_config_shared_queue"
    ssh_config.write_text(generated.read_text().replace(str(bench.root / "queue"), str(shared)))
    return f"job-{job_id}", {**bench.env, "CONDOR_JOB_PROXY_QUEUE": str(shared)}, ssh_config


@as_root
def test_login_shell_nologin_refuses_ssh_access(bench: Workbench, scratch) -> None:
    accounts.ensure_venv()
    user = accounts.account("nologin", shell="/usr/sbin/nologin")
    uid = pwd.getpwnam(user.name).pw_uid
    host, env, _ = start_elsewhere(bench, scratch, ["setpriv", f"--reuid={uid}", f"--regid={uid}",
                                           "--init-groups"], uid, {"USER": user.name})
    result = subprocess.run([sys.executable, "-m", "condor_job_proxy", "connect", host, user.name],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 255
    assert result.stderr == (f"condor-job-proxy: job {host[4:]}: ssh access to this job is disabled "
                             "by its user's login shell (/usr/sbin/nologin)\n")


@as_root
def test_login_shell_of_another_family_gets_the_jobs_session(bench: Workbench, scratch) -> None:
    """A login shell that is not Bourne-style (csh, fish, ...) runs the session's setup through
    /bin/sh, which then gets the session's directory and the job's pids as arguments."""
    odd_shell = Path("/usr/local/bin/cjp-test-odd-shell")   # bash by another name: not sourced
    if not odd_shell.exists():
        odd_shell.symlink_to("/bin/bash")
    accounts.ensure_venv()
    user = accounts.account("oddshell", shell=str(odd_shell))
    uid = pwd.getpwnam(user.name).pw_uid
    host, env, ssh_config = start_elsewhere(bench, scratch, ["setpriv", f"--reuid={uid}",
                                            f"--regid={uid}", "--init-groups"], uid,
                                            {"USER": user.name, "MARKER": "in-the-job"})
    result = subprocess.run(["ssh", "-F", str(ssh_config), "-o", "BatchMode=yes", "-l", user.name,
                             host, 'echo "$MARKER|$_CONDOR_JOB_PIDS|$CONDOR_JOB_PROXY_SESSION|$#"'],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    marker, pids, session, arguments = result.stdout.strip().split("|")
    assert marker == "in-the-job" and pids.split()[0].isdigit() and arguments == "0"
    assert Path(session).name.startswith("cjp-session-")


@as_root
def test_job_user_without_passwd_entry_gets_a_session(bench: Workbench, scratch) -> None:
    with pytest.raises(KeyError):
        pwd.getpwuid(NO_PASSWD_UID)
    accounts.ensure_venv()
    uid = NO_PASSWD_UID
    host, env, ssh_config = start_elsewhere(bench, scratch, ["setpriv", f"--reuid={uid}", f"--regid={uid}",
                                                    "--clear-groups"], uid, {})
    result = subprocess.run(["ssh", "-F", str(ssh_config), "-o", "BatchMode=yes",
                             "-l", f"uid{uid}", host, "id -u; echo $HOME; pwd"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[0] == str(uid) and lines[1] == lines[2]
