"""The prelude the access point sends the laptop before the first SSH byte (``connect --via``).

One frame: the magic ``CJPV``, a version byte, a 4-byte big-endian length and that many bytes
of JSON, at most MAX_BODY. Either ``{"ok": true, "host_key", "user", "key"?, "notice"?}`` (the
job's authenticated host key(s), the login user, the session's private key when the transport
needs one) or ``{"ok": false, "error": LINE}``. Then raw SSH bytes follow on the same stream.

The laptop reads exactly the frame's bytes, so no SSH byte is ever consumed, and checks every
field before anything is written: a truncated, oversized or malformed prelude is one clear
line and nothing on disk. Kept to the standard library: it runs on Windows laptops too.
"""
from __future__ import annotations

import json
import os
import re
import struct
from typing import NamedTuple

from condor_job_proxy.common.keys import KEY_TYPES
from condor_job_proxy.common.names import LOGIN_NAME, printable

from ..errors import ProxyError

MAGIC = b"CJPV"
VERSION = 1
MAX_BODY = 32 * 1024
_HEADER = struct.Struct(">4sBI")
_HOST_KEY = re.compile(f"({'|'.join(map(re.escape, KEY_TYPES))})" r" [A-Za-z0-9+/]+={0,2}")
_PRIVATE_KEY = re.compile(r"-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+"
                          r"-----END OPENSSH PRIVATE KEY-----\n?")


class HopClosed(ProxyError):
    """The hop ended before sending a byte: its ssh failed, or the command there did."""


class Prelude(NamedTuple):
    host_key: str      # one "<type> <base64>" a line
    user: str
    key: str = ""      # the session's private key (htcondor-native), else ""
    notice: str = ""


def encode(prelude: Prelude) -> bytes:
    body = {"ok": True, "host_key": prelude.host_key, "user": prelude.user}
    if prelude.key:
        body["key"] = prelude.key
    if prelude.notice:
        body["notice"] = prelude.notice
    return _frame(body)


def encode_error(line: str) -> bytes:
    """A failure on the access point, as the one line the laptop shows (printable)."""
    return _frame({"ok": False, "error": _error_line(line)})


def _error_line(text: str) -> str:
    """One line for a terminal: whitespace runs one space, control characters '?'."""
    return printable(" ".join(text.split()), 1000)


def _frame(body: dict) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    if len(data) > MAX_BODY:
        raise ProxyError("session prelude too large to send")
    return _HEADER.pack(MAGIC, VERSION, len(data)) + data


def read(fd: int, hop: str) -> Prelude:
    """The prelude from ``fd``; ProxyError (one line) for anything but a complete, valid one.
    An error frame becomes its own line, without control characters (it reaches a terminal)."""
    header = _read_exactly(fd, _HEADER.size, hop)
    magic, version, length = _HEADER.unpack(header)
    if magic != MAGIC:
        raise ProxyError(f"{hop} did not answer with a session prelude (is a recent "
                         "condor-job-proxy on its PATH?)")
    if version != VERSION:
        raise ProxyError(f"{hop} speaks prelude version {version}, this side {VERSION}: "
                         "install the same condor-job-proxy on both")
    if length > MAX_BODY:
        raise ProxyError(f"{hop} sent an oversized session prelude ({length} bytes)")
    return _decode(_read_exactly(fd, length, hop), hop)


def _read_exactly(fd: int, count: int, hop: str) -> bytes:
    data = b""
    while len(data) < count:
        chunk = os.read(fd, count - len(data))
        if not chunk and not data:
            raise HopClosed(f"{hop} closed the connection before the session was set up")
        if not chunk:
            raise ProxyError(f"{hop} sent a truncated session prelude")
        data += chunk
    return data


def _decode(data: bytes, hop: str) -> Prelude:
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):   # the last: deeply nested JSON
        body = None
    if not isinstance(body, dict):
        raise ProxyError(f"{hop} sent a malformed session prelude")
    if body.get("ok") is False and isinstance(body.get("error"), str):
        raise ProxyError(_error_line(body["error"]))
    host_key, user = body.get("host_key"), body.get("user")
    key, notice = body.get("key", ""), body.get("notice", "")
    checks = (isinstance(host_key, str) and host_key.strip()
              and all(_HOST_KEY.fullmatch(line) for line in host_key.splitlines()),
              isinstance(user, str) and LOGIN_NAME.fullmatch(user),
              isinstance(key, str) and (not key or _PRIVATE_KEY.fullmatch(key)),
              isinstance(notice, str) and "\n" not in notice and len(notice) <= 1000,
              body.get("ok") is True)
    if not all(checks):
        raise ProxyError(f"{hop} sent a session prelude with a bad or missing field")
    return Prelude(host_key, user, key, notice)
