"""Per-job known_hosts files: the authenticated session host key, pinned before ssh checks it."""
from __future__ import annotations

import os
from pathlib import Path

from starter import paths


def known_hosts_dir() -> Path:
    return paths.state_dir() / "known_hosts"


def pin(host: str, host_key: str, target: Path | None = None) -> Path:
    """Write ``host``'s only accepted key, atomically; ssh reads it after the key exchange."""
    target = target or known_hosts_dir() / host
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(f"{host} {host_key}\n")
    os.replace(temp, target)
    return target
