"""Waiting for a job that has not started: `ssh job-N.P` on an idle pool job, and
`ssh condor-interactive` on a pool, with a status line that says what the pool is doing.

HTCondor's daemons are stand-ins (tests/htcondor_standin): the test moves the job from idle
to running or held as the schedd would; the starter, chirp publishing, ssh and the proxy are
real.
"""
from __future__ import annotations

import json
import os
import pty
import select
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import wait_for_job_line
from htcondor_standin.execute import job_environment
from test_htcondor_pool import Pool, _me, pool  # noqa: F401 - fixture

HOLD_REASON = "Error from slot1@exec.test: Job has gone over cgroup memory limit of 2048 megabytes."


def _slots(pool: Pool, *memories: int, state: str = "Unclaimed") -> None:
    state_file = json.loads(pool.file.read_text())
    state_file["startds"] = [{"Name": f"slot{i}@exec.test", "State": state, "Cpus": 4,
                              "Memory": memory, "Disk": 10_000_000, "GPUs": 0}
                             for i, memory in enumerate(memories, 1)]
    pool.file.write_text(json.dumps(state_file))


def _change_job(pool: Pool, cluster: int, **attrs) -> None:
    state = json.loads(pool.file.read_text())
    ad = next(a for a in state["schedds"]["ap.test"]["jobs"] if a["ClusterId"] == cluster)
    ad.update(attrs)
    pool.file.write_text(json.dumps(state))


def _waiting(pool: Pool, *args: str, tool: str = "proxy") -> subprocess.Popen:
    """The proxy (or ssh) with waiting on, its stderr in a file: not a terminal, like VS Code's."""
    env = {**pool.env, "CONDOR_JOB_PROXY_WAIT": "60", "CONDOR_JOB_PROXY_WAIT_POLL": "0.2"}
    argv = ([sys.executable, "-m", "condor_job_proxy", *args] if tool == "proxy" else
            ["ssh", "-F", str(pool.ssh_config), "-o", "BatchMode=yes", *args])
    err = open(pool.root / "waiting.err", "wb")
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=err)


def _stderr(pool: Pool) -> list[str]:
    return (pool.root / "waiting.err").read_text().splitlines()


def _start_starter(pool: Pool, cluster: int) -> subprocess.Popen:
    """The job's starter on this host (loopback), as HTCondor starts the job's executable."""
    scratch = pool.root / f"execute{cluster}"
    env = job_environment(scratch, pool.job_ad(cluster), pool.file, "ap.test", "<127.0.0.1:9618>",
                          own={"PYTHONPATH": pool.env["PYTHONPATH"]})
    stderr_file = pool.root / f"starter{cluster}.err"
    with open(stderr_file, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "condor_job_proxy.starter", "run", "--super-users-keys",
             str(pool.root / "no-super-users"), "--", "sleep", "600"],
            cwd=scratch, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    wait_for_job_line(process, stderr_file)
    return process


def _wait_for_line(pool: Pool, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in _stderr(pool)):
        assert time.monotonic() < deadline, _stderr(pool)
        time.sleep(0.1)


def test_ssh_to_idle_job_says_why_it_waits_and_ends_with_the_hold_reason(pool: Pool) -> None:
    _slots(pool, 1024, 2048)
    pool.add_job(5, JobStatus=1, RequestCpus=1, RequestMemory=4096, RequestDisk=1000,
                 CondorJobProxyOwnerKey=pool.public_key())
    waiting = _waiting(pool, "connect", "job-5.0", _me())
    _wait_for_line(pool, "job 5.0: idle")
    _change_job(pool, 5, JobStatus=5, HoldReason=HOLD_REASON)
    assert waiting.wait(30) == 255
    lines = _stderr(pool)
    assert lines[0].startswith("job 5.0: idle; 0 of 2 slots match its requests; 2 have too few "
                               "MB memory (asks 4096, largest 2048), waited 0:0"), lines
    assert lines[-1].startswith(f"condor-job-proxy: job 5.0 is held: {HOLD_REASON} "
                                "(after waiting 0:0"), lines
    assert not any("Traceback" in line for line in lines)


