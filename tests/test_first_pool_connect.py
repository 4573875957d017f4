"""The first connect to a pool job nobody has reached yet: no refresh, no second try.

HTCondor's ssh-to-job reports its session's login name as ``condor-user`` and, with the
execute node's ``CONDOR_SSH_TO_JOB_FAKE_PASSWD_ENTRY`` on (the default), its sshd takes any
name; only where an admin turned that off must the name be the job user's real one, and that
is learnt once for the pool. The stand-in tool and sshd behave so (shared/reference).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from test_htcondor_native import job, native, ssh  # noqa: F401
from test_htcondor_pool import Pool, _me, pool  # noqa: F401


def refresh(pool: Pool) -> None:
    result = pool.proxy("config", "refresh")
    assert result.returncode == 0, result.stderr


def no_terminal_ssh(pool: Pool, *args: str, tool: str = "ssh") -> subprocess.CompletedProcess:
    """ssh as scripts and VS Code run it: BatchMode, no terminal, shared connections on (in a
    short directory: the test's own is too long a path for a socket)."""
    sockets = tempfile.mkdtemp(prefix="cm", dir="/tmp")
    try:
        return ssh(pool, "-o", "ControlMaster=auto", "-o", f"ControlPath={sockets}/%C",
                   "-o", "ControlPersist=no", *args, tool=tool)
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


def test_first_ssh_scp_and_rsync_to_a_new_pool_job_work_without_refresh(native: Pool,
                                                                      job: Path) -> None:
    refresh(native)     # the include's block for job 32 says User <submitter>
    result = no_terminal_ssh(native, "job-32.0", "pwd")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == str(job)
    (job / "out.txt").write_text("result\n")
    copy = no_terminal_ssh(native, "job-32.0:out.txt", str(native.root / "got.txt"), tool="scp")
    assert copy.returncode == 0, copy.stderr
    rsync = subprocess.run(["rsync", "-a", "-e", f"ssh -F {native.ssh_config} -o BatchMode=yes",
                            "job-32.0:out.txt", str(native.root / "rsynced.txt")],
                           env=native.env, capture_output=True, timeout=90)
    assert rsync.returncode == 0, rsync.stderr
    assert (native.root / "rsynced.txt").read_text() == "result\n"


def test_vscode_style_first_connect_to_a_job_started_after_refresh(native: Pool, job: Path) -> None:
    # No Host block for job 32 yet: ssh sends the local user name, as VS Code's remote does.
    result = ssh(native, "-T", "job-32.0", "bash", input=b"pwd\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == str(job)


def test_any_login_name_reaches_a_job_while_the_fake_passwd_entry_is_on(native: Pool,
                                                                          job: Path) -> None:
    result = ssh(native, "someone-else@job-32.0", "pwd")
    assert result.returncode == 0, result.stderr


def test_a_pool_without_the_fake_entry_teaches_its_login_name_once(native: Pool) -> None:
    """Its execute nodes run jobs as slot1_2, not as the submitter's name the include has:
    the pool's first connect is refused with the right name (and rewrites the include), the
    next job's first connect works."""
    state = json.loads(native.file.read_text())
    state["config"] = {"CONDOR_SSH_TO_JOB_FAKE_PASSWD_ENTRY": "false"}
    native.file.write_text(json.dumps(state))
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        for cluster in (40, 41):
            native.add_job(cluster, Iwd=str(native.root), StandinJobPid=sleeper.pid,
                           StandinJobAccount="slot1_2")
        refresh(native)
        first = ssh(native, "job-40.0", "true")
        assert first.returncode == 255 and "use ssh slot1_2@job-40.0" in first.stderr.decode()
        second = ssh(native, "job-41.0", "pwd")
        assert second.returncode == 0, second.stderr
        assert ssh(native, "job-40.0", "true").returncode == 0
    finally:
        sleeper.kill()
        sleeper.wait()

