"""Fixtures: real jobs under real starters, a user set up with real ssh configs, real accounts.

Nothing is mocked: every test runs OpenSSH's ssh, sshd, scp, sftp and rsync against jobs
started by ``condor-job-starter`` and connects through ``condor-job-proxy``.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jobstart import end_job, wait_for_job_line

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Job:
    id: str
    host: str
    process: subprocess.Popen
    stderr_file: Path

    @property
    def stderr(self) -> str:
        return self.stderr_file.read_text()

    def wait(self, timeout: float = 15) -> int:
        return self.process.wait(timeout)


@dataclass
class Workbench:
    """One user's machine: their dirs, queue, ssh config and jobs, all under a tmp dir."""
    root: Path
    env: dict[str, str]
    ssh_config: Path
    jobs: list[Job] = field(default_factory=list)

    def proxy(self, *args: str, input: bytes | None = None, check: bool = False,
              timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "condor_job_proxy", *args], env=self.env,
                              input=input, capture_output=True, check=check, timeout=timeout)

    def start_job(self, *command: str, cwd: Path | None = None, env: dict | None = None,
                  starter_args: tuple[str, ...] = (), refresh: bool = True) -> Job:
        cwd = cwd or self.root / f"job{len(self.jobs)}"
        cwd.mkdir(exist_ok=True)
        stderr_file = self.root / f"starter{len(self.jobs)}.err"
        with open(stderr_file, "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "condor_job_proxy.starter", "run", *starter_args, "--", *command],
                cwd=cwd, env={**self.env, **(env or {})}, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err)
        job_id = wait_for_job_line(process, stderr_file)
        job = Job(job_id, f"job-{job_id}", process, stderr_file)
        self.jobs.append(job)
        if refresh:
            self.proxy("config", "refresh", check=True)
        return job

    def ssh(self, *args: str, input: bytes | None = None, tool: str = "ssh",
            timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([tool, "-F", str(self.ssh_config), "-o", "BatchMode=yes", *args],
                              env=self.env, input=input, capture_output=True, timeout=timeout)

    def stop(self) -> None:
        self.proxy("daemon", "--stop")
        for job in self.jobs:
            end_job(job.process)


@pytest.fixture
def bench(tmp_path: Path) -> Workbench:
    """A set-up user (key, include, ssh config) with an empty local queue."""
    env = dict(os.environ)
    # ssh runs the ProxyCommand with bash, which reads ~/.bashrc when its stdin is a socket and
    # SHLVL is below 2 (Debian's build): a PATH set there would give the daemon another
    # environment than the one tests send it. SHLVL=1, as under a login shell, keeps it out.
    env["SHLVL"] = "1"
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_STATE_HOME=str(tmp_path / "state"),
               XDG_RUNTIME_DIR=str(tmp_path / "run"), CONDOR_JOB_PROXY_QUEUE=str(tmp_path / "queue"),
               TMPDIR=str(tmp_path / "tmp"), PYTHONPATH=str(ROOT))  # this checkout's code
    (tmp_path / "tmp").mkdir()
    (tmp_path / "run").mkdir(mode=0o700)
    workbench = Workbench(tmp_path, env, tmp_path / "ssh_config")
    # Sessions here end when ssh does, so tests can see them go; shared connections (the
    # default) are tested in test_generated_config.py.
    settings = tmp_path / "config" / "condor-job-proxy" / "config.toml"
    settings.parent.mkdir(parents=True)
    settings.write_text("control_master = false\n")
    workbench.proxy("setup", "--yes", "--ssh-config", str(workbench.ssh_config), check=True)
    yield workbench
    workbench.stop()


@pytest.fixture
def job(bench: Workbench) -> Job:
    """A running job with a marker in its environment, in its own working directory."""
    return bench.start_job("sleep", "600", env={"MARKER": "only-in-the-job"})


def session_leftovers(bench: Workbench) -> list[str]:
    """Session directories still present in the bench's TMPDIR (in a starter's directory)."""
    return sorted(p.name for p in (bench.root / "tmp").glob("cjp-starter-*/cjp-session-*"))


def sshd_children(starter_pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(starter_pid), "-x", "sshd"],
                         capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def wait_until(predicate, timeout: float = 10, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def require(*programs: str) -> None:
    missing = [p for p in programs if not shutil.which(p) and not Path(p).exists()]
    if missing:
        pytest.fail(f"missing programs {missing}: run .ci/run or apt-get install openssh-server rsync")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def can_connect(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False
