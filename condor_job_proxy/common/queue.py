"""The embedded local queue: one small JSON record per job in a directory.

Records are published atomically (written aside, then linked or renamed into place), so no
lock is needed: a new cluster id is claimed by ``link``, which fails if another starter took
it first. A directory may be shared by several local users (sticky, like /tmp); a record is
then trusted only if its file belongs to the uid it names and nobody else can write it, so
no user can plant a job or a starter key for another.

Every other local user can still write records of their own, and files of any name, into a
shared queue. So a record is parsed at this boundary: a file that is not a regular file named
``<cluster>.<proc>.json`` for an id in HTCondor's range, or whose fields are not of their
types (ids and pids integers, the state one of ours, the address an IP address and port, the
starter key a key), is ignored, for listing and for id allocation alike; and the job's owner
is the local name of the uid that owns the file, never the record's own word for it.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Iterator

from .files import replace_file
from .jobid import MAX_ID, JobId, parse_job_id
from .keys import normalize
from .names import is_login_name, printable, uid_of_user, user_of_uid
from .safepath import UnsafePath, check_directory

RUNNING = "running"
SUSPENDED = "suspended"
EXITED = "exited"          # the job's main process ended; sessions are still open
COMPLETED = "completed"
REMOVED = "removed"
LIVE_STATES = (RUNNING, SUSPENDED, EXITED)   # the starter is still there and answers
STATES = (*LIVE_STATES, COMPLETED, REMOVED)
_SUFFIX = ".json"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_PORT = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}:([1-9][0-9]{{0,4}})")
# Ours are a few hundred bytes plus the job's command line (ARG_MAX: 2 MiB on most Linux
# systems, escaped in JSON); a planted giant is not read.
_MAX_RECORD = 8 << 20
_RECORD_MODE = 0o644   # whatever the umask: owners of other jobs read the queue


class UntrustedRecord(Exception):
    """A record whose file or directory someone other than its owner could have written."""


class LocalQueue:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.ignored: list[str] = []   # why the last records() skipped files (for --debug)

    def prepare(self) -> None:
        """Make the directory if missing and refuse it (ValueError) unless safe: the starter
        calls this before the job runs, and ``submit`` again before it publishes."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        try:   # whoever could rename its entries could swap this job's record for another
            check_directory(self.directory, "queue directory")
        except UnsafePath as err:
            raise ValueError(f"{err}: another user could swap your job's record; use a "
                             "directory of yours, or root's (mkdir -m 1777)") from None

    def submit(self, record: dict) -> JobId:
        """Claim a free cluster id (proc 0) and publish the record under it."""
        self.prepare()
        temp = self._write_temp(record)
        try:
            for cluster in self._free_clusters():
                job = JobId(cluster, 0)
                record.update(cluster=job.cluster, proc=job.proc)
                temp.write_text(json.dumps(record))
                try:
                    os.link(temp, self._path(job))
                    return job
                except FileExistsError:
                    continue
            raise OSError(f"no free cluster id left in {self.directory}")
        finally:
            temp.unlink(missing_ok=True)

    def update(self, job: JobId, record: dict) -> None:
        replace_file(self._path(job), json.dumps(record), _RECORD_MODE)

    def read(self, job: JobId, names: dict[int, str | None] | None = None) -> dict | None:
        """The job's record, None if the queue has no such job; UntrustedRecord if forged-able,
        ValueError if it is not a record. Its "owner" is the file's owner's local name (None
        when the uid has none); ``names`` keeps the uids looked up, for one listing."""
        try:
            fd = os.open(self._path(job), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            if err.errno == 40:  # ELOOP: a symlink planted in place of a record
                raise UntrustedRecord(f"{self._path(job)} is a symbolic link") from None
            raise
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):   # a FIFO would block every reader
                raise ValueError(f"{self._path(job)} is not a regular file")
            if info.st_size > _MAX_RECORD:
                raise ValueError("not a record (too large)")
            record = _parse(file.read(info.st_size + 1))   # grown since: cut, so corrupt
        self._check_trust(job, record, info)
        names = {} if names is None else names
        if info.st_uid not in names:
            names[info.st_uid] = user_of_uid(info.st_uid)
        record["owner"] = _owner_name(info.st_uid, names[info.st_uid], record.get("owner"))
        return record

    def records(self) -> list[dict]:
        """Every trusted record, by job id; anything else in the directory is skipped (and
        said in ``ignored``)."""
        self.ignored = []
        found: list[dict] = []
        names: dict[int, str | None] = {}
        for job in self._job_ids():
            try:
                record = self.read(job, names)
            except (UntrustedRecord, ValueError, OSError) as err:
                self._ignore(f"{job}{_SUFFIX}", err)
                continue
            if record is not None:
                found.append(record)
        self._remember_highest(max((record["cluster"] for record in found), default=0))
        return found

    def _remember_highest(self, cluster: int) -> None:
        """Note the highest cluster id this user has seen in this queue (its listings and
        refreshes), so that no job of theirs takes an id the generated config may still name
        for another user's job, or a shared connection still leads to: ids are never reused,
        as in HTCondor, whatever others delete."""
        if cluster <= self._seen_highest():
            return
        seen = self._seen_file()
        try:
            seen.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            replace_file(seen, f"{cluster}\n")
        except OSError:
            pass   # a convenience: a full or read-only state dir costs only this guard

    def _seen_highest(self) -> int:
        try:
            return int(self._seen_file().read_text())
        except (OSError, ValueError):
            return 0

    def _seen_file(self) -> Path:
        import hashlib
        from . import paths
        name = hashlib.sha256(str(self.directory.resolve()).encode()).hexdigest()[:16]
        return paths.state_dir() / "queue-ids" / name

    def _check_trust(self, job: JobId, record: dict, info: os.stat_result) -> None:
        owner_uid = record.get("owner_uid")
        if info.st_uid != owner_uid:
            raise UntrustedRecord(f"record of job {job} is owned by uid {info.st_uid}, "
                                  f"not by the job's owner (uid {owner_uid})")
        if info.st_mode & 0o022:
            raise UntrustedRecord(f"record of job {job} is writable by others")
        dir_info = os.stat(self.directory)
        if dir_info.st_mode & 0o002 and not dir_info.st_mode & stat.S_ISVTX:
            raise UntrustedRecord(f"queue directory {self.directory} is writable by everyone "
                                  "but not sticky (chmod +t it)")
        if dir_info.st_uid not in (0, owner_uid):   # a directory's owner may rename anything in it
            raise UntrustedRecord(f"queue directory {self.directory} belongs to uid "
                                  f"{dir_info.st_uid}, who could swap the record of job {job}")
        if (record.get("cluster"), record.get("proc")) != (job.cluster, job.proc):
            raise UntrustedRecord(f"record of job {job} names another job")

    def _names(self) -> list[str]:
        try:
            return os.listdir(self.directory)
        except FileNotFoundError:
            return []

    def _job_ids(self) -> list[JobId]:
        """The ids of the files named as records are (``<cluster>.<proc>.json``, in range)."""
        ids = []
        for name in self._names():
            if name.startswith("."):
                continue   # a record being written (``_write_temp``)
            job = _record_id(name)
            if job is None:
                self._ignore(name, "not named <cluster>.<proc>.json with ids in HTCondor's range")
            else:
                ids.append(job)
        return sorted(ids)

    def _free_clusters(self) -> Iterator[int]:
        """Cluster ids to try, in order: after the highest of the valid records (and of those
        this user has seen), up to HTCondor's limit, then from 1; ids whose file name is
        taken (by anything) skipped."""
        taken = set(self._names())
        highest = max(max((record["cluster"] for record in self.records()), default=0),
                      self._seen_highest())
        for cluster in itertools.chain(range(highest + 1, MAX_ID + 1), range(1, highest + 1)):
            if f"{cluster}.0{_SUFFIX}" not in taken:
                yield cluster

    def _ignore(self, name: str, why: object) -> None:
        self.ignored.append(f"ignored {printable(repr(name), 120)} in {self.directory}: "
                            f"{printable(why, 200)}")

    def _path(self, job: JobId) -> Path:
        return self.directory / f"{job}{_SUFFIX}"

    def _write_temp(self, record: dict) -> Path:
        temp = self.directory / f".{os.getpid()}-{os.urandom(6).hex()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _RECORD_MODE)
        try:
            with os.fdopen(fd, "w") as file:
                os.fchmod(file.fileno(), _RECORD_MODE)
                json.dump(record, file)
        except BaseException:   # a full disk: no half-written file left to take more room
            temp.unlink(missing_ok=True)
            raise
        return temp



