"""``python -m starter.enter SPEC``: one session's sshd, run inside the job's container.

Started by the starter with the session's socket as stdin and stdout (see
``container_session`` for the whole scheme). SPEC is JSON: the container's pid, the session's
directory, the job, the login name, its group line, whether terminals are refused, the job's
pids as seen inside and the shells to try.

The order matters, and each step is what the kernel allows the job's own uid:
1. open the job's namespaces, root and /proc directories while they are reachable;
2. join the user namespace (its owner may), then the others (the user namespace owns them);
3. nest a user namespace that maps the job's uid to itself (an sshd that is uid 0 wants a
   privilege-separation user and setgroups, which a user namespace of one uid cannot give);
   before any chroot, as the kernel refuses a chrooted process a new user namespace;
4. fork the anchor, and it sshd: children are in the job's pid namespace (setns changes only
   children's); sshd takes the container's root and the session's directory as its cwd and
   runs through the host's loader. The anchor reaps what the session orphans and ends with
   sshd; this process waits for it.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time

from .container import KINDS
from .container_session import GROUP, PASSWD, SHELL, session_files, sshd_argv
from .processes import STANDARD_PATH

_CLONE_NEWUSER = 0x10000000
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_LAST_REAPING = 0.5   # seconds the anchor outlives sshd, reaping what ends with it
_LIBC = ctypes.CDLL(None, use_errno=True)


def main(spec: dict) -> int:
    pid = int(spec["pid"])
    joined = [(kind, os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY)) for kind in KINDS
              if os.stat(f"/proc/{pid}/ns/{kind}").st_ino != os.stat(f"/proc/self/ns/{kind}").st_ino]
    root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY)
    process = os.open(f"/proc/{pid}", os.O_PATH | os.O_DIRECTORY)
    proc = os.open("/proc", os.O_PATH | os.O_DIRECTORY)   # the host's, where our pids are
    myself = os.open(str(os.getpid()), os.O_PATH | os.O_DIRECTORY, dir_fd=proc)
    session = os.open(spec["session"], os.O_PATH | os.O_DIRECTORY)
    environment = _environment(pid)
    uid, gid = os.getuid(), os.getgid()
    for kind, fd in joined:
        _call(_LIBC.setns(fd, 0), f"join the job's {kind} namespace")
        os.close(fd)
    cwd = _cwd_inside(process)
    _nest_user_namespace(myself, uid, gid)
    os.fchdir(session)
    go, files_written = os.pipe()
    anchor_pid = os.fork()
    if anchor_pid == 0:
        os.close(files_written)
        _anchor(root, go, spec)
    os.close(go)
    anchor = f"/proc/{_pid_inside(proc, anchor_pid)}/cwd"
    files = session_files(anchor, spec["name"], uid, gid, spec["group"], cwd, environment,
                          spec["job"], spec["shells"])
    for name, text in files.items():
        _write(name, text, 0o700 if name == SHELL else 0o600)
    os.write(files_written, b"1")
    return _wait(anchor_pid)


def _anchor(root: int, go: int, spec: dict) -> None:
    """The session's anchor, in the job's pid namespace: sshd's parent and a subreaper, so
    that what a session orphans is reaped here, not left to the container's first process,
    which may never reap (a job's ``sleep``). It keeps the session's directory as its cwd
    while sshd lives, dumpable and with no capabilities, so that sshd, which has none, may
    follow its /proc/PID/cwd (joining a user namespace made this process undumpable). It
    starts sshd once ``go`` says the session's files are written, and ends with it."""
    try:
        _die_with_parent()
        _call(_LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "become a subreaper")
        if not os.read(go, 1):
            os._exit(1)   # the files could not be written
        dropped, capabilities_dropped = os.pipe()
        sshd = os.fork()
        if sshd == 0:
            os.close(capabilities_dropped)
            os.read(dropped, 1)   # end-of-file once the anchor is ready to be followed
            _exec_sshd(root, f"/proc/{os.getppid()}/cwd", spec)
        header, data = (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()
        _call(_LIBC.capset(header, data), "drop the anchor's capabilities")
        _call(_LIBC.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0), "let sshd read the anchor's cwd")
        null = os.open("/dev/null", os.O_RDWR) if os.path.exists("/dev/null") else None
        for fd in (0, 1, 2):   # the session's connection is sshd's alone
            os.dup2(null, fd) if null is not None else os.close(fd)
        os.close(capabilities_dropped)
        os._exit(_reap_until(sshd))
    finally:
        os._exit(1)


def _reap_until(sshd: int) -> int:
    """Reap every child (sshd and what re-parents here) until sshd ends, then what is still
    ending with it for a moment (its session's shell may outlive it briefly); sshd's status.
    What lives on (``nohup``) goes on under the container's first process."""
    status = 1
    while True:
        try:
            pid, code = os.waitpid(-1, 0)
        except ChildProcessError:
            return status
        if pid == sshd:
            status = os.waitstatus_to_exitcode(code) & 0xff
            break
    deadline = time.monotonic() + _LAST_REAPING
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if not pid:
            time.sleep(0.02)
    return status


def _exec_sshd(root: int, anchor: str, spec: dict) -> None:
    """In the job's pid namespace (the anchor's child), with the container's root."""
    try:
        _die_with_parent()
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY)
        os.fchdir(root)
        os.chroot(".")
        os.fchdir(cwd)
        argv = sshd_argv(anchor, spec["session"], spec["pids"], spec["no_terminal"])
        os.execve(argv[0], argv, {"PATH": STANDARD_PATH, "NSS_WRAPPER_PASSWD": f"{anchor}/{PASSWD}",
                                  "NSS_WRAPPER_GROUP": f"{anchor}/{GROUP}"})
    except OSError as err:
        print(f"condor-job-proxy: cannot start sshd in the job's container: {err}", file=sys.stderr)
    os._exit(1)


