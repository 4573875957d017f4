"""Where ssh's shared-connection sockets go: a short, private directory that exists when ssh runs.

ssh exits with an error when it cannot create the socket (a missing directory is fatal), and
unix socket paths are short (104 bytes on macOS, 108 on Linux), so the choice is made when
the include is written: the login session's runtime directory (it exists while the user is
logged in, and holds no stale sockets after a reboot), else a directory in the state dir that
refresh creates; if neither is short enough, sharing is switched off rather than broken.
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from starter import paths

SOCKET_LIMIT = 104
# ssh's %C is 40 hex digits; while it sets the socket up it adds ".XXXXXXXXXXXXXXXX".
_NAME = "cjp-%C"
_EXPANDED = len("cjp-") + 40 + 17


def control_dir(create: bool = True, name_length: int = _EXPANDED) -> Path | None:
    """A private directory for sockets whose names take up to ``name_length`` bytes, or None
    when none gives a short enough path."""
    runtime = _login_runtime_dir()
    if runtime is not None and _fits(runtime, name_length):
        return runtime
    fallback = paths.state_dir() / "cm"
    if _fits(fallback, name_length):
        if create:
            _make_private(fallback)
        return fallback
    return None


def daemon_socket_base(proxy_command: list[str], create: bool = True) -> Path | None:
    """Where the connect daemons for this proxy command (its interpreter, directories and
    queue) listen: the fast client adds ``-<hash of its environment>.sock``. In the same
    private directory; None when no directory gives a short enough path."""
    digest = hashlib.sha256("\0".join(proxy_command).encode(errors="surrogateescape"))
    name = f"cjp-d-{digest.hexdigest()[:12]}"
    directory = control_dir(create, len(name) + len("-0123456789ab.sock"))
    return None if directory is None else directory / name


def control_path(directory: str | Path) -> str:
    return f"{directory}/{_NAME}"


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
        if (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
                and stat.S_IMODE(info.st_mode) & 0o077 == 0):
            return Path(candidate)
    return None


def _make_private(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
