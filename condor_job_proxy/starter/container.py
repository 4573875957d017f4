"""Whether the job runs in a container of its own, and which: what sessions must enter.

A job that ``unshare``s, or runs Podman, Docker or Apptainer with a user namespace, puts its
processes in Linux namespaces other than the starter's. The starter finds them from the job's
own processes (``/proc/PID/ns/*``), with no privilege: it runs as the job's uid, which owns the
job's user namespace and so may join it and, from there, the namespaces it owns
(``starter/enter.py`` does that for each session).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from . import processes

# The kinds a session joins, the user namespace first: joining it gives the rights to join
# the others, which it owns. cgroup and time namespaces are left as they are.
KINDS = ("user", "ipc", "uts", "net", "pid", "mnt")
# Process names (the kernel's 15-character comm) on the way from the job's main process to
# its container's, and the runtime each names.
_RUNTIMES = {"podman": "podman", "conmon": "podman", "docker": "docker",
             "containerd-shim": "docker", "apptainer": "apptainer", "singularity": "singularity",
             "starter-suid": "singularity", "unshare": "unshare"}
# What runtimes put in their container's environment.
_ENVIRONMENT_RUNTIMES = {b"container=podman": "podman", b"container=docker": "docker",
                         b"APPTAINER_CONTAINER": "apptainer",
                         b"SINGULARITY_CONTAINER": "singularity"}


@dataclass(frozen=True)
class Container:
    """The job's process that sessions take their namespaces, root and cwd from."""
    pid: int                      # as the starter sees it
    runtime: str                  # podman, docker, apptainer, singularity, unshare, namespaces
    kinds: tuple[str, ...]        # the namespaces that differ from the starter's
    refusal: str | None = None    # why sessions cannot enter it (they stay beside the job)

    def describe(self) -> str:
        """doctor's words for it (what the queue record carries)."""
        if self.refusal:
            return f"sessions land beside the job's {self.runtime} container: {self.refusal}"
        return f"sessions land inside the job's {self.runtime} container"


def find(job_pids: list[int]) -> Container | None:
    """The job's container, if one of its processes lives in namespaces of its own: of those
    in a pid namespace of their own, else in a mount namespace of their own, the one in the
    most namespaces that are not the starter's, the first such (main pid first). A runtime
    has helpers in some namespaces of their own (rootless Podman's mount and user namespace
    around its containers, its network helpers); the container's process is in them all."""
    mine = _namespaces("self")
    best: tuple[int, int, tuple[str, ...]] | None = None
    for pid in dict.fromkeys(job_pids):
        theirs = _namespaces(str(pid))
        if theirs is None:
            continue
        kinds = tuple(kind for kind in KINDS if theirs[kind] != mine[kind])
        rank = len(kinds) + (10 if "pid" in kinds else 0) if "mnt" in kinds or "pid" in kinds else 0
        if rank and (best is None or rank > best[0]):
            best = (rank, pid, kinds)
    return _container(best[1], best[2], job_pids) if best else None


def pids_inside(container: Container) -> list[int]:
    """The job's pids as its container sees them: its process first, then that process's
    descendants (what a runtime runs outside the container is not there to see)."""
    inside = []
    for pid in processes.job_pids(container.pid):
        number = _pid_inside(pid)
        if number:
            inside.append(number)
    return inside


def adopted(main_pid: int, sessions: set[int]) -> list[int]:
    """Job processes outside the main process's tree: those that left it and re-parented to
    the starter (a runtime's monitor, as Podman's conmon, which holds the container), with
    their descendants. Sessions are the starter's children too, but not the job."""
    found = []
    for child in processes.children(os.getpid()):
        if child != main_pid and child not in sessions:
            found += processes.job_pids(child)
    return found


def _container(pid: int, kinds: tuple[str, ...], job_pids: list[int]) -> Container:
    runtime = _runtime(pid, job_pids)
    return Container(pid, runtime, kinds, _refusal(pid, kinds))


def _refusal(pid: int, kinds: tuple[str, ...]) -> str | None:
    """Why a session could not enter: joining needs the job's own user namespace, and an sshd
    that runs as uid 0 (a starter run as root) would need what only the host's root has;
    sshd cannot run without /dev/null (it would fail with only "Connection reset")."""
    if "user" not in kinds:
        return "it has no user namespace of its own, which the job's uid could join"
    if os.getuid() == 0:
        return "the starter runs as root"
    if "mnt" in kinds and not os.path.exists(f"/proc/{pid}/root/dev/null"):
        return "the container has no /dev/null"
    from . import sshd
    if not sshd.first_place(sshd.NSS_WRAPPER_PLACES):
        return "libnss-wrapper is not installed on this machine (apt-get install libnss-wrapper)"
    return None


def _runtime(pid: int, job_pids: list[int]) -> str:
    """From the container's environment, else from the names of the job's processes up to it."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            environ = file.read().split(b"\0")
    except OSError:
        environ = []
    for entry in environ:
        for mark, runtime in _ENVIRONMENT_RUNTIMES.items():
            if entry == mark or entry.startswith(mark + b"="):
                return runtime
    for other in job_pids:
        info = processes.read(other)
        if info and info.name in _RUNTIMES:
            return _RUNTIMES[info.name]
        if other == pid:
            break
    return "namespaces"


def _namespaces(pid: str) -> dict[str, int] | None:
    found = {kind: _namespace_of(pid, kind) for kind in KINDS}
    return None if None in found.values() else found   # type: ignore[return-value]


def _namespace_of(pid: str, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def _pid_inside(pid: int) -> int | None:
    """The last NSpid field: the process's number in its innermost pid namespace."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as file:
            for line in file:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return None
