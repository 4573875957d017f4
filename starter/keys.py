"""OpenSSH public keys as text: parsing lines, comparing keys, fingerprints."""
from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
              "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
              "sk-ecdsa-sha2-nistp256@openssh.com")


def file_version(info: os.stat_result) -> tuple[int, int, int, int]:
    """A key file's version from its stat: a cache of what it holds is good while this stays
    (a rewrite, even in place and at the same size, changes the times; a replacement the inode)."""
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def path_version(path: str | os.PathLike) -> tuple[int, int, int, int] | None:
    """``file_version`` of the file at ``path`` as it is now; None when it cannot be read."""
    try:
        return file_version(os.stat(path))
    except OSError:
        return None


def normalize(line: str) -> str | None:
    """``type base64`` of a public key line (comment and options dropped), or None if none."""
    fields = line.split()
    for index, field in enumerate(fields[:-1]):
        if field in _KEY_TYPES:
            blob = fields[index + 1]
            try:
                base64.b64decode(blob, validate=True)
            except ValueError:   # binascii.Error, or a str that is not ASCII
                return None
            return f"{field} {blob}"
    return None


def read_keys(text: str) -> set[str]:
    """The public keys of an authorized_keys-style text, read as strictly as the file lets
    people in: a line counts only if it starts with a key type and its base64 (a comment may
    follow). A line with options (``from=``, ``command=``, ``restrict``...) is left out, as
    the starter could not apply them (its sessions' own ForceCommand would override a
    ``command=``); so is any other text that merely holds a key somewhere (a known_hosts line,
    a log), which sshd would not take either."""
    return {key for key in map(bare_key, text.splitlines()) if key}


def bare_key(line: str) -> str | None:
    """``type base64`` of a line that is exactly a public key (and a comment), else None."""
    fields = line.split()
    if len(fields) < 2 or fields[0] not in _KEY_TYPES:
        return None
    return normalize(" ".join(fields[:2]))


def option_lines(text: str) -> int:
    """How many lines of an authorized_keys-style text hold a key but are no bare key line."""
    return sum(1 for line in text.splitlines()
               if not line.lstrip().startswith("#") and normalize(line) and not bare_key(line))


def fingerprint(key: str) -> str:
    """The SHA256 fingerprint as ssh-keygen -l prints it."""
    import hashlib   # here: the ProxyCommand reads key paths from this module, never hashes
    blob = base64.b64decode(key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def public_key_path(private_key: Path) -> Path:
    """Where OpenSSH keeps a private key's public half: the same name plus ``.pub`` (so
    ``id.work`` has ``id.work.pub``, not ``id.pub``)."""
    return private_key.with_name(private_key.name + ".pub")


class UnsafeKeyFile(Exception):
    """A key file sshd's StrictModes would refuse (or a missing one); the message names it."""


def check_key_file(path: str | os.PathLike, what: str = "authorized keys file") -> os.stat_result:
    """The stat of a file of keys that let people in, checked as sshd's StrictModes checks
    one: a regular file owned by the job's user or root, writable by nobody else, in
    directories up to / that are owned by the job's user or root and writable by nobody
    else. Otherwise whoever could write it (or create it, while it is missing) could let
    themselves in. One exception: a sticky directory owned by root or the user (/tmp): there
    nobody can rename or remove an entry that is not theirs, and the entry itself is checked.
    Symbolic links on the way must be the user's or root's too: one that another user
    owns, even in a sticky directory, is theirs to point anywhere. Raises UnsafeKeyFile."""
    _check_links(path, what)
    real = os.path.realpath(path)
    try:
        info = os.stat(real)
    except OSError as err:
        reason = "does not exist" if isinstance(err, FileNotFoundError) else err.strerror
        raise UnsafeKeyFile(f"{what} {path} {reason}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeKeyFile(f"{what} {path} is not a regular file")
    problem = _unsafe(info, sticky_ok=False)
    if problem:
        raise UnsafeKeyFile(f"{what} {path} is {problem}")
    for directory in Path(real).parents:
        try:
            problem = _unsafe(os.stat(directory), sticky_ok=True)
        except OSError as err:
            problem = f"unreadable ({err.strerror})"
        if problem:
            raise UnsafeKeyFile(f"{what} {path} is in {directory}, which is {problem}")
    return info


def _check_links(path: str | os.PathLike, what: str) -> None:
    """Follow ``path`` one component at a time, as the kernel would, and refuse it if a
    symbolic link on the way belongs to someone other than the job's user or root."""
    pending = list(Path(os.path.abspath(path)).parts)
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
            info = os.lstat(candidate)
        except OSError:
            return   # missing or unreadable: the stat that follows says so
        if not stat.S_ISLNK(info.st_mode):
            current = candidate
            continue
        if info.st_uid not in (0, os.getuid()):
            raise UnsafeKeyFile(f"{what} {path} goes through the symbolic link {candidate}, "
                                f"owned by uid {info.st_uid}, not by the job's user or root")
        hops += 1
        if hops > 40:
            raise UnsafeKeyFile(f"{what} {path}: too many levels of symbolic links")
        target = os.readlink(candidate)
        if os.path.isabs(target):
            current = Path("/")
        pending[:0] = list(Path(target).parts)


def _unsafe(info: os.stat_result, sticky_ok: bool) -> str | None:
    if info.st_uid not in (0, os.getuid()):
        return f"owned by uid {info.st_uid}, not by the job's user or root"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (
            sticky_ok and info.st_mode & stat.S_ISVTX):
        return "writable by group or others"
    return None
