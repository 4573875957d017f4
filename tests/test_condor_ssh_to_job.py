"""A user types HTCondor's condor_ssh_to_job, with its flags, against a job of ours.

Each test is a line of HTCondor's manual page or of what the real tool was seen to print and
return (../shared/reference/). The command runs as the user would run it: a
``condor_ssh_to_job`` on PATH, real ssh/scp/sftp/rsync/ssh-keygen, a real starter. Nothing
here uses the bench's ssh_config: the command must work without it.
"""
from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Job, Workbench, sshd_children, wait_until
from condor_job_proxy.proxycmd.errors import JobNotRunning
from condor_job_proxy.proxycmd.ssh_to_job.command import Request, _setup_failure, split_arguments
from condor_job_proxy.common.jobid import JobId

RETRY_ENV = "CONDOR_SSH_TO_JOB_RETRY_SECONDS"


@dataclass
class Tool:
    """``condor_ssh_to_job`` on the user's PATH, through a shim like a console script."""
    bench: Workbench
    env: dict[str, str]

    def run(self, *args: str, input: bytes | None = None, env: dict | None = None,
            cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["condor_ssh_to_job", *args], input=input, capture_output=True,
                              env={**self.env, **(env or {})}, cwd=cwd or self.bench.root,
                              timeout=timeout)

    def popen(self, *args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(["condor_ssh_to_job", *args], env={**self.env, **(env or {})},
                                cwd=self.bench.root, **kwargs)

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in (self.bench.root / "tmp").glob("*.condor_ssh_to_job_*"))


def make_shim(directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    shim = directory / "condor_ssh_to_job"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m condor_job_proxy.ssh_to_job \"$@\"\n")
    shim.chmod(0o755)
    return shim


@pytest.fixture
def tool(bench: Workbench) -> Tool:
    bin_dir = bench.root / "bin"
    make_shim(bin_dir)
    env = {**bench.env, "PATH": f"{bin_dir}:{bench.env['PATH']}", "SHELL": "/bin/bash"}
    return Tool(bench, env)


def cluster(job: Job) -> str:
    return job.id.split(".")[0]


# --- the description ------------------------------------------------------------------------

def test_command_runs_as_the_job_in_its_directory_with_its_environment(tool: Tool, job: Job) -> None:
    result = tool.run(job.id, "echo $_CONDOR_JOB_PIDS; pwd; echo $MARKER; whoami")
    assert result.returncode == 0, result.stderr
    pids, cwd, marker, user = result.stdout.decode().splitlines()
    assert Path(f"/proc/{pids.split()[0]}/cmdline").read_bytes() == b"sleep\x00600\x00"
    assert (cwd, marker, user) == (str(tool.bench.root / "job0"), "only-in-the-job", getpass.getuser())


def test_bare_cluster_means_proc_zero(tool: Tool, job: Job) -> None:
    result = tool.run(cluster(job), "echo ok")
    assert result.stdout == b"ok\n", result.stderr


def test_remote_command_exit_status_is_ours(tool: Tool, job: Job) -> None:
    result = tool.run(job.id, "exit 7")
    assert result.returncode == 7
    assert result.stderr == b""


def test_works_without_ssh_config_or_setup(tool: Tool, bench: Workbench) -> None:
    """A user who never ran setup: no include, no key yet; only explicit ssh options."""
    fresh = bench.root / "fresh-config"
    env = {"XDG_CONFIG_HOME": str(fresh)}
    started = bench.start_job("sleep", "600", env=env)   # lets in this user's job-access key
    result = tool.run(started.id, "echo ok", env=env)
    assert result.stdout == b"ok\n", result.stderr
    assert (fresh / "condor-job-proxy" / "id_ed25519").exists()   # made on first use
    assert not (fresh / "condor-job-proxy" / "ssh_config").exists()
    assert not tool.leftovers()


def test_session_directory_is_private_under_tmpdir_and_removed(tool: Tool, job: Job) -> None:
    tmp = tool.bench.root / "tmp"
    result = tool.run(job.id, f"stat -c '%n %a' {tmp}/*.condor_ssh_to_job_*")
    assert result.returncode == 0, result.stderr
    name, mode = result.stdout.decode().split()
    assert Path(name).name.startswith(f"{getpass.getuser()}.condor_ssh_to_job_") and mode == "700"
    assert not tool.leftovers()
    assert wait_until(lambda: not sshd_children(job.process.pid))   # the session has ended


