"""Per-job identity links: the private key ssh should offer for one job host.

ssh reads ``IdentityFile`` only after the ProxyCommand has connected, so the generated config
can name ``<state>/identities/%n`` and the proxy points that name at the key this session
needs just before it hands ssh the socket: an EC2 job's key pair file, the session key a
pool's own ssh-to-job issued, or else your job-access key. The link always exists once the
proxy has run, so ssh never warns about a missing identity, and it is re-pointed on every
connect, so a stale one never makes ssh offer the wrong key.
"""
from __future__ import annotations

import os
from pathlib import Path

from starter import paths

from .privatefile import temp_name


def identities_dir() -> Path:
    return paths.state_dir() / "identities"


def point(host: str, key_file: str, target: Path | None = None) -> Path:
    """Make the job's identity name a link to ``key_file``."""
    link = target or identities_dir() / host
    wanted = os.path.abspath(key_file)
    try:
        if os.readlink(link) == wanted:
            return link
    except OSError:
        pass
    link.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = temp_name(link)
    temp.unlink(missing_ok=True)
    os.symlink(wanted, temp)
    os.replace(temp, link)
    return link
