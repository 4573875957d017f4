"""OpenSSH public keys as text: parsing lines, comparing keys, fingerprints."""
from __future__ import annotations

import base64
import os
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
    """All public keys in an authorized_keys-style text."""
    keys = (normalize(line) for line in text.splitlines() if not line.lstrip().startswith("#"))
    return {key for key in keys if key}


def fingerprint(key: str) -> str:
    """The SHA256 fingerprint as ssh-keygen -l prints it."""
    import hashlib   # here: the ProxyCommand reads key paths from this module, never hashes
    blob = base64.b64decode(key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def public_key_path(private_key: Path) -> Path:
    """Where OpenSSH keeps a private key's public half: the same name plus ``.pub`` (so
    ``id.work`` has ``id.work.pub``, not ``id.pub``)."""
    return private_key.with_name(private_key.name + ".pub")
