"""Run a job under the starter: launch it, publish it in the queue, serve sessions, record its end."""
from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import container, keeper, leftovers, processes, session_files, sshd
from ..common.files import write_private
from ..common.keys import check_key_file
from ..common.safepath import UnsafePath, check_directory
from .lifecycle import REMOVE_SIGNALS, JobLifecycle, Limits
from .publish import Publisher, read_key_files
from ..common.queue import RUNNING, LocalQueue
from .server import Room, SessionServer, StarterIdentity, tmpdir_room
from .session_files import JobContext
from .stderr import log, say


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
    limits: Limits = field(default_factory=Limits)
    label: str = ""   # kept in the record: how `ssh condor-interactive` finds its job again


def run_job(options: JobOptions) -> int:
    """Run the job to its end and return its exit status (128+N if killed by signal N)."""
    for path in options.authorized_keys_files:
        try:
            check_key_file(path)
        except UnsafePath as err:
            raise StarterError(str(err)) from None
    try:   # its sessions' setup script and keys live there: nobody else may swap them
        check_directory(tempfile.gettempdir(), "TMPDIR")
    except UnsafePath as err:
        raise StarterError(f"{err}: another user could replace the sessions' files there; "
                           "set TMPDIR to a directory of yours") from None
    if options.publisher.directory:   # the job's record goes there: refused before the job runs
        LocalQueue(options.publisher.directory).prepare()
    job_env = dict(os.environ)   # as given: HTCondor gives a job no PATH, and so do we
    os.environ.setdefault("PATH", processes.STANDARD_PATH)   # for the starter's own helpers
    host = sshd.probe()
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # sshd's privilege-separation dir
    for name in leftovers.sweep():
        log(f"removed {name}, left behind by a starter that was killed")
    private = Path(tempfile.mkdtemp(prefix=leftovers.STARTER_PREFIX))
    keeper_pipe = None
    try:
        (private / leftovers.STARTER_PID_FILE).write_text(f"{os.getpid()}\n")
        keeper_pipe = keeper.start(private)   # before we become a subreaper: not our child
        processes.become_subreaper()
        job_env[leftovers.JOB_ENV] = str(private)   # the job's mark, inherited by what it starts
        _name_the_nameless(host, private)
        identity, host_key = _generate_keys(private)
        listener = _listen(options.listen_host, options.listen_port, options.port_range)
        try:
            job_proc = _launch(options.command, job_env)
        except OSError as err:
            listener.close()
            raise StarterError(f"cannot run {options.command[0]}: {err.strerror}") from None
        open_files = _raise_open_file_limit()   # after the launch: the job keeps the one it had
        return _supervise(options, host, identity, host_key, listener, job_proc, private, job_env,
                          open_files)
    finally:
        shutil.rmtree(private, ignore_errors=True)
        if keeper_pipe is not None:
            os.close(keeper_pipe)   # the keeper finds nothing left and exits


def _supervise(options: JobOptions, host: sshd.SshdHost, identity: StarterIdentity,
               host_key: str, listener: socket.socket,
               job_proc: subprocess.Popen, private: Path, job_env: dict[str, str],
               open_files: tuple[int, int]) -> int:
    early: list[int] = []   # signals that arrive before the lifecycle takes over
    for signum in (*REMOVE_SIGNALS, signal.SIGTSTP, signal.SIGCONT):
        signal.signal(signum, lambda num, _frame: early.append(num))
    publisher = options.publisher
    record = _initial_record(options.command, job_proc.pid, identity.public, host.user_name,
                             host_key)
    record["no_terminal"] = host.no_terminal   # doctor reports it; each session's banner says it
    if options.label:
        record["label"] = options.label
    context = JobContext(job="", cwd=record["cwd"], environment=job_env,
                         host_key_public=host_key, host=host,
                         pids=lambda: processes.job_pids(job_proc.pid), directory=private,
                         open_files=open_files)
    rooms = {"tmpdir": tmpdir_room()}
    if publisher.directory:
        rooms["queue"] = Room(f"the queue directory ({publisher.directory})", publisher.directory)
    server = SessionServer(listener, context, record["owner"], identity,
                           lambda: publisher.authorized_keys() |
                           read_key_files(options.authorized_keys_files),
                           options.max_sessions, rooms=rooms)
    record["starter_address"] = server.address
    context.adopted = lambda: container.adopted(job_proc.pid, server.session_pids())
    try:
        job = publisher.submit(record)
    except OSError as err:
        where = rooms.get("queue", tmpdir_room()).name
        raise StarterError(f"cannot record the job in {where}: {err.strerror or err}") from None
    context.job = str(job)
    session_files.write_shared_files(context)
    lifecycle = JobLifecycle(job, job_proc, server, publisher, record, options.limits,
                             private)
    lifecycle.install()
    for signum in early:
        signal.raise_signal(signum)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    say(f"job {job} running: ssh {job.host()}")
    if host.no_terminal:
        log(f"job {job} {host.no_terminal}")
    return lifecycle.run()


