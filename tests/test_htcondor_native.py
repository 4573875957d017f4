"""Jobs in a pool that runs no starter of ours: reached through the pool's own condor_ssh_to_job.

HTCondor's tool, schedd and execute-side starter are played by the stand-in
tests/htcondor_standin/bin/condor_ssh_to_job (same argv template, fdpass socket, session dir and
exit codes as the real tool, a real ``sshd -i`` behind the socket); everything of ours is real:
ssh runs our ProxyCommand, which runs the tool with our grabber.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import wait_until
from test_htcondor_pool import STANDIN, Pool, _me, _one_line_failure, pool  # noqa: F401


@pytest.fixture
def native(pool: Pool) -> Pool:
    """The pool with HTCondor's tool on PATH and the tool's $TMP inside the test dir."""
    pool.env["PATH"] = f"{STANDIN / 'bin'}:{os.environ['PATH']}"
    pool.env["TMP"] = str(pool.root / "tmp")
    return pool


@pytest.fixture
def job(native: Pool):
    """Job 32.0: running (a real process), no condor-job-proxy attributes in its ad."""
    iwd = native.root / "iwd"
    iwd.mkdir()
    process = subprocess.Popen(["sleep", "600"])
    native.add_job(32, Iwd=str(iwd), StandinJobPid=process.pid,
                   Environment="MARKER=only-in-the-job 'SPACED=a b'",
                   RemoteHost="slot1_2@exec.test")
    yield iwd
    process.kill()
    process.wait()


def ssh(pool: Pool, *args: str, tool: str = "ssh", config: Path | None = None,
        input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([tool, "-F", str(config or pool.ssh_config), "-o", "BatchMode=yes", *args],
                          env=pool.env, input=input, capture_output=True, timeout=90)


def tool_dirs(pool: Pool) -> list[str]:
    return [p.name for p in (pool.root / "tmp").iterdir() if "condor_ssh_to_job_" in p.name]


def my_processes(pool: Pool) -> list[str]:
    """Processes that mention the test's directory: the tool, grabber, sshd, starter side (not
    the user's connect daemon, which the first connect starts and which stays by design)."""
    out = subprocess.run(["pgrep", "-af", str(pool.root)], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()
            if "pgrep" not in line and " daemon --socket " not in line]


def test_ssh_runs_a_command_in_the_job(native: Pool, job: Path) -> None:
    result = ssh(native, "job-32.0", 'pwd; echo "$MARKER/$SPACED"; echo "$_CONDOR_JOB_PIDS"')
    assert result.returncode == 0, result.stderr
    cwd, marker, pids = result.stdout.decode().splitlines()
    assert cwd == str(job) and marker == "only-in-the-job/a b"
    assert pids == str(native.job_ad(32)["StandinJobPid"])
    assert result.stderr == b""   # no warnings: the job-access key is refused quietly


def test_remote_exit_status_comes_back(native: Pool, job: Path) -> None:
    assert ssh(native, "job-32", "exit 7").returncode == 7


def test_scp_download_and_upload(native: Pool, job: Path) -> None:
    (job / "out.dat").write_bytes(os.urandom(300_000))
    result = ssh(native, "job-32.0:out.dat", str(native.root / "copy.dat"), tool="scp")
    assert result.returncode == 0, result.stderr
    assert (native.root / "copy.dat").read_bytes() == (job / "out.dat").read_bytes()
    result = ssh(native, str(native.root / "copy.dat"), "job-32.0:back.dat", tool="scp")
    assert result.returncode == 0, result.stderr
    assert (job / "back.dat").read_bytes() == (job / "out.dat").read_bytes()


def test_sftp_lists_and_gets(native: Pool, job: Path) -> None:
    (job / "result.txt").write_text("done\n")
    result = ssh(native, "job-32.0", tool="sftp",
                 input=f"ls\nget result.txt {native.root / 'got.txt'}\n".encode())
    assert result.returncode == 0, result.stderr
    assert "result.txt" in result.stdout.decode()
    assert (native.root / "got.txt").read_text() == "done\n"


