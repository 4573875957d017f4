"""Sweeping up after a starter that was killed (-9) before it could clean up.

A starter keeps its private directory (``cjp-starter-*``: its signing key, its pid, the
sessions' shared files and one directory per session) under TMPDIR, and lists the job's
processes there (pid and start time), refreshed as they change; every job process carries the
directory in its environment too (``JOB_ENV``), as HTCondor marks its jobs' processes. When a
starter is killed its keeper (``keeper``) ends what it left running at once; the next starter
of the same user sharing that TMPDIR does the same for any starter whose keeper died too, and
removes the directories whose starter is gone.
Starters before 2026-12 kept each session's directory beside their own, with the pids of
the starter and of its sshd: those are swept too.
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from ..common.files import replace_file
from . import processes
from .session import SESSION_PREFIX, end_processes

STARTER_PREFIX = "cjp-starter-"
PROCESSES_FILE = "processes"
STARTER_PID_FILE = "starter.pid"
_SSHD_PID_FILE = "sshd.pid"   # in a session directory of a starter before 2026-12
_UNFINISHED_SECONDS = 60   # a directory with no pid file yet, older than this, was abandoned
# In every job process's environment: its starter's private directory. It finds the processes
# that left the job's tree when their starter died (or that re-parented to it since its last list).
JOB_ENV = "CONDOR_JOB_PROXY_JOB"
_PASSES = 10   # processes may start others while they are being killed: look again, this often


def write_processes(directory: Path, infos: list[processes.ProcInfo]) -> None:
    """Record the job's processes (atomically) for whoever sweeps up after a dead starter."""
    text = "".join(f"{p.pid} {p.start_ticks}\n" for p in infos)
    replace_file(directory / PROCESSES_FILE, text)


def sweep(tmpdir: str | None = None) -> list[str]:
    """Remove this user's stale starter and session directories; return what was removed."""
    base = Path(tmpdir or tempfile.gettempdir())
    removed = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return []
    for path in entries:
        if path.name.startswith(STARTER_PREFIX) and _mine(path) and _stale_starter(path):
            end_starter(path)
        elif path.name.startswith(SESSION_PREFIX) and _mine(path) and _stale_session(path):
            end_processes(path)
        else:
            continue
        remove(path)
        removed.append(path.name)
    return removed


def end_starter(path: Path) -> int:
    """SIGKILL every process a dead starter (private directory ``path``) left running: those it
    listed last, those that carry its mark, whatever they started, its sessions' processes; the
    number of processes killed. A pid namespace's first process dies only by SIGKILL from
    outside, and takes the whole namespace with it."""
    mark = f"{JOB_ENV}={path}".encode()
    killed: set[int] = set()
    for _ in range(_PASSES):   # the list is read again: a killed pid may come back as another
        found = processes.family(_listed(path / PROCESSES_FILE) | set(processes.marked(mark)))
        if not found:
            break
        for pid in found:   # stopped first, so that none starts another while we kill
            _kill(pid, signal.SIGSTOP)
        for pid in found:
            _kill(pid, signal.SIGKILL)
        killed |= found
    for session in path.glob(f"{SESSION_PREFIX}*"):
        end_processes(session)
    return len(killed)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _mine(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return info.st_uid == os.getuid() and path.is_dir() and not path.is_symlink()


def _stale_starter(path: Path) -> bool:
    pid = _read_pid(path / STARTER_PID_FILE)
    if pid is None:
        return _older_than(path, _UNFINISHED_SECONDS)
    return not _runs(pid, "starter")


def _stale_session(path: Path) -> bool:
    sshd = _read_pid(path / _SSHD_PID_FILE)
    if sshd is not None:
        return not _runs(sshd, str(path))   # sshd's command line names its session directory
    starter = _read_pid(path / STARTER_PID_FILE)
    if starter is None:
        return _older_than(path, _UNFINISHED_SECONDS)
    return not _runs(starter, "starter")


def _listed(listing: Path) -> set[int]:
    """The listed processes that still run as the same process (pid and start time), ours."""
    try:
        lines = listing.read_text().splitlines()
    except OSError:
        return set()
    found = set()
    for line in lines:
        try:
            pid, start = map(int, line.split())
        except ValueError:
            continue
        info = processes.read(pid)
        if info and info.start_ticks == start and info.state not in "ZX" and _owned(pid):
            found.add(pid)
    return found


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def _owned(pid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}").st_uid == os.getuid()
    except OSError:
        return False


def _runs(pid: int, marker: str) -> bool:
    """Whether ``pid`` is alive and its command line mentions ``marker`` (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return marker.encode() in cmdline


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False