def _wait(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) & 0xff


def _environment(pid: int) -> dict[str, str]:
    """The container's environment: what its runtime gave the job's process."""
    with open(f"/proc/{pid}/environ", "rb") as file:
        entries = file.read().split(b"\0")
    pairs = (entry.decode(errors="surrogateescape").partition("=") for entry in entries if entry)
    return {name: value for name, _, value in pairs}


def _nest_user_namespace(myself: int, uid: int, gid: int) -> None:
    """A user namespace in which the job's uid is itself: ``myself`` is our /proc directory,
    opened before the job's mount namespace hid it."""
    _call(_LIBC.unshare(_CLONE_NEWUSER), "make a user namespace for sshd")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} 0 1"), ("gid_map", f"{gid} 0 1")):
        fd = os.open(name, os.O_WRONLY, dir_fd=myself)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def _cwd_inside(process: int) -> str:
    """The job's working directory as its container names it: its cwd below its root, both
    read from the job's mount namespace (a runtime's root may be a path there, as chroot's)."""
    try:
        root, cwd = (os.readlink(name, dir_fd=process) for name in ("root", "cwd"))
    except OSError:
        return "/"
    if root != "/":
        cwd = cwd[len(root):] or "/" if cwd == root or cwd.startswith(root + "/") else "/"
    return cwd if cwd.startswith("/") and not set(cwd) & set(":\n") else "/"   # a passwd field


def _pid_inside(proc: int, pid: int) -> int:
    """Our child's pid in the job's pid namespace (fork gave the one in ours). Bytes only:
    past the job's mount namespace, Python finds no codec it has not loaded yet."""
    fd = os.open(f"{pid}/status", os.O_RDONLY, dir_fd=proc)
    try:
        status = os.read(fd, 65536)
    finally:
        os.close(fd)
    return next(int(line.split()[-1]) for line in status.splitlines() if line.startswith(b"NSpid:"))


def _die_with_parent() -> None:
    _call(_LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "set the death signal")


def _write(name: str, text: str, mode: int) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, text.encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)


def _call(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"cannot {what}: {os.strerror(error)}")


if __name__ == "__main__":
    try:
        sys.exit(main(json.loads(sys.argv[1])))
    except (OSError, ValueError, KeyError) as err:
        print(f"condor-job-proxy: cannot enter the job's container: {err}", file=sys.stderr)
        sys.exit(1)
