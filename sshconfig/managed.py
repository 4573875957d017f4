"""The managed block in ~/.ssh/config: one Include line between marker comments, at the top.

Only the lines between our markers are ever changed; the user's own lines stay byte for byte.
At the top because an Include placed after a ``Host`` line would only apply inside that block.
"""
from __future__ import annotations

import difflib
import os
import pwd
from pathlib import Path

BEGIN = "# BEGIN condor-job-proxy (managed by `condor-job-proxy setup`; edits here are lost)"
END = "# END condor-job-proxy"


def user_ssh_config() -> Path:
    """~/.ssh/config as OpenSSH finds it: from the passwd entry, not $HOME."""
    return Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh" / "config"


def block(include_file: Path) -> str:
    return f'{BEGIN}\nInclude "{include_file}"\n{END}\n'


def without_block(text: str) -> str:
    start = text.find(BEGIN + "\n")
    if start < 0:
        return text
    end = text.find(END + "\n", start)
    if end < 0:
        return text
    return text[:start] + text[end + len(END) + 1:]


def with_block(text: str, include_file: Path) -> str:
    """The text with our block in front (replacing any old copy of it)."""
    return block(include_file) + without_block(text)


def read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def diff(path: Path, old: str, new: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        str(path), str(path)))


def write(path: Path, text: str) -> None:
    """Replace the file's content atomically, through a symlink, keeping its mode (0600 if new)."""
    target = path.resolve()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    temp = target.with_name(f".{target.name}.condor-job-proxy.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), mode)
        file.write(text)
    os.replace(temp, target)
