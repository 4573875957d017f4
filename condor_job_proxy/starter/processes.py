"""The job's processes, read from /proc: what _CONDOR_JOB_PIDS, accounting and signals act on.

The starter makes itself a child subreaper, so a process that daemonizes (double fork,
setsid) out of the job or a session re-parents to the starter instead of init: every job
and session process, however it was started, stays a descendant of the starter.
"""
from __future__ import annotations

import ctypes
import functools
import os
import shutil
from dataclasses import dataclass

_PR_SET_CHILD_SUBREAPER = 36
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    parent: int
    state: str          # R, S, D, T (stopped), t, Z (zombie), ...
    name: str           # the kernel's comm: at most 15 characters
    cpu_seconds: float  # user + system time of this process
    rss_kb: int
    start_ticks: int    # when it started, in clock ticks since boot: tells a reused pid apart


def become_subreaper() -> None:
    """Make orphaned descendants re-parent to this process (Linux >= 3.4)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


# The directories the starter's own helpers (setpriv, ssh-keygen, sshd) are found in when it
# was given no PATH, as HTCondor starts every job; sessions' sshds run with it too.
STANDARD_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


@functools.cache
def die_with_parent() -> list[str]:
    """An argv prefix that kills the process when its parent (the starter) dies, even by -9."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def snapshot() -> dict[int, ProcInfo]:
    """Every process on the machine, as far as /proc lets us read it."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = read(int(name))
            if info:
                found[info.pid] = info
    return found


def read(pid: int) -> ProcInfo | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields follow the last ')'.
    close = stat.rfind(b")")
    name = stat[stat.find(b"(") + 1:close].decode(errors="replace")
    fields = stat[close + 2:].split()
    return ProcInfo(pid=pid, parent=int(fields[1]), state=fields[0].decode(), name=name,
                    cpu_seconds=(int(fields[11]) + int(fields[12])) / _TICKS,
                    rss_kb=int(fields[21]) * _PAGE_KB, start_ticks=int(fields[19]))


def descendants(root: int, procs: dict[int, ProcInfo]) -> list[int]:
    """Every descendant of ``root`` (not root itself), in pid order."""
    children: dict[int, list[int]] = {}
    for info in procs.values():
        children.setdefault(info.parent, []).append(info.pid)
    found, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return sorted(found)


def job_pids(main_pid: int) -> list[int]:
    """The main pid first, then every live descendant, in pid order.

    A session's _CONDOR_JOB_PIDS is read on the connect's critical path: the kernel's lists of
    each process's children (CONFIG_PROC_CHILDREN) walk only the job's own tree, where reading
    every process on the machine takes milliseconds on a busy one.
    """
    if not _HAVE_CHILDREN_FILES:
        return [main_pid, *descendants(main_pid, snapshot())]
    return [main_pid, *sorted(_tree(main_pid))]


def subtree(root: int) -> dict[int, ProcInfo]:
    """``snapshot()`` of ``root``'s descendants only (not root), read through the kernel's
    children lists: the starter accounts for its job after every burst of sessions, and an
    execute node may run thousands of other processes."""
    if not _HAVE_CHILDREN_FILES:
        everything = snapshot()
        return {pid: everything[pid] for pid in descendants(root, everything)}
    found = {}
    for pid in _tree(root):
        info = read(pid)
        if info:
            found[pid] = info
    return found


def has_children(pid: int) -> bool:
    """Whether ``pid`` has started any process (that is still there)."""
    if not _HAVE_CHILDREN_FILES:
        return any(info.parent == pid for info in snapshot().values())
    return bool(children(pid))


def _tree(root: int) -> list[int]:
    """The pids below ``root``, parents before their children."""
    found, stack = [], children(root)
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children(pid))
    return found


def children(pid: int) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []      # gone meanwhile
    children = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as file:
                children += map(int, file.read().split())
        except OSError:
            pass
    return children


_HAVE_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def reap(pid: int) -> bool:
    """Collect a zombie child so it does not linger; False if it was not ours to collect."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False


def family(roots: set[int]) -> set[int]:
    """``roots`` and every live descendant of theirs, zombies left out: what a starter's keeper
    ends (a process that re-parented to the starter and lost its mark is still a child of a
    root, or of a pid namespace's first process)."""
    procs = snapshot()
    children: dict[int, list[int]] = {}
    for info in procs.values():
        children.setdefault(info.parent, []).append(info.pid)
    found, stack = set(), [pid for pid in roots if pid in procs]
    while stack:
        pid = stack.pop()
        if pid not in found and procs[pid].state not in "ZX":
            found.add(pid)
            stack.extend(children.get(pid, []))
    return found


def marked(environment_entry: bytes, command_text: bytes | None = None) -> list[int]:
    """This user's processes whose environment holds ``environment_entry`` or whose command
    line holds ``command_text``: how a session's processes are found once its sshd is gone
    (they may have left its process group, and the starter's tree if the starter died), and
    a job's once its starter is gone."""
    uid, found = os.getuid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/environ", "rb") as file:
                environ = file.read()
            with open(f"/proc/{name}/cmdline", "rb") as file:
                cmdline = file.read()
        except OSError:
            continue
        if environment_entry in environ.split(b"\0") or \
                (command_text is not None and command_text in cmdline):
            found.append(int(name))
    return found
