"""Per-job known_hosts files: the host keys we authenticated (or recorded), pinned before ssh checks.

One file per job host, never the user's own known_hosts: a job's keys say nothing about any
other host, and a job that goes away takes its file's meaning with it.
"""
from __future__ import annotations

from pathlib import Path

from starter import paths

from .privatefile import write_private


def known_hosts_dir() -> Path:
    return paths.state_dir() / "known_hosts"


def job_file(host: str, target: Path | None = None) -> Path:
    """The job's known_hosts file: the one the generated config names, or the default."""
    return target or known_hosts_dir() / host


def pin(host: str, host_key: str, target: Path | None = None, note: str = "") -> Path:
    """Write ``host``'s only accepted keys (one a line), atomically; ssh reads them after kex.

    ``note`` becomes a comment line saying where the keys came from.
    """
    target = job_file(host, target)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = [f"# {note}\n"] if note else []
    lines += [f"{host} {key}\n" for key in host_key.splitlines() if key.strip()]
    return write_private(target, "".join(lines))



def read(path: Path) -> tuple[str, list[str]]:
    """(the note, the ``<type> <base64>`` keys) of a file ``pin`` wrote; empty when there is none."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return "", []
    note = lines[0][2:] if lines and lines[0].startswith("# ") else ""
    keys = [" ".join(line.split()[1:3]) for line in lines
            if line.strip() and not line.startswith("#") and len(line.split()) >= 3]
    return note, keys
