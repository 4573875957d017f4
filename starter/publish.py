"""Where a starter publishes its job: the interface, and the embedded local queue behind it.

A publisher assigns (or learns) the job id, makes the starter's address and public key
findable by the proxy, and says which keys the job lets in by default. The local queue is
one backend; an HTCondor job ad (through chirp) is another.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from . import paths
from .jobid import JobId
from .keys import path_version, public_key_path, read_keys
from .queue import LocalQueue


class Publisher(Protocol):
    def submit(self, record: dict) -> JobId:
        """Publish a new running job's record; return its id."""

    def update(self, job: JobId, record: dict) -> None:
        """Publish a changed record (state, pids, exit status)."""

    def authorized_keys(self) -> set[str]:
        """Keys allowed in by default (the owner's); read per request, so new keys count."""


class LocalPublisher:
    """The embedded local queue; the running user's own job-access key is the owner's."""

    def __init__(self, queue_dir: Path) -> None:
        self.queue = LocalQueue(queue_dir)

    def submit(self, record: dict) -> JobId:
        return self.queue.submit(record)

    def update(self, job: JobId, record: dict) -> None:
        self.queue.update(job, record)

    def authorized_keys(self) -> set[str]:
        return read_key_files([public_key_path(paths.user_key_path())])


def read_key_files(files: list[Path]) -> set[str]:
    """Public keys from authorized_keys-style files; unreadable files count as empty."""
    keys: set[str] = set()
    for path in files:
        keys |= _keys_in(Path(path))
    return keys


# Every handshake asks for the authorized keys: a file is parsed again only once it changed.
_parsed: dict[Path, tuple[tuple[int, int, int, int], frozenset[str]]] = {}


def _keys_in(path: Path) -> frozenset[str]:
    stamp = path_version(path)
    if stamp is None:
        return frozenset()
    known = _parsed.get(path)
    if known and known[0] == stamp:
        return known[1]
    try:
        keys = frozenset(read_keys(path.read_text()))
    except OSError:
        return frozenset()
    _parsed[path] = (stamp, keys)
    return keys
