"""The managed block in ~/.ssh/config: our lines between BEGIN/END markers, at the very top.

Only the bytes between the markers are ours; everything else stays byte for byte (line
endings, a missing final newline, encoding errors), so removing the block gives back exactly
the file from before. At the top because ssh takes the first value it finds, and an Include
after a user's ``Host`` line would apply only inside that block.
"""
from __future__ import annotations

import difflib
import os
import pwd
import shlex
from pathlib import Path

from condor_job_proxy.common.files import replace_file
from condor_job_proxy.common.names import printable

from .include import literal

BEGIN = "# BEGIN condor-job-proxy (managed by `condor-job-proxy setup`; edits here are lost)"
END = "# END condor-job-proxy"
# Inside the block when setup created the file (and its directory): uninstall then deletes
# them again, if nothing else is left in them.
CREATED_FILE = "# condor-job-proxy created this file; `config uninstall` deletes it if it is left empty."
CREATED_DIR = ("# condor-job-proxy created this file and its directory; `config uninstall` deletes "
               "them if they are left empty.")


class BrokenBlock(ValueError):
    """The file has our BEGIN marker without an END (or the other way): we will not guess."""


def user_ssh_config() -> Path:
    """~/.ssh/config as OpenSSH finds it: from the passwd entry, not $HOME."""
    return Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh" / "config"


def block(include_file: Path, refresh_command: list[str] | None = None,
          prefix: str = "job-", created: str | None = None) -> str:
    """Our lines: an optional refresh-on-connect Match, then the Include, between the markers.

    ``created`` is "file" or "directory" when setup made them, so uninstall can undo that too.
    """
    lines = [BEGIN]
    if created:
        lines.append(CREATED_DIR if created == "directory" else CREATED_FILE)
    if refresh_command:
        lines += _refresh_match(include_file, refresh_command, prefix)
    lines += [f'Include "{_config_text(include_file)}"', END]
    return "\n".join(lines) + "\n"


def _refresh_match(include_file: Path, command: list[str], prefix: str) -> list[str]:
    """A `Match exec` that refreshes the include before ssh reads it, when the host is unknown.

    The check is one grep of the include (a few ms); only a miss starts Python. %n reaches the
    shell inside single quotes, so host names holding a quote or a backslash never match.
    The Match is closed with `Match all`, or ssh would skip the Include whenever exec fails.
    """
    pattern = "^Host ([^ ]+ )*%n( |$)"
    check = f"grep -qsE '{pattern}' {shlex.quote(_config_text(include_file))}"
    refresh = " ".join(shlex.quote(_config_text(arg)) for arg in
                       [*command, "config", "refresh", "--if-missing"]) + " '%n'"
    return ["# Refresh the include when ssh meets a job it has no Host block for (config.toml:",
            "# refresh_on_connect). A known job costs one grep per ssh run.",
            f"Match host \"{prefix}*,!*'*,!*\\\\*\" exec \"{check} || {refresh}\"",
            "Match all"]


def _config_text(value: object) -> str:
    """A path or word as literal text in our block: what the include takes (``literal``), and
    no single quote or backslash either (the refresh's shell words sit in single quotes)."""
    text = literal(str(value))
    if any(c in text for c in "'\\"):
        raise ValueError(f"cannot put {printable(repr(text), 120)} in an ssh config (quote or "
                         "backslash)")
    return text.replace("%", "%%")


def find_block(text: str) -> tuple[int, int] | None:
    """(start, end) offsets of our block in the text, or None; a half block is an error."""
    start = _line_offset(text, BEGIN)
    end = _line_offset(text, END)
    if start is None and end is None:
        return None
    if start is None or end is None or end < start:
        raise BrokenBlock(f"found the {'END' if start is None else 'BEGIN'} marker of the "
                          "condor-job-proxy block without its partner; fix the file by hand")
    stop = end + len(END)
    if text.startswith("\r\n", stop):
        stop += 2
    elif text.startswith("\n", stop):
        stop += 1
    return start, stop


def _line_offset(text: str, line: str) -> int | None:
    position = 0
    while (found := text.find(line, position)) >= 0:
        at_line_start = found == 0 or text[found - 1] == "\n"
        after = text[found + len(line):found + len(line) + 2]
        if at_line_start and (after == "" or after.startswith(("\n", "\r\n"))):
            return found
        position = found + 1
    return None


def without_block(text: str) -> str:
    span = find_block(text)
    return text if span is None else text[:span[0]] + text[span[1]:]


def created_marker(text: str | None) -> str | None:
    """"file" or "directory" if our block says setup created them, else None."""
    span = find_block(text or "")
    if span is None:
        return None
    lines = text[span[0]:span[1]].splitlines()
    return "directory" if CREATED_DIR in lines else "file" if CREATED_FILE in lines else None


def with_block(text: str, new_block: str) -> str:
    """The text with our block in front, replacing any old copy of it wherever it was."""
    return new_block + without_block(text)


def read(path: Path) -> str | None:
    """The file's exact content (bytes kept through surrogateescape), or None if it is missing."""
    try:
        return path.read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return None


def diff(path: Path, old: str | None, new: str | None) -> str:
    before = "/dev/null" if old is None else str(path)
    after = "/dev/null" if new is None else str(path)
    lines = difflib.unified_diff((old or "").splitlines(True), (new or "").splitlines(True),
                                 before, after)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def write(path: Path, text: str) -> None:
    """Replace the file's content atomically, through a symlink, keeping its mode (0600 if new)."""
    target = path.resolve()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    replace_file(target, text, mode)


def remove(path: Path, directory_too: bool = False) -> None:
    """Delete the file (through a symlink: the link was the user's, the target ours), and its
    directory if asked and it is empty."""
    target = path.resolve()
    target.unlink(missing_ok=True)
    if directory_too:
        try:
            target.parent.rmdir()
        except OSError:
            pass     # not empty: the user put something there since
