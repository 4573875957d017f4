"""Writing our own files and directories: the one atomic writer and the one private-directory rule.

Every file is written whole into a temporary name beside it and renamed into place, so a
reader (ssh, a concurrent connect, the daemon's threads, another job's starter reading the
queue) sees the old content or the new, never part of one. A private directory is a real
directory (not a link to one) of ours that nobody else may enter: 0700, our uid.
"""
from __future__ import annotations

import os
import stat
import threading
from pathlib import Path


def temp_name(target: Path) -> Path:
    """A name beside ``target`` that no other process or thread uses at the same time."""
    return target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def replace_file(target: Path, text: str, mode: int = 0o600) -> Path:
    """Replace ``target`` atomically with ``text`` in a file of ``mode`` (whatever the umask)."""
    temp = temp_name(target)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(text.encode("utf-8", "surrogateescape"))
        os.replace(temp, target)
    except BaseException:   # a full disk: no half-written file left to take more room
        temp.unlink(missing_ok=True)
        raise
    return target


def write_private(target: Path, text: str, mode: int = 0o600) -> Path:
    """A file of ``mode`` (0600 unless said) holding ``text``, replaced atomically; one that
    already holds it is left alone (a reconnect rewrites nothing)."""
    try:
        if target.read_text(errors="surrogateescape") == text:
            return target
    except (OSError, UnicodeDecodeError):
        pass
    return replace_file(target, text, mode)


def make_private_dir(directory: Path) -> Path:
    """``directory`` (and its parents) created 0700, and made 0700 if it was not."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    return directory


def is_private(info: os.stat_result) -> bool:
    """Whether a stat result (lstat: not a link to one) is a directory of ours that no one else
    may enter."""
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            and stat.S_IMODE(info.st_mode) & 0o077 == 0)


def private_dir_problem(directory: Path, create: bool = True) -> str | None:
    """Why ``directory`` is not a private directory, or None when it is (or, if ``create``
    and it did not exist, now is). The fast client's ``--private-dir`` makes the same check
    without importing this (condor_job_proxy/proxycmd/daemon/quick.c and quick.py)."""
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        if not create:
            return None       # made when needed (ssh's check before each use creates it)
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return f"{directory} is not a directory of yours"
    return None if is_private(info) else f"{directory} is open to other users"