def _initial_record(command: list[str], pid: int, starter_key: str, owner: str,
                    host_key: str) -> dict:
    """``host_key``, the sessions' sshd host key, is published beside the starter key, so a
    client can have it certified before it connects (``condor_job_proxy/proxycmd/hostca.py``)."""
    return {
        "owner": owner, "owner_uid": os.getuid(), "pids": [pid], "cwd": os.getcwd(), "state": RUNNING,
        "sessions": 0, "memory_kb": 0, "cpu_seconds": 0.0,
        "command": command, "start_time": time.time(), "starter_pid": os.getpid(),
        "starter_key": starter_key, "host_key": host_key, "host": socket.gethostname(),
    }


def _name_the_nameless(host: sshd.SshdHost, private: Path) -> None:
    """Give the starter's own helpers (ssh-keygen) a passwd entry if the job user has none.

    OpenSSH's tools refuse to run for a uid without one ("No user exists for uid N");
    libnss-wrapper supplies one without root. Only the starter's helpers get it (through
    its environment, set after the job's was saved); the sessions' sshds are given the same
    files (``session_files``).
    """
    if host.has_passwd_entry:
        return
    if not host.nss_wrapper:
        raise StarterError(f"uid {os.getuid()} has no passwd entry, which ssh-keygen and sshd need; "
                           "install libnss-wrapper (Debian: apt-get install libnss-wrapper) "
                           "or give the job's user an account")
    write_private(private / "passwd", host.passwd_line + "\n", 0o600)
    write_private(private / "group", host.group_line + "\n", 0o600)
    os.environ.update(LD_PRELOAD=host.nss_wrapper, NSS_WRAPPER_PASSWD=str(private / "passwd"),
                      NSS_WRAPPER_GROUP=str(private / "group"))


def _launch(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start the job in the current directory with the current environment.

    The job is killed if the starter dies (even by SIGKILL): it must not run unsupervised.
    A command is looked up on the job's PATH, which HTCondor does not set: then, as for
    execvp, in the default /bin:/usr/bin (not the starter's own PATH).
    """
    if not shutil.which(command[0], path=env.get("PATH", os.defpath)):
        raise FileNotFoundError(2, "command not found")
    return subprocess.Popen([*processes.die_with_parent(), *command], env=env)


def _raise_open_file_limit() -> tuple[int, int]:
    """Raise the starter's soft open-file limit to its hard one, so that its bookkeeping has
    file descriptors to spare whatever connections come in; the limit it had, which the job
    and its sessions keep."""
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits[1], limits[1]))
    except (ValueError, OSError):
        pass   # an unlimited hard limit some kernels refuse as a soft one: keep what we have
    return limits


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


def _generate_keys(private: Path) -> tuple[StarterIdentity, str]:
    """The starter's signing key and the sessions' sshd host key (its public line), made once,
    ahead of sessions."""
    for name in ("starter_key", "host_key"):
        proc = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
                               "-f", str(private / name)], capture_output=True)
        if proc.returncode != 0:
            raise StarterError(f"ssh-keygen failed: {proc.stderr.decode(errors='replace').strip()}")
    identity = StarterIdentity(str(private / "starter_key"),
                               _public_line(private / "starter_key.pub"))
    return identity, _public_line(private / "host_key.pub")


def _public_line(path: Path) -> str:
    return " ".join(path.read_text().split()[:2])

