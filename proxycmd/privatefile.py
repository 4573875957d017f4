"""Small private state files (known_hosts, session keys, remembered users), written whole."""
from __future__ import annotations

import os
from pathlib import Path


def write_private(target: Path, text: str) -> Path:
    """Replace ``target`` atomically with a 0600 file: readers see the old or the new, whole."""
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(temp, target)
    return target