def test_rsync_both_ways(native: Pool, job: Path) -> None:
    (native.root / "src").mkdir()
    (native.root / "src" / "a.txt").write_text("a\n")
    rsh = f"ssh -F {native.ssh_config} -o BatchMode=yes"
    up = subprocess.run(["rsync", "-a", "-e", rsh, f"{native.root / 'src'}/", "job-32.0:dst/"],
                        env=native.env, capture_output=True, timeout=90)
    assert up.returncode == 0, up.stderr
    assert (job / "dst" / "a.txt").read_text() == "a\n"
    down = subprocess.run(["rsync", "-a", "-e", rsh, "job-32.0:dst/", f"{native.root / 'down'}/"],
                          env=native.env, capture_output=True, timeout=90)
    assert down.returncode == 0, down.stderr
    assert (native.root / "down" / "a.txt").read_text() == "a\n"


def test_vscode_style_bash_on_stdin(native: Pool, job: Path) -> None:
    result = ssh(native, "-T", "job-32.0", "bash", input=b'echo "in $(pwd)"\nexit 3\n')
    assert result.returncode == 3, result.stderr
    assert result.stdout.decode() == f"in {job}\n"


def test_relay_when_ssh_takes_no_fd(native: Pool, job: Path) -> None:
    text = native.ssh_config.read_text() + "\nHost job-*\n    ProxyUseFdpass no\n"
    relay_config = native.root / "ssh_config.relay"
    relay_config.write_text(text.replace("connect --identity", "connect --relay --identity"))
    result = ssh(native, "job-32.0", "pwd", config=relay_config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == str(job)


def test_session_key_is_private_and_replaced_each_connect(native: Pool, job: Path) -> None:
    key = native.root / "state" / "condor-job-proxy" / "jobs" / "32.0" / "ssh_key"
    assert ssh(native, "job-32.0", "true").returncode == 0
    first = key.read_bytes()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert ssh(native, "job-32.0", "true").returncode == 0
    assert key.read_bytes() != first


def test_tool_leaves_nothing_behind(native: Pool, job: Path) -> None:
    result = ssh(native, "job-32.0", "sleep 1; echo still-here")
    assert result.returncode == 0 and result.stdout == b"still-here\n", result.stderr
    assert tool_dirs(native) == []
    assert wait_until(lambda: my_processes(native) == [], timeout=10), my_processes(native)


def test_connection_outlives_the_tool(native: Pool, job: Path) -> None:
    """The tool is gone (dir removed, process exited) while the session still runs."""
    session = subprocess.Popen(["ssh", "-F", str(native.ssh_config), "-o", "BatchMode=yes",
                                "job-32.0", "cat"], env=native.env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    session.stdin.write(b"first\n")
    session.stdin.flush()
    assert session.stdout.readline() == b"first\n"
    assert tool_dirs(native) == []
    assert not any("condor_ssh_to_job" in line for line in my_processes(native))
    out, err = session.communicate(b"second\n", timeout=30)
    assert session.returncode == 0 and out == b"second\n", err


def test_wrong_login_name_fails_before_ssh_and_is_remembered(native: Pool, job: Path) -> None:
    # A pool whose admin turned the fake passwd entry off: its sshd takes only the job user's name.
    pool_config = json.loads(native.file.read_text())
    pool_config["config"] = {"CONDOR_SSH_TO_JOB_FAKE_PASSWD_ENTRY": "false"}
    native.file.write_text(json.dumps(pool_config))
    config = native.root / "ssh_config.other_user"
    config.write_text(native.ssh_config.read_text() + "\nHost *\n    User nobody\n")
    result = ssh(native, "job-32.0", "true", config=config)
    assert result.returncode == 255
    assert (f"condor-job-proxy: job 32.0 runs as user '{_me()}', not 'nobody': use ssh "
            f"{_me()}@job-32.0") in result.stderr.decode()
    remembered = native.root / "state" / "condor-job-proxy" / "jobs" / "32.0" / "user"
    assert remembered.read_text() == f"{_me()}\n"
    include = native.proxy("config", "show").stdout.decode()
    assert "Host job-32.0 job-32\n" in include and f"User {_me()}\n" in include
    again = ssh(native, "job-32.0", "id -un", config=config)
    assert again.returncode == 0, again.stderr
    assert again.stdout.decode().strip() == _me()


def test_early_start_window_is_waited_out(native: Pool, job: Path) -> None:
    ad_file = json.loads(native.file.read_text())
    ad_file["schedds"]["ap.test"]["jobs"][0]["StandinSshReadyAfter"] = time.time() + 3
    native.file.write_text(json.dumps(ad_file))
    direct = subprocess.run(["condor_ssh_to_job", "32.0", "true"], env=native.env,
                            capture_output=True, timeout=30)
    assert direct.returncode == 1
    assert direct.stderr.decode() == "(Use -auto-retry to keep trying periodically.)\n"
    result = ssh(native, "job-32.0", "echo up")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"up\n"


def test_starter_never_ready_fails_in_one_line(native: Pool, job: Path) -> None:
    native.configure('resolver = "htcondor"\n[htcondor_native]\nwait_seconds = 1\n')
    ad_file = json.loads(native.file.read_text())
    ad_file["schedds"]["ap.test"]["jobs"][0]["StandinSshReadyAfter"] = time.time() + 3600
    native.file.write_text(json.dumps(ad_file))
    line = _one_line_failure(native.proxy("connect", "job-32.0", _me()))
    assert line == ("condor-job-proxy: job 32.0 is running but its starter is not ready for ssh "
                    "yet (waited 1 s); try again in a few seconds")


def test_root_reaches_another_users_job_as_the_pools_super_user(native: Pool, job: Path) -> None:
    """The schedd counts root as the condor user, a queue super user whatever QUEUE_SUPER_USERS
    says (a plain user is refused: tests/test_hostile_pool_jobs.py)."""
    native.add_job(33, Owner="somebody-else", Iwd=str(job))
    result = native.proxy("connect", "job-33.0", _me())
    assert result.returncode == 0 and result.stdout.startswith(b"SSH-2.0-"), result


def test_missing_tool_is_one_line(pool: Pool) -> None:
    pool.add_job(34)
    pool.env["PATH"] = "/usr/bin:/bin"
    line = _one_line_failure(pool.proxy("connect", "job-34.0", _me()))
    assert "condor_ssh_to_job is not on PATH" in line


@pytest.mark.parametrize("host, prefix", [("job-32.0", ""), ("hpc-32.0", "hpc-")])
def test_refresh_forgets_jobs_that_left_the_queue(native: Pool, job: Path, host: str,
                                                  prefix: str) -> None:
    """Per-job files belong to the job, not to the name ssh used: with host_prefix = "hpc-"
    the session key of hpc-32.0 goes too once the job has left the queue."""
    if prefix:
        native.configure(f'resolver = "htcondor"\nhost_prefix = "{prefix}"\n')
        assert native.proxy("config", "refresh").returncode == 0
    result = ssh(native, host, "true")
    assert result.returncode == 0, result.stderr
    job_files = native.root / "state" / "condor-job-proxy" / "jobs" / "32.0"
    assert (job_files / "ssh_key").exists()
    state = json.loads(native.file.read_text())
    state["schedds"]["ap.test"]["jobs"] = []
    native.file.write_text(json.dumps(state))
    assert native.proxy("config", "refresh").returncode == 0
    assert not job_files.exists()


def test_doctor_says_native_for_a_plain_pool_job(native: Pool, job: Path) -> None:
    result = native.proxy("doctor", "job-32.0")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "job 32.0: resolver htcondor (the local schedd)" in out
    assert "transport: htcondor-native (the job ad has no CondorJobProxyOwnerKey" in out
    assert "state: running, and you may enter it\n" in out
    assert f"check HTCondor's condor_ssh_to_job: {STANDIN / 'bin' / 'condor_ssh_to_job'}" in out
    assert "check job-access key: " in out and "missing" not in out.split("check ssh:")[0]


def test_doctor_says_starter_for_a_job_that_runs_ours(native: Pool) -> None:
    native.add_job(40, CondorJobProxyOwnerKey=native.public_key(), JobStatus=1)
    out = native.proxy("doctor", "40").stdout.decode()
    assert "transport: starter (the job ad has CondorJobProxyOwnerKey: the job runs our starter)" in out
    assert "state: not reachable now: job 40.0 is not running yet (idle in the queue)" in out


# --- our condor_ssh_to_job, first on PATH, on jobs that run no starter of ours ----------------

def wrapper_first_on_path(pool: Pool) -> dict[str, str]:
    """Our condor_ssh_to_job installed in a venv that comes first on PATH, HTCondor's later."""
    from test_condor_ssh_to_job import make_shim
    ours = make_shim(pool.root / "venv-bin")
    return {**pool.env, "PATH": f"{ours.parent}:{pool.env['PATH']}", "SHELL": "/bin/sh"}


def test_condor_ssh_to_job_on_a_plain_pool_job(native: Pool, job: Path) -> None:
    """The pool's sshd takes only the key HTCondor's tool made for the session, as on a real
    pool: our wrapper must get a vanilla job's shell exactly as HTCondor's tool would."""
    env = wrapper_first_on_path(native)
    result = subprocess.run(["condor_ssh_to_job", "32.0", "pwd; echo $MARKER; exit 7"], env=env,
                            capture_output=True, stdin=subprocess.DEVNULL, timeout=90)
    assert result.returncode == 7, result.stderr
    assert result.stdout.decode().split() == [str(job), "only-in-the-job"]
    assert result.stderr == b""
    assert not tool_dirs(native)


def test_condor_ssh_to_job_on_a_plain_pool_job_with_ssh_scp(native: Pool, job: Path) -> None:
    (job / "out.dat").write_text("result\n")
    env = wrapper_first_on_path(native)
    target = native.root / "copied.dat"
    result = subprocess.run(["condor_ssh_to_job", "-ssh", "scp", "32", "remote:out.dat",
                             str(target)], env=env, capture_output=True,
                            stdin=subprocess.DEVNULL, timeout=90)
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "result\n"


def test_condor_ssh_to_job_on_a_plain_pool_job_keeps_htcondors_words(native: Pool, job: Path) -> None:
    native.add_job(33, Iwd=str(job), JobStatus=5, HoldReason="Out of disk")
    env = wrapper_first_on_path(native)
    result = subprocess.run(["condor_ssh_to_job", "33.0", "true"], env=env, capture_output=True,
                            stdin=subprocess.DEVNULL, timeout=90)
    assert (result.returncode, result.stderr.decode()) == (1, 'Job is held: "Out of disk".\n')


def test_condor_ssh_to_job_without_htcondors_tool_says_so_in_one_line(pool: Pool) -> None:
    """No HTCondor tool to ride on: one line and HTCondor's failure status, never a password prompt."""
    pool.add_job(34)
    env = wrapper_first_on_path(pool)
    env["PATH"] = env["PATH"].replace(f"{STANDIN / 'bin'}:", "")
    result = subprocess.run(["condor_ssh_to_job", "34.0", "true"], env=env, capture_output=True,
                            stdin=subprocess.DEVNULL, timeout=90)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result
    assert "HTCondor's condor_ssh_to_job" in lines[0] and "not" in lines[0]


def test_doctor_says_why_a_pool_job_has_no_terminal(native: Pool) -> None:
    """As our starter publishes it on an execute node whose /dev/pts lacks gid=5, no wrapper."""
    why = ("cannot give a terminal (ssh -t, interactive login) on exec.test: /dev/pts is mounted "
           "without gid=5 and libnss-wrapper is not installed; install libnss-wrapper on that "
           "execute node, or mount devpts with gid=5")
    native.add_job(41, CondorJobProxyOwnerKey=native.public_key(), CondorJobProxyNoTerminal=why)
    native.add_job(42, CondorJobProxyOwnerKey=native.public_key())
    assert f"terminals: no: job 41.0 {why}\n" in native.proxy("doctor", "41").stdout.decode()
    assert "terminals: yes" in native.proxy("doctor", "42").stdout.decode()
