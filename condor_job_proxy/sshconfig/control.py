"""Where ssh's shared-connection sockets go: a short, private directory that exists when ssh runs.

ssh exits with an error when it cannot create the socket (a missing directory is fatal), and
unix socket paths are short (sun_path holds 104 bytes on macOS, 108 on Linux, with the NUL;
ssh first binds the path plus a 17-byte temporary suffix: OpenSSH 9.2 here takes a 45-byte
directory for cjp-%C and refuses 46), so the choice is made when the include is written: the login
session's runtime directory (it exists while the user is logged in, and holds no stale sockets
after a reboot), else a directory in the state dir that refresh creates, else (no runtime
directory and a home too long for the state dir: containers, su/runuser, cron, HPC access
points) /tmp/cjp-<uid>. That last one may vanish with a reboot and someone else may create it
first, so ssh checks it before every use (see ``needs_check``); if no choice is short enough or
/tmp/cjp-<uid> is not ours alone, sharing is switched off rather than broken.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from condor_job_proxy.common import paths
from condor_job_proxy.common.files import is_private, make_private_dir, private_dir_problem

SOCKET_LIMIT = 108 if sys.platform.startswith("linux") else 104    # sun_path, with its NUL
# ssh's %C is 40 hex digits; while it sets the socket up it adds ".XXXXXXXXXXXXXXXX".
_NAME = "cjp-%C"
_EXPANDED = len("cjp-") + 40 + 17
# In /tmp/cjp-<uid> the name also carries 8 hex digits of the config directory: every config
# of one account meets there (tests run as root), and %C names only host, port and user.
_TAGGED = len("-01234567")


def control_dir(create: bool = True, name_length: int = _EXPANDED) -> Path | None:
    """A private directory for sockets whose names take up to ``name_length`` bytes, or None
    when none gives a short enough path (or /tmp/cjp-<uid> belongs to someone else)."""
    runtime = _login_runtime_dir()
    if runtime is not None and _fits(runtime, name_length):
        return runtime
    fallback = paths.state_dir() / "cm"
    if _fits(fallback, name_length):
        if create:
            make_private_dir(fallback)
        return fallback
    short = tmp_dir()
    if _fits(short, name_length + _TAGGED) and private_dir_problem(short, create) is None:
        return short
    return None


def tmp_dir() -> Path:
    """The last resort: short whatever the home, named by uid so it needs no lookup."""
    return Path(f"/tmp/cjp-{os.getuid()}")


def needs_check(directory: Path) -> bool:
    """Whether ssh must check the directory before each use: /tmp is everyone's, and a reboot
    empties it; a master socket planted there by another user would get our terminal."""
    return directory == tmp_dir()


def daemon_socket_base(proxy_command: list[str], create: bool = True) -> Path | None:
    """Where the connect daemons for this proxy command (its interpreter, directories and
    queue) listen: the fast client adds ``-<hash of its environment>.sock``. In the same
    private directory; None when no directory gives a short enough path."""
    digest = hashlib.sha256("\0".join(proxy_command).encode(errors="surrogateescape"))
    name = f"cjp-d-{digest.hexdigest()[:12]}"
    directory = control_dir(create, len(name) + len("-0123456789ab.sock"))
    return None if directory is None else directory / name


def control_path(directory: str | Path) -> str:
    if not needs_check(Path(directory)):
        return f"{directory}/{_NAME}"
    tag = hashlib.sha256(os.fsencode(paths.config_dir())).hexdigest()[:8]
    return f"{directory}/cjp-{tag}-%C"


def _fits(directory: Path, name_length: int) -> bool:
    return len(os.fsencode(str(directory))) + 1 + name_length < SOCKET_LIMIT


def _login_runtime_dir() -> Path | None:
    """$XDG_RUNTIME_DIR or /run/user/<uid>, if it is a real 0700 directory of ours.

    Not platformdirs' user_runtime_dir: its fallback in /tmp may be swept while the include
    still names it, and an app subdirectory there would need creating after every login.
    """
    candidates = [os.environ.get("XDG_RUNTIME_DIR"), f"/run/user/{os.getuid()}"]
    for candidate in filter(None, candidates):
        try:
            info = os.lstat(candidate)
        except OSError:
            continue
        if is_private(info):
            return Path(candidate)
    return None
