"""Small private state files (known_hosts, session keys, remembered users), written whole."""
from __future__ import annotations

import os
import threading
from pathlib import Path


def temp_name(target: Path) -> Path:
    """A name beside ``target`` that no other process or thread (the connect daemon serves
    connects in threads) uses at the same time."""
    return target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def write_private(target: Path, text: str) -> Path:
    """Replace ``target`` atomically with a 0600 file: readers see the old or the new, whole.
    A file that already holds ``text`` is left as it is: a reconnect rewrites nothing."""
    try:
        if target.read_text() == text:
            return target
    except (OSError, UnicodeDecodeError):
        pass
    temp = temp_name(target)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(temp, target)
    return target