def starter_problem(record: dict) -> str:
    """Why the record's starter is not there to answer for it ("" when it is): the process is
    gone, or it runs as another uid than the one owning the record."""
    pid, uid = record["starter_pid"], record["owner_uid"]
    runs_as = _process_uid(pid)
    if runs_as is None:
        return f"its starter (pid {pid}) is gone"
    if runs_as >= 0 and runs_as != uid:
        return (f"its starter's pid {pid} runs as uid {runs_as}, not as the record's owner "
                f"(uid {uid})")
    return ""


def _process_uid(pid: int) -> int | None:
    """The uid ``pid`` runs as; None if there is no such process; -1 if it exists but its
    owner cannot be seen (/proc mounted with hidepid, or no /proc)."""
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass   # someone else's process: it exists
    return -1


def _record_id(name: str) -> JobId | None:
    """The job id a file name stands for, if it is a record's name: ``<cluster>.<proc>.json``
    exactly as we write it (no node, no leading zeros, cluster from 1, both in range)."""
    if not name.endswith(_SUFFIX):
        return None
    try:
        job = parse_job_id(name[:-len(_SUFFIX)])
    except ValueError:
        return None
    if job.node is not None or job.cluster < 1 or f"{job}{_SUFFIX}" != name:
        return None
    return job


