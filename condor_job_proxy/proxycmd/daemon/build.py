"""Which fast client the ProxyCommand runs: condor_job_proxy/proxycmd/daemon/quick.c built here,
else quick.py.

The compiled client starts in about a millisecond, where even a bare Python start takes
most of the ~11 ms a connect may cost over plain ssh. It is built with the machine's C
compiler ($CC, else cc or gcc) into the state directory, named by a hash of its source so
that an upgrade builds it again, and only when setup or refresh finds it missing. With no
compiler, a failed build or ``compiled_client = false``, ssh runs quick.py under ``python -S``.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from . import quick
from condor_job_proxy.common import paths
from condor_job_proxy.common.files import temp_name

_FLAGS = ["-O2", "-Wall"]
# Linked statically where the C library allows it (the client uses no NSS): ssh runs it twice
# per new connection and once per shared one, and each start then skips the dynamic loader
# (~0.2 ms of CPU here). Without a static libc the build is dynamic.
_LINKINGS = (["-static"], [])


def client_argv(python: str, compiled: bool = True, create: bool = True) -> list[str]:
    """The command that runs the fast client (its socket base and the full command follow)."""
    built = compiled_client(create) if compiled else None
    if built is not None:
        return [str(built)]
    return [python, "-S", "-E", "-s", str(Path(quick.__file__).resolve())]


def compiled_client(create: bool = True) -> Path | None:
    """The built client for the current source, building it if ``create``; None if it cannot be."""
    source = Path(quick.__file__).with_name("quick.c")
    try:
        digest = hashlib.sha256(source.read_bytes() + repr(_LINKINGS).encode()).hexdigest()[:16]
    except OSError:
        return None       # installed without its C source
    target = paths.state_dir() / "bin" / f"cjp-quick-{digest}"
    if target.exists() or (create and _build(source, target)):
        return target
    return None


def _build(source: Path, target: Path) -> bool:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        return False
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = temp_name(target)   # the compiler writes it; renamed into place whole
    for linking in _LINKINGS:
        try:
            result = subprocess.run([*compiler.split(), *_FLAGS, *linking, "-o", str(temp),
                                     str(source)], capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            return False
        if result.returncode == 0:
            os.replace(temp, target)   # older builds stay: another install's include may name one
            return True
        temp.unlink(missing_ok=True)
    return False
