"""The embedded local queue: one small JSON record per job in a directory.

Records are published atomically (written aside, then linked or renamed into place), so no
lock is needed: a new cluster id is claimed by ``link``, which fails if another starter took
it first. A directory may be shared by several local users (sticky, like /tmp); a record is
then trusted only if its file belongs to the uid it names and nobody else can write it, so
no user can plant a job or a starter key for another.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from .jobid import JobId, parse_job_id

RUNNING = "running"
SUSPENDED = "suspended"
EXITED = "exited"          # the job's main process ended; sessions are still open
COMPLETED = "completed"
REMOVED = "removed"
LIVE_STATES = (RUNNING, SUSPENDED, EXITED)   # the starter is still there and answers
_SUFFIX = ".json"


class UntrustedRecord(Exception):
    """A record whose file or directory someone other than its owner could have written."""


class LocalQueue:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def submit(self, record: dict) -> JobId:
        """Claim the next cluster id (proc 0) and publish the record under it."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        temp = self._write_temp(record)
        try:
            cluster = self._highest_cluster() + 1
            while True:
                job = JobId(cluster, 0)
                record.update(cluster=job.cluster, proc=job.proc)
                temp.write_text(json.dumps(record))
                try:
                    os.link(temp, self._path(job))
                    return job
                except FileExistsError:
                    cluster += 1
        finally:
            temp.unlink(missing_ok=True)

    def update(self, job: JobId, record: dict) -> None:
        temp = self._write_temp(record)
        try:
            os.replace(temp, self._path(job))
        except OSError:
            temp.unlink(missing_ok=True)
            raise

    def read(self, job: JobId) -> dict | None:
        """The job's record, None if the queue has no such job; UntrustedRecord if forged-able."""
        try:
            fd = os.open(self._path(job), os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            if err.errno == 40:  # ELOOP: a symlink planted in place of a record
                raise UntrustedRecord(f"{self._path(job)} is a symbolic link") from None
            raise
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            record = _parse(file.read())
        self._check_trust(job, record, info)
        return record

    def records(self) -> list[dict]:
        """Every trusted record, by job id; untrusted or half-written ones are skipped."""
        found = []
        for job in self._job_ids():
            try:
                record = self.read(job)
            except (UntrustedRecord, ValueError, OSError):
                continue
            if record is not None:
                found.append(record)
        return found

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
        if (record.get("cluster"), record.get("proc")) != (job.cluster, job.proc):
            raise UntrustedRecord(f"record of job {job} names another job")

    def _job_ids(self) -> list[JobId]:
        ids = []
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        for name in names:
            if name.endswith(_SUFFIX) and not name.startswith("."):
                try:
                    ids.append(parse_job_id(name[:-len(_SUFFIX)]))
                except ValueError:
                    continue
        return sorted(ids)

    def _highest_cluster(self) -> int:
        return max((job.cluster for job in self._job_ids()), default=0)

    def _path(self, job: JobId) -> Path:
        return self.directory / f"{job}{_SUFFIX}"

    def _write_temp(self, record: dict) -> Path:
        temp = self.directory / f".{os.getpid()}-{os.urandom(6).hex()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "w") as file:
                os.fchmod(file.fileno(), 0o644)   # whatever the umask, owners of other jobs read it
                json.dump(record, file)
        except BaseException:   # a full disk: no half-written file left to take more room
            temp.unlink(missing_ok=True)
            raise
        return temp


def _parse(data: bytes) -> dict:
    try:
        record = json.loads(data)
    except ValueError:
        raise ValueError("half-written or corrupt record") from None
    if not isinstance(record, dict):
        raise ValueError("corrupt record")
    return record