# --- the manual page's examples --------------------------------------------------------------

def test_interactive_shell_greets_with_the_job_and_its_pids(tool: Tool, job: Job) -> None:
    """`condor_ssh_to_job 32.0` on a terminal: the greeting, a shell, logout."""
    typed = b"sleep 1; tty; echo $PWD; exit 5\n"
    result = subprocess.run(["script", "-qec", f"condor_ssh_to_job {job.id}", "/dev/null"],
                            input=typed, capture_output=True, env=tool.env, timeout=60)
    out = result.stdout.decode().replace("\r", "")
    assert f"Welcome to job {job.id} on " in out, out
    assert "Your condor job is running with pid(s) " in out
    assert "/dev/pts/" in out and str(tool.bench.root / "job0") in out
    assert f"Connection to job-{job.id} closed." in out
    assert result.returncode == 5
    assert not tool.leftovers()


def test_sftp_downloads_a_file_from_the_job(tool: Tool, job: Job) -> None:
    (tool.bench.root / "job0" / "outputfile.dat").write_text("results\n")
    batch = b"ls\nget outputfile.dat\n"
    result = tool.run("-ssh", "sftp", job.id, input=batch, cwd=tool.bench.root / "tmp")
    assert result.returncode == 0, result.stderr
    assert b"outputfile.dat" in result.stdout
    assert (tool.bench.root / "tmp" / "outputfile.dat").read_text() == "results\n"


def test_scp_with_remote_as_a_placeholder_host(tool: Tool, job: Job) -> None:
    (tool.bench.root / "job0" / "outputfile.dat").write_bytes(os.urandom(100_000))
    down = tool.bench.root / "down"
    down.mkdir()
    result = tool.run("-ssh", "scp", cluster(job), "remote:outputfile.dat", ".", cwd=down)
    assert result.returncode == 0, result.stderr
    assert (down / "outputfile.dat").read_bytes() == (tool.bench.root / "job0" / "outputfile.dat").read_bytes()
    up = tool.run("-ssh", "scp", cluster(job), str(down / "outputfile.dat"), "anything:uploaded.dat")
    assert up.returncode == 0, up.stderr
    assert (tool.bench.root / "job0" / "uploaded.dat").exists()


@pytest.mark.parametrize("remote", ["{id}:outputfile.dat", "someone@{id}:outputfile.dat"],
                         ids=["job-as-host", "with-login-name"])
