"""Where a starter publishes its job: the interface, and the embedded local queue behind it.

A publisher assigns (or learns) the job id, makes the starter's address and public key
findable by the proxy, and says which keys the job lets in by default. The local queue is
one backend; an HTCondor job ad (through chirp) is another.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from ..common import paths
from ..common.jobid import JobId
from ..common.job_links import link_job_names
from ..common.keys import check_key_file, file_version, option_lines, public_key_path, read_keys
from ..common.names import user_of_uid
from ..common.safepath import UnsafePath
from ..common.queue import LocalQueue
from .stderr import log


class Publisher(Protocol):
    def submit(self, record: dict) -> JobId:
        """Publish a new running job's record; return its id."""

    def update(self, job: JobId, record: dict) -> None:
        """Publish a changed record (state, pids, exit status)."""

    def authorized_keys(self) -> set[str]:
        """Keys allowed in by default (the owner's); read per request, so new keys count."""

    @property
    def directory(self) -> Path | None:
        """Where ``update`` writes, which must have room for it (None: nowhere local)."""


class LocalPublisher:
    """The embedded local queue; the running user's own job-access key is the owner's."""

    def __init__(self, queue_dir: Path) -> None:
        self.queue = LocalQueue(queue_dir)

    def submit(self, record: dict) -> JobId:
        """Record the job; for its owner's own job, link its names to the owner's key so a
        client that opens IdentityFile first (asyncssh) reaches it before any refresh."""
        job = self.queue.submit(record)
        if record.get("owner") == user_of_uid(os.getuid()):
            link_job_names(job)
        return job

    def update(self, job: JobId, record: dict) -> None:
        self.queue.update(job, record)

    @property
    def directory(self) -> Path | None:
        return self.queue.directory

    def authorized_keys(self) -> set[str]:
        return read_key_files([public_key_path(paths.user_key_path())])


def read_key_files(files: list[Path], what: str = "authorized keys file") -> set[str]:
    """Public keys from authorized_keys-style files, each checked as sshd's StrictModes would
    on every read; a missing, unreadable or unsafe file counts as empty (an unsafe one is
    reported, once)."""
    keys: set[str] = set()
    for path in files:
        keys |= _keys_in(Path(path), what)
    return keys


# Every handshake asks for the authorized keys: a file is parsed again only once it changed.
_parsed: dict[Path, tuple[tuple[int, int, int, int], frozenset[str]]] = {}
_reported: dict[Path, str] = {}   # what was last said about an unsafe file, said once


def _keys_in(path: Path, what: str) -> frozenset[str]:
    try:
        info = check_key_file(path, what)
    except UnsafePath as err:
        if os.path.lexists(path) and _reported.get(path) != str(err):
            _reported[path] = str(err)
            log(f"{err}: its keys are ignored")
        return frozenset()
    _reported.pop(path, None)
    stamp = file_version(info)
    known = _parsed.get(path)
    if known and known[0] == stamp:
        return known[1]
    try:
        text = _read_checked(path, info)
    except OSError:
        return frozenset()
    keys = frozenset(read_keys(text))
    ignored = option_lines(text)
    if ignored:
        log(f"{what} {path}: {ignored} line(s) with options (from=, command=, restrict...) or "
            "other text before the key are ignored; the starter lets in bare key lines only")
    _parsed[path] = (stamp, keys)
    return keys


def _read_checked(path: Path, checked: os.stat_result) -> str:
    """The text of the very file that was checked (not one swapped in since, nor a FIFO)."""
    fd = os.open(os.path.realpath(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    # newline="": no CR read as a line's end, since sshd ends lines at a newline only
    with os.fdopen(fd, encoding="utf-8", errors="replace", newline="") as file:
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != (checked.st_dev, checked.st_ino):
            raise FileNotFoundError(f"{path} was replaced while it was read")
        return file.read()
