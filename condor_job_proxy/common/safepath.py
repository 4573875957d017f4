"""Paths no other user can change: the rule sshd's StrictModes applies, for every file and
directory the starter trusts (keys files, its TMPDIR, the queue directory).

Whoever can write a directory, or owns one on the way, or owns a symbolic link on the way,
can put another file in place of the one checked: a keys file that lets them in, a session
script that runs as the job's user. So every component must be owned by the job's user, by
root, or by HTCondor's own account (which owns execute directories), and writable by nobody
else, except a sticky directory (/tmp), where nobody can rename an entry that is not theirs.
"""
from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

SERVICE_ACCOUNT = "condor"   # HTCondor's daemons' account: EXECUTE directories are its


class UnsafePath(Exception):
    """A path another user could change; the message names it."""


def check_directory(path: str | os.PathLike, what: str) -> Path:
    """The real path of directory ``path`` once it and every directory above it, and every
    symbolic link on the way, is safe by the rule above; else UnsafePath."""
    check_links(path, what)
    real = Path(os.path.realpath(path))
    for directory in (real, *real.parents):
        try:
            problem = unsafe(os.stat(directory), sticky_ok=True)
        except OSError as err:
            problem = f"unreadable ({err.strerror})"
        if problem:
            where = "is" if directory == real else f"is in {directory}, which is"
            raise UnsafePath(f"{what} {path} {where} {problem}")
    return real


def check_links(path: str | os.PathLike, what: str) -> None:
    """Follow ``path`` one component at a time, as the kernel does (a ``..`` after a link
    climbs from the link's target), and refuse it if a symbolic link on the way belongs to
    someone the rule does not trust."""
    text = os.fspath(path)
    pending = list(Path(text if os.path.isabs(text) else os.path.join(os.getcwd(), text)).parts)
    current, hops = Path("/"), 0
    while pending:
        part = pending.pop(0)
        if part in ("/", "."):
            continue
        if part == "..":
            current = current.parent
            continue
        candidate = current / part
        try:
            problem = unsafe(os.stat(current), sticky_ok=True)   # who may rename ``part``
            info = os.lstat(candidate)
        except OSError:
            return   # missing or unreadable: the stat that follows says so
        if problem and stat.S_ISLNK(info.st_mode):
            raise UnsafePath(f"{what} {path} goes through the symbolic link {candidate}, in "
                             f"{current}, which is {problem}")
        if not stat.S_ISLNK(info.st_mode):
            current = candidate
            continue
        if info.st_uid not in trusted_uids():
            raise UnsafePath(f"{what} {path} goes through the symbolic link {candidate}, "
                             f"owned by uid {info.st_uid}, not by the job's user or root")
        hops += 1
        if hops > 40:
            raise UnsafePath(f"{what} {path}: too many levels of symbolic links")
        target = os.readlink(candidate)
        if os.path.isabs(target):
            current = Path("/")
        pending[:0] = list(Path(target).parts)


def unsafe(info: os.stat_result, sticky_ok: bool) -> str | None:
    """What is wrong with a file or directory of this stat, or None."""
    if info.st_uid not in trusted_uids():
        return f"owned by uid {info.st_uid}, not by the job's user or root"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (
            sticky_ok and info.st_mode & stat.S_ISVTX):
        return "writable by group or others"
    return None


def trusted_uids() -> tuple[int, ...]:
    """Root, this process's user, and HTCondor's account where there is one."""
    try:
        service = (pwd.getpwnam(SERVICE_ACCOUNT).pw_uid,)
    except KeyError:
        service = ()
    return (0, os.getuid(), *service)
