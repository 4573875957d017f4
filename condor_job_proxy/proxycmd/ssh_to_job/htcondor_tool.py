"""Finding HTCondor's own ``condor_ssh_to_job`` on PATH, never ours by mistake.

Our package installs a ``condor_ssh_to_job`` too, so a plain PATH lookup may find ours (or a
version manager's shim that leads back to it). HTCondor's tool is the first one on PATH that
is neither: not this process's script, not a script that names our package, not a pyenv shim.
"""
from __future__ import annotations

import os
import sys

TOOL = "condor_ssh_to_job"
_OUR_MARK = b"condor_job_proxy"
_SHIM_MARK = b"pyenv"


def find() -> str | None:
    ours = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory or ".", TOOL)
        if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
            continue
        if os.path.realpath(candidate) != ours and not _is_ours(candidate):
            return candidate
    return None


def _is_ours(path: str) -> bool:
    """Our console script, a shim for it, or a version manager's shim (which runs ours)."""
    try:
        with open(path, "rb") as file:
            head = file.read(4096)
    except OSError:
        return False
    return not head.startswith(b"\x7fELF") and (_OUR_MARK in head or _SHIM_MARK in head)