def _owner_name(uid: int, name: str | None, recorded: object) -> str | None:
    """The login name of the record file's owner, ``name`` as looked up here. Only for a uid
    with no passwd entry may the record name its owner itself (a starter under libnss-wrapper,
    whose sessions' sshd knows that name): a name that passes the rule and is no account's
    here, so it cannot pass for another user; for our own uid, any name that passes the rule."""
    if name is not None or not is_login_name(recorded):
        return name
    if uid == os.getuid() or uid_of_user(recorded) is None:
        return recorded
    return None


def _parse(data: bytes) -> dict:
    """A record of the types its fields must have; ValueError naming the first that is not."""
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):   # RecursionError: deeply nested JSON
        raise ValueError("half-written or corrupt record") from None
    if not isinstance(record, dict):
        raise ValueError("corrupt record")
    for key in _REQUIRED:
        if key not in record:
            raise ValueError(f"corrupt record: no {key}")
    for key, value in record.items():
        check = _FIELDS.get(key)
        if check is not None and not check(value):
            raise ValueError(f"corrupt record: {key} is {printable(repr(value), 80)}")
    return record


def _integer(value: object, low: int = 0, high: int = MAX_ID) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def _text(value: object) -> bool:
    return isinstance(value, str) and "\0" not in value


def _address(value: object) -> bool:
    """Empty (not published yet), ``a.b.c.d:port`` or ``[v6]:port``: what the starter's
    listener says, never a name to look up or a word with syntax in it."""
    if value == "":
        return True
    if not isinstance(value, str):
        return False
    match = _IPV4_PORT.fullmatch(value)
    if match:
        return int(match.group(1)) < 65536
    host, sep, port = value.rpartition(":")
    if not (host.startswith("[") and host.endswith("]") and "%" not in host   # no scope id
            and port.isascii() and port.isdigit() and 0 < int(port[:6]) < 65536):
        return False
    import ipaddress  # here: the listing's IPv4 addresses need no module
    try:
        ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        return False
    return True


_REQUIRED = ("cluster", "proc", "owner_uid", "state", "starter_pid")
_FIELDS = {
    "cluster": lambda v: _integer(v, 1), "proc": _integer, "owner_uid": lambda v: _integer(v, 0, 2**32 - 2),
    "starter_pid": lambda v: _integer(v, 1), "sessions": _integer, "memory_kb": lambda v: _integer(v, 0, 2**63),
    "exit_status": lambda v: v is None or _integer(v, -255, 1 << 16),
    "state": lambda v: v in STATES, "state_before_suspend": lambda v: v in STATES,
    "start_time": _number, "job_end_time": _number, "cpu_seconds": _number,
    "starter_address": _address, "starter_key": lambda v: isinstance(v, str) and normalize(v) == v,
    "host_key": lambda v: isinstance(v, str) and normalize(v) == v,
    "pids": lambda v: isinstance(v, list) and all(_integer(pid, 1) for pid in v),
    "command": lambda v: isinstance(v, list) and all(map(_text, v)),
    "cwd": _text, "host": _text, "label": _text, "reason": _text,
    "no_terminal": lambda v: v is None or _text(v),
    "container": lambda v: v is None or _text(v),
}