def test_at_a_terminal_ssh_to_idle_job_waits_with_a_live_line(pool: Pool) -> None:
    """No setting and no variable: a person at a terminal gets the wait (batch use does not,
    see test_htcondor_pool's idle case)."""
    _slots(pool, 8192)
    pool.add_job(5, JobStatus=1, RequestMemory=1024, CondorJobProxyOwnerKey=pool.public_key())
    env = {**pool.env, "CONDOR_JOB_PROXY_WAIT_POLL": "0.2"}
    controller, terminal = pty.openpty()
    proxy = subprocess.Popen([sys.executable, "-m", "condor_job_proxy", "connect", "job-5.0",
                              _me()], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + 20
    while seen.count(b"\r\x1b[Kjob 5.0: idle") < 2 and time.monotonic() < deadline:
        if select.select([controller], [], [], 1)[0]:
            try:
                seen += os.read(controller, 4096)
            except OSError:   # the proxy ended and closed the terminal
                break
    _change_job(pool, 5, JobStatus=3)
    assert proxy.wait(30) == 255
    os.close(controller)
    assert seen.count(b"\r\x1b[Kjob 5.0: idle; 1 of 1 slots match") >= 2, seen   # rewritten


def test_ssh_to_idle_job_lands_in_it_once_it_runs(pool: Pool) -> None:
    pool.configure('resolver = "htcondor"\n')
    assert pool.proxy("config", "refresh").returncode == 0
    _slots(pool, 8192)
    pool.add_job(6, JobStatus=1, RequestMemory=1024, WantIOProxy=True,
                 CondorJobProxyOwnerKey=pool.public_key())
    waiting = _waiting(pool, "job-6.0", "echo in-the-job; pwd", tool="ssh")
    _wait_for_line(pool, "job 6.0: idle; 1 of 1 slots match its requests; 1 of those unclaimed")
    _change_job(pool, 6, JobStatus=2, JobCurrentStartDate=int(time.time()))
    starter = _start_starter(pool, 6)
    try:
        out, _ = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, _stderr(pool)
        assert out.decode().splitlines() == ["in-the-job", str(pool.root / "execute6")]
    finally:
        starter.terminate()
        starter.wait(15)


def test_condor_interactive_submits_to_the_schedd_and_removes_a_held_job(pool: Pool) -> None:
    (pool.root / "config" / "condor-job-proxy" / "config.toml").write_text(
        'resolver = "htcondor"\n[interactive]\nlinger = 300\nrequest_memory = 2048\n'
        "submit = ['+ProjectName = \"physics\"']\n")
    waiting = _waiting(pool, "connect", "condor-interactive", _me())
    _wait_for_line(pool, "condor-interactive: submitted job 1.0")
    ad = pool.job_ad(1)
    assert ad["JobStatus"] == 1 and ad["Owner"] == _me()
    assert ad["Cmd"].endswith("condor-job-starter") and ad["TransferExecutable"] is False
    assert ad["Arguments"] == ("'run' '--linger' '300' '--label' 'default memory=2048' '--' "
                               "'sleep' 'infinity'")
    assert ad["WantIOProxy"] is True and ad["CondorJobProxyOwnerKey"] == pool.public_key()
    assert ad["RequestMemory"] == 2048 and ad["ProjectName"] == "physics"
    _wait_for_line(pool, "job 1.0 (condor-interactive): idle")
    _change_job(pool, 1, JobStatus=5, HoldReason=HOLD_REASON)
    assert waiting.wait(30) == 255
    lines = _stderr(pool)
    assert "removed job 1.0" in lines
    assert lines[-1].startswith(f"condor-job-proxy: job 1.0 is held: {HOLD_REASON}"), lines
    assert pool.job_ad(1)["JobStatus"] == 3   # taken out: a held interactive job helps nobody


def test_condor_interactive_reuses_my_idle_job(pool: Pool) -> None:
    (pool.root / "config" / "condor-job-proxy" / "config.toml").write_text(
        'resolver = "htcondor"\n')
    pool.add_job(3, JobStatus=1, CondorJobProxyInteractive="default",
                 CondorJobProxyOwnerKey=pool.public_key())
    waiting = _waiting(pool, "connect", "condor-interactive", _me())
    _wait_for_line(pool, "condor-interactive: reusing job 3.0")
    waiting.terminate()
    waiting.wait(30)
    assert len(json.loads(pool.file.read_text())["schedds"]["ap.test"]["jobs"]) == 1
    assert pool.job_ad(3)["JobStatus"] == 1   # not ours to remove: we did not submit it


def _daemon_sockets(pool: Pool) -> list[Path]:
    include = (pool.root / "config" / "condor-job-proxy" / "ssh_config").read_text()
    line = next(line.strip() for line in include.splitlines()
                if line.strip().startswith("ProxyCommand "))
    base = next(word for word in shlex.split(line) if Path(word).name.startswith("cjp-d-"))
    return list(Path(base).parent.glob(Path(base).name + "-*.sock"))


def test_connect_daemon_leaves_an_idle_job_to_the_waiting_proxy(pool: Pool) -> None:
    (pool.root / "run").mkdir(mode=0o700)   # a private place for the daemon's socket
    # The same environment for every ssh here, so the daemon the first one starts serves all.
    pool.env.update(XDG_RUNTIME_DIR=str(pool.root / "run"), CONDOR_JOB_PROXY_WAIT="60",
                    CONDOR_JOB_PROXY_WAIT_POLL="0.2")
    pool.configure('resolver = "htcondor"\n')
    assert pool.proxy("config", "refresh").returncode == 0
    pool.add_job(6, WantIOProxy=True, CondorJobProxyOwnerKey=pool.public_key())
    starter = _start_starter(pool, 6)
    try:
        first = subprocess.run(["ssh", "-F", str(pool.ssh_config), "-o", "BatchMode=yes",
                                "job-6.0", "true"], env=pool.env, capture_output=True, timeout=60)
        assert first.returncode == 0, first.stderr
        deadline = time.monotonic() + 20
        while not _daemon_sockets(pool):
            assert time.monotonic() < deadline, "the first connect started no daemon"
            time.sleep(0.1)
        pool.add_job(9, JobStatus=1, CondorJobProxyOwnerKey=pool.public_key())
        waiting = _waiting(pool, "job-9.0", "true", tool="ssh")
        _wait_for_line(pool, "job 9.0: idle")   # only the full proxy command waits and says so
        _change_job(pool, 9, JobStatus=5, HoldReason=HOLD_REASON)
        assert waiting.wait(30) == 255
        assert any(f"job 9.0 is held: {HOLD_REASON}" in line for line in _stderr(pool))
    finally:
        subprocess.run([sys.executable, "-m", "condor_job_proxy", "daemon", "--stop"],
                       env=pool.env, capture_output=True, timeout=30)
        starter.terminate()
        starter.wait(15)


def test_interrupted_wait_removes_the_job_it_submitted(pool: Pool) -> None:
    """ssh ends its ProxyCommand with SIGHUP when the user gives up (Ctrl-C, VS Code's cancel)."""
    (pool.root / "config" / "condor-job-proxy" / "config.toml").write_text(
        'resolver = "htcondor"\n')
    waiting = _waiting(pool, "connect", "condor-interactive", _me())
    _wait_for_line(pool, "job 1.0 (condor-interactive): idle")
    waiting.send_signal(signal.SIGHUP)
    assert waiting.wait(30) == 255
    assert pool.job_ad(1)["JobStatus"] == 3
    assert "removed job 1.0" in _stderr(pool)
    assert pool.job_ad(1)["RemoveReason"].endswith("gave up waiting (interrupted)")
