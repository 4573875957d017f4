"""OpenSSH public keys as text: parsing lines, comparing keys, fingerprints."""
from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

from .safepath import UnsafePath, check_links, unsafe

# The key types we take, the one list: a host key is never a security key's (``sk-``).
HOST_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                  "ecdsa-sha2-nistp521")
KEY_TYPES = (*HOST_KEY_TYPES, "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")


_BARE_KEY = re.compile(r"[ \t]*([A-Za-z0-9@.-]+)[ \t]+([A-Za-z0-9+/]+=*)(?:[ \t]|$)")


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
        if field in KEY_TYPES:
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
    return {key for key in map(bare_key, _lines(text)) if key}


def bare_key(line: str) -> str | None:
    """``type base64`` of a line that is exactly a public key (and a comment), else None;
    blanks are spaces and tabs only, as sshd reads them."""
    match = _BARE_KEY.match(line)
    if match is None or match.group(1) not in KEY_TYPES:
        return None
    return normalize(f"{match.group(1)} {match.group(2)}")


def option_lines(text: str) -> int:
    """How many lines of an authorized_keys-style text hold a key but are no bare key line."""
    return sum(1 for line in _lines(text)
               if not line.lstrip().startswith("#") and normalize(line) and not bare_key(line))


def _lines(text: str) -> list[str]:
    """Lines as sshd reads a keys file: ended by a newline alone (a CR before it dropped);
    str.splitlines would also end one at a CR, a form feed or U+2028 inside it."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def fingerprint(key: str) -> str:
    """The SHA256 fingerprint as ssh-keygen -l prints it."""
    import hashlib  # here: the ProxyCommand reads key paths from this module, never hashes
    blob = base64.b64decode(key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def public_key_path(private_key: Path) -> Path:
    """Where OpenSSH keeps a private key's public half: the same name plus ``.pub`` (so
    ``id.work`` has ``id.work.pub``, not ``id.pub``)."""
    return private_key.with_name(private_key.name + ".pub")


def check_key_file(path: str | os.PathLike, what: str = "authorized keys file") -> os.stat_result:
    """The stat of a file of keys that let people in, checked as sshd's StrictModes checks
    one (``safepath``): a regular file owned by the job's user or root, writable by nobody
    else, in directories and through links no other user can change. Otherwise whoever could
    write it (or create it, while it is missing) could let themselves in. Raises UnsafePath."""
    check_links(path, what)
    real = os.path.realpath(path)
    try:
        info = os.stat(real)
    except OSError as err:
        reason = "does not exist" if isinstance(err, FileNotFoundError) else err.strerror
        raise UnsafePath(f"{what} {path} {reason}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePath(f"{what} {path} is not a regular file")
    problem = unsafe(info, sticky_ok=False)
    if problem:
        raise UnsafePath(f"{what} {path} is {problem}")
    for directory in Path(real).parents:
        try:
            problem = unsafe(os.stat(directory), sticky_ok=True)
        except OSError as err:
            problem = f"unreadable ({err.strerror})"
        if problem:
            raise UnsafePath(f"{what} {path} is in {directory}, which is {problem}")
    return info
