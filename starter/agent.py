"""Run a job under the starter: launch it, publish it in the queue, serve sessions, record its end."""
from __future__ import annotations

import errno
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import processes, sshd
from .publish import Publisher, read_key_files
from .queue import COMPLETED, RUNNING
from .server import SessionServer, StarterIdentity
from .session import JobContext

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StarterError(Exception):
    """The job could not be started; one line for the user."""


@dataclass
class JobOptions:
    command: list[str]
    publisher: Publisher
    authorized_keys_files: list[Path] = field(default_factory=list)
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    port_range: tuple[int, int] | None = None   # (first, last): the first free one is used
    max_sessions: int = 64


def run_job(options: JobOptions) -> int:
    """Run the job to its end and return its exit status (128+N if killed by signal N)."""
    host = sshd.probe()
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # sshd's privilege-separation dir
    private = Path(tempfile.mkdtemp(prefix="cjp-starter-"))
    try:
        identity, host_key = _generate_keys(private)
        listener = _listen(options.listen_host, options.listen_port, options.port_range)
        try:
            job_proc = _launch(options.command)
        except OSError as err:
            listener.close()
            raise StarterError(f"cannot run {options.command[0]}: {err.strerror}") from None
        return _supervise(options, host, identity, host_key, listener, job_proc)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _supervise(options: JobOptions, host: sshd.SshdHost, identity: StarterIdentity,
               host_key: tuple[bytes, str], listener: socket.socket,
               job_proc: subprocess.Popen) -> int:
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, lambda num, _frame: job_proc.send_signal(num))
    publisher = options.publisher
    record = _initial_record(options.command, job_proc.pid, identity.public)
    context = JobContext(job="", cwd=record["cwd"], environment=dict(os.environ),
                         host_key_private=host_key[0], host_key_public=host_key[1], host=host,
                         pids=lambda: processes.job_pids(job_proc.pid))
    server = SessionServer(listener, context, record["owner"], identity,
                           lambda: publisher.authorized_keys() |
                           read_key_files(options.authorized_keys_files),
                           options.max_sessions)
    record["starter_address"] = server.address
    job = publisher.submit(record)
    context.job = str(job)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"job {job} running: ssh {job.host()}", file=sys.stderr, flush=True)
    returncode = job_proc.wait()
    status = returncode if returncode >= 0 else 128 - returncode
    listener.close()
    record.update(state=COMPLETED, exit_status=status, end_time=time.time(), pids=[])
    publisher.update(job, record)
    return status


def _initial_record(command: list[str], pid: int, starter_key: str) -> dict:
    uid = os.getuid()
    try:
        owner = pwd.getpwuid(uid).pw_name
    except KeyError:
        owner = os.environ.get("USER") or f"uid{uid}"
    return {
        "owner": owner, "owner_uid": uid, "pids": [pid], "cwd": os.getcwd(), "state": RUNNING,
        "command": command, "start_time": time.time(), "starter_pid": os.getpid(),
        "starter_key": starter_key, "host": socket.gethostname(),
    }


def _launch(command: list[str]) -> subprocess.Popen:
    """Start the job in the current directory with the current environment."""
    return subprocess.Popen(command)


def _listen(host: str, port: int, port_range: tuple[int, int] | None = None) -> socket.socket:
    """Listen on ``port``, or on the first free port of ``port_range`` (a site's firewall hole)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    first, last = port_range or (port, port)
    for candidate in range(first, last + 1):
        try:
            return socket.create_server((host, candidate), family=family, backlog=128)
        except OSError as err:
            if err.errno != errno.EADDRINUSE or candidate == last:
                where = f"{first}-{last}" if port_range else str(port)
                raise StarterError(f"cannot listen on {host}:{where}: {err.strerror}") from None
    raise StarterError(f"empty port range {first}-{last}")


def _generate_keys(private: Path) -> tuple[StarterIdentity, tuple[bytes, str]]:
    """The starter's signing key and the sessions' sshd host key, made once, ahead of sessions."""
    for name in ("starter_key", "host_key"):
        proc = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
                               "-f", str(private / name)], capture_output=True)
        if proc.returncode != 0:
            raise StarterError(f"ssh-keygen failed: {proc.stderr.decode(errors='replace').strip()}")
    identity = StarterIdentity(str(private / "starter_key"),
                               _public_line(private / "starter_key.pub"))
    host_key = ((private / "host_key").read_bytes(), _public_line(private / "host_key.pub"))
    return identity, host_key


def _public_line(path: Path) -> str:
    return " ".join(path.read_text().split()[:2])