def test_rsync_uses_it_as_its_remote_shell(tool: Tool, job: Job, remote: str) -> None:
    """`rsync -v -e "condor_ssh_to_job" 32.0:outputfile.dat .`; rsync may add `-l user`."""
    (tool.bench.root / "job0" / "outputfile.dat").write_bytes(os.urandom(50_000))
    down = tool.bench.root / "down"
    down.mkdir()
    result = subprocess.run(["rsync", "-v", "-e", "condor_ssh_to_job", remote.format(id=job.id),
                             "."], cwd=down, env=tool.env, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (down / "outputfile.dat").read_bytes() == (tool.bench.root / "job0" / "outputfile.dat").read_bytes()


# --- the options ------------------------------------------------------------------------------

def test_help_prints_the_usage(tool: Tool) -> None:
    result = tool.run("-help")
    assert result.returncode == 0
    for option in ("-debug", "-name", "-pool", "-ssh", "-keygen-options", "-shells",
                   "-auto-retry", "-remove-on-interrupt", "-X", "-x"):
        assert option in result.stdout.decode()


def test_debug_writes_debugging_output_to_stderr(tool: Tool, job: Job) -> None:
    result = tool.run("-debug", job.id, "echo ok")
    assert result.stdout == b"ok\n", result.stderr
    err = result.stderr.decode()
    assert f"condor_ssh_to_job: job {job.id}: starter at 127.0.0.1:" in err
    assert f"condor_ssh_to_job: job {job.id}: session open, login user " in err
    assert "condor_ssh_to_job: running: ssh -oUser=" in err
    assert "condor_job_proxy.proxycmd.ssh_to_job.fdrelay" in err


def test_ssh_option_arguments_group_with_single_quotes(tool: Tool, job: Job) -> None:
    """-ssh "ssh -E '<file with spaces>'": the quoted argument stays one argument."""
    log = tool.bench.root / "my logs" / "ssh log"
    log.parent.mkdir()
    result = tool.run("-ssh", f"ssh -v -E '{log}'", job.id, "echo ok")
    assert result.stdout == b"ok\n", result.stderr
    assert "Authenticated to job-" in log.read_text()


def test_ssh_program_that_never_connects_still_cleans_up(tool: Tool, job: Job) -> None:
    result = tool.run("-ssh", "sh -c 'exit 4' placeholder", job.id)
    assert result.returncode == 4
    assert not tool.leftovers()
    assert wait_until(lambda: not sshd_children(job.process.pid))


def test_ssh_command_splits_like_htcondor() -> None:
    assert split_arguments("ssh -v") == ["ssh", "-v"]
    assert split_arguments("scp  -o 'Log Level' 'it''s'") == ["scp", "-o", "Log Level", "it's"]
    assert split_arguments("a'b c'd ''") == ["ab cd", ""]


def test_keygen_options_make_this_sessions_key(tool: Tool, job: Job) -> None:
    """The session's key is made with ssh-keygen and the options; the starter lets it in."""
    log = tool.bench.root / "ssh.log"
    result = tool.run("-keygen-options", "-t rsa -b 3072", "-ssh", f"ssh -v -E {log}",
                      job.id, "echo ok")
    assert result.stdout == b"ok\n", result.stderr
    text = log.read_text()
    assert "condor_ssh_to_job_" in text and "/ssh_key RSA SHA256:" in text
    assert "Authenticated to job-" in text
    assert not tool.leftovers()


def test_bad_keygen_options_fail_the_setup(tool: Tool, job: Job) -> None:
    result = tool.run("-keygen-options", "-t nosuchtype", job.id, "true")
    assert result.returncode == 1
    assert "Failed to create ssh key with ssh-keygen" in result.stderr.decode()
    assert not tool.leftovers()


def test_shells_are_tried_in_order(tool: Tool, job: Job) -> None:
    result = tool.run("-shells", "/no/such/shell,/bin/dash,/bin/bash", job.id, "echo $SHELL")
    assert result.stdout == b"/bin/dash\n", result.stderr


def test_shell_defaults_to_the_clients_shell(tool: Tool, job: Job) -> None:
    result = tool.run(job.id, "echo $SHELL", env={"SHELL": "/bin/dash"})
    assert result.stdout == b"/bin/dash\n", result.stderr


def test_X_turns_x11_forwarding_on_and_x_off(tool: Tool, job: Job) -> None:
    env = {"DISPLAY": ":55"}
    on = tool.run("-X", job.id, "echo $DISPLAY", env=env)
    assert on.stdout.decode().startswith("localhost:"), on.stderr
    off = tool.run("-x", job.id, "echo $DISPLAY", env=env)
    assert off.stdout == b"\n", off.stderr


def test_auto_retry_waits_for_a_job_that_starts_later(tool: Tool, bench: Workbench) -> None:
    err_file = bench.root / "wrapper.err"
    with open(err_file, "wb") as err:
        waiting = tool.popen("-auto-retry", "1", "echo $MARKER", env={RETRY_ENV: "0.2"},
                             stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: "Waiting for job to start..." in err_file.read_text())
        time.sleep(1)   # still waiting: the job has not been submitted
        assert waiting.poll() is None
        bench.start_job("sleep", "600", env={"MARKER": "started-later"})
        out, _ = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0, err_file.read_text()
    assert out == b"started-later\n"
    assert err_file.read_text().count("Waiting for job to start...") == 1


def test_auto_retry_shows_a_live_status_line_on_a_terminal(tool: Tool, bench: Workbench) -> None:
    screen = bench.root / "screen"
    with open(screen, "wb") as out:
        waiting = subprocess.Popen(["script", "-qec", "condor_ssh_to_job -auto-retry 1 'exit 6'",
                                    "/dev/null"], env={**tool.env, RETRY_ENV: "0.2"},
                                   stdin=subprocess.PIPE, stdout=out, stderr=out)
    try:
        assert wait_until(lambda: "job 1.0: not in the queue yet, waited 0:0" in screen.read_text())
        bench.start_job("sleep", "600")
        assert waiting.wait(60) == 6
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert screen.read_text().startswith("Waiting for job to start...")


def test_job_not_started_yet_suggests_auto_retry(tool: Tool, bench: Workbench) -> None:
    """A job in the queue whose starter has not published an address yet (HTCondor: idle)."""
    queue = bench.root / "queue"
    queue.mkdir(exist_ok=True, mode=0o755)
    record = {"cluster": 5, "proc": 0, "owner": getpass.getuser(), "owner_uid": os.getuid(),
              "state": "running", "starter_pid": os.getpid(), "command": ["sleep"]}
    (queue / "5.0.json").write_text(json.dumps(record))
    result = tool.run("5", "true")
    assert result.returncode == 1
    assert result.stderr.decode() == "(Use -auto-retry to keep trying periodically.)\n"


def test_remove_on_interrupt_removes_the_job_on_ctrl_c(tool: Tool, bench: Workbench, job: Job) -> None:
    result = _interrupt_session(tool, job, "-remove-on-interrupt")
    assert result == 1
    assert job.wait(15) == 128 + signal.SIGTERM   # the starter passed the removal to the job
    record = json.loads((bench.root / "queue" / f"{job.id}.json").read_text())
    assert record["state"] == "removed"
    assert not tool.leftovers()


def test_ctrl_c_without_remove_on_interrupt_leaves_the_job_running(tool: Tool, job: Job) -> None:
    assert _interrupt_session(tool, job) == 1
    assert job.process.poll() is None
    assert not tool.leftovers()
    assert tool.run(job.id, "echo still").stdout == b"still\n"


def test_sigterm_ends_the_session_and_cleans_up(tool: Tool, job: Job) -> None:
    session = tool.popen(job.id, "echo ready; sleep 60", stdout=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    assert session.stdout.readline() == b"ready\n"
    session.terminate()
    assert session.wait(15) == 1
    assert not tool.leftovers()
    assert job.process.poll() is None


def test_ssh_killed_by_a_signal_gives_status_one(tool: Tool, job: Job) -> None:
    session = tool.popen(job.id, "echo ready; sleep 60", stdout=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    assert session.stdout.readline() == b"ready\n"
    ssh = _child(session.pid, "ssh")
    os.kill(ssh, signal.SIGKILL)
    assert session.wait(15) == 1
    assert not tool.leftovers()


def test_name_and_pool_go_to_the_htcondor_resolver(tool: Tool, job: Job) -> None:
    for option in ("-name", "-pool"):
        result = tool.run(option, "somewhere", job.id, "true")
        assert result.returncode == 1
        assert "the HTCondor Python bindings are not installed" in result.stderr.decode()


# --- exit status and messages, as HTCondor's tool ------------------------------------------

@pytest.mark.parametrize("args, message", [
    ((), "ERROR: You must specify a job!"),
    (("abc",), "Invalid job id: abc"),
    (("-badflag", "1"), "Unrecognized argument: -badflag"),
    (("-ssh",), "-ssh requires an argument"),
    (("-ssh", "ssh 'unclosed", "1"), "Unbalanced single quote in: ssh 'unclosed"),
], ids=["no-job", "bad-id", "bad-flag", "missing-value", "bad-quote"])
def test_bad_command_lines_exit_2(tool: Tool, args: tuple[str, ...], message: str) -> None:
    result = tool.run(*args)
    assert result.returncode == 2
    assert result.stderr.decode() == message + "\n"


def test_job_not_in_the_queue(tool: Tool) -> None:
    result = tool.run("99.0", "true")
    assert result.returncode == 1
    assert result.stderr.decode() == "Unable to fetch job ad; is it still in the queue?\n"
    assert not tool.leftovers()


def test_another_users_job_is_not_authorized(tool: Tool, bench: Workbench) -> None:
    """A job whose owner is someone else: its starter lets in only that user's key."""
    other = bench.root / "other-user-config"
    stranger_job = bench.start_job("sleep", "600", env={"XDG_CONFIG_HOME": str(other)})
    result = tool.run(stranger_job.id, "true")
    assert result.returncode == 1
    assert result.stderr.decode() == (f"{getpass.getuser()} is not authorized for access to "
                                      f"the starter for job {stranger_job.id}\n")
    assert not tool.leftovers()


def test_completed_job_is_not_running(tool: Tool, bench: Workbench) -> None:
    finished = bench.start_job("sh", "-c", "exit 3")
    assert finished.wait() == 3
    result = tool.run(finished.id, "true")
    assert result.returncode == 1
    assert f"job {finished.id} is not running: it has completed (exit status 3)" in result.stderr.decode()


def test_held_job_names_its_hold_reason() -> None:
    """What a resolver that knows holds (HTCondor's) makes of a held job."""
    held = JobNotRunning("job 3.0 is held", "held", "Policy said so")
    failure = _setup_failure(Request(job=JobId(3, 0)), held)
    assert (str(failure), failure.status) == ('Job is held: "Policy said so".', 1)


# --- a job that is not ours ------------------------------------------------------------------

def test_job_not_ours_goes_to_htcondors_own_tool(tool: Tool, bench: Workbench, job: Job) -> None:
    """A stand-in for HTCondor's condor_ssh_to_job, later on PATH, gets the same argv."""
    condor_bin = bench.root / "condor-bin"
    condor_bin.mkdir()
    record = bench.root / "htcondor-argv"
    stand_in = condor_bin / "condor_ssh_to_job"
    stand_in.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {record}\n"
                        "echo 'Unable to fetch job ad; is it still in the queue?' >&2\nexit 1\n")
    stand_in.chmod(0o755)
    shims = bench.root / "pyenv-shims"   # a version manager's shim for our own console script
    shims.mkdir()
    (shims / "condor_ssh_to_job").write_text('#!/usr/bin/env bash\nexec "$PYENV_ROOT/libexec/pyenv" '
                                             'exec "condor_ssh_to_job" "$@"\n')
    (shims / "condor_ssh_to_job").chmod(0o755)
    env = {"PATH": f"{tool.env['PATH']}:{shims}:{condor_bin}"}
    result = tool.run("-debug", "-auto-retry", "99.0", "echo", "a b", env=env)
    assert result.returncode == 1
    assert record.read_text().splitlines() == ["-debug", "-auto-retry", "99.0", "echo", "a b"]
    record.unlink()
    ours = tool.run(job.id, "echo ours", env=env)   # our own job stays with us
    assert ours.stdout == b"ours\n" and not record.exists()


# --- helpers ----------------------------------------------------------------------------------

def _interrupt_session(tool: Tool, job: Job, *flags: str) -> int:
    """Ctrl-C: SIGINT to the foreground process group (the tool and its ssh)."""
    session = tool.popen(*flags, job.id, "echo ready; sleep 60", stdout=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    assert session.stdout.readline() == b"ready\n"
    os.killpg(session.pid, signal.SIGINT)
    return session.wait(15)


def _child(parent: int, name: str) -> int:
    pids: list[int] = []
    assert wait_until(lambda: pids.extend(_pgrep(parent, name)) or pids)
    return pids[0]


def _pgrep(parent: int, name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(parent), "-x", name], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def test_suspended_job_says_so_and_auto_retry_does_not_wait_for_a_start(tool: Tool,
                                                                        job: Job) -> None:
    suspend = subprocess.run([sys.executable, "-m", "condor_job_proxy.starter", "suspend", job.id],
                             env=tool.bench.env, capture_output=True, timeout=60)
    assert suspend.returncode == 0, suspend.stderr
    result = tool.run(job.id, "true")
    assert result.returncode == 1
    assert "the job is suspended" in result.stderr.decode(), result.stderr
    retried = tool.run("-auto-retry", job.id, "true", timeout=30)
    assert retried.returncode == 1
    assert "Waiting for job to start" not in retried.stderr.decode()
    assert "the job is suspended" in retried.stderr.decode()
