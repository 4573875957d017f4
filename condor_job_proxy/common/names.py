"""Typed values for what comes from outside the user's own files.

A queue record, an HTCondor job ad, an access point's job list, an EC2 answer and a starter's
reply are all written by someone else. What of them reaches an ssh_config file, a file name or a
command line is parsed here, at the boundary, into a value that cannot carry syntax; what
reaches a terminal is made printable. Kept to ``re`` and ``pwd``: the connect path imports it.
"""
from __future__ import annotations

import re

# A login name as ssh_config's User, a file name and a shell word all take it: no space, quote,
# '%' token, '#' or control character; no leading '-' (an option) or '.'; at most 64 bytes. '@'
# and a trailing '$' are kept for directory-service and machine accounts.
LOGIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}\$?")
# C0 and C1 controls, DEL, and the format characters a terminal or an editor acts on
# (bidirectional overrides and isolates, zero-width joiners, the line and paragraph separators).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff"
                          "\ud800-\udfff]")   # the last: lone surrogates, which no terminal encodes


class BadName(ValueError):
    """A value that does not pass the login-name rule."""


def login_name(value: object, what: str = "login name") -> str:
    """``value`` if it is a login name by LOGIN_NAME, else BadName naming ``what`` (printably)."""
    if isinstance(value, str) and LOGIN_NAME.fullmatch(value):
        return value
    raise BadName(f"{what} {printable(repr(value), 80)} is not a valid login name")


def is_login_name(value: object) -> bool:
    return isinstance(value, str) and LOGIN_NAME.fullmatch(value) is not None


def is_printable(text: str) -> bool:
    """Whether ``text`` holds no control or format character (printable() would keep it)."""
    return _UNPRINTABLE.search(text) is None


def printable(text: object, limit: int = 500) -> str:
    """``text`` for one line of a terminal: every control or format character a '?', at most
    ``limit`` characters (an ellipsis marks a cut)."""
    line = _UNPRINTABLE.sub("?", str(text))
    return line if len(line) <= limit else line[:limit] + "..."


def user_of_uid(uid: int) -> str | None:
    """The local login name of ``uid`` (this machine's passwd, never a file's word for it);
    None when the uid has no entry or its name fails the login-name rule."""
    import pwd
    try:
        name = pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError, TypeError):
        return None
    return name if is_login_name(name) else None


def uid_of_user(name: str) -> int | None:
    """The uid this machine's passwd gives login name ``name``; None when it has no such user."""
    import pwd
    try:
        return pwd.getpwnam(name).pw_uid
    except (KeyError, ValueError):   # ValueError: a NUL in the name
        return None
