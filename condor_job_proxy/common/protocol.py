"""The session handshake's wire format, shared by the starter and the proxy.

Every message is a 4-byte big-endian length and a JSON object, at most MAX_MESSAGE bytes.
Both sides hash every frame into a transcript; each signature covers the transcript so far
plus a role label, so no message can be replayed, reordered, spliced or reflected.

    proxy -> starter   hello      {proto, job, user, key, nonce, shells?, session_key?, spare?}
    starter -> proxy   challenge  {nonce}                  | refused {code, message}
    proxy -> starter   auth       {sig}                    (client signature)
    starter -> proxy   accept     {host_key, user, spare?} | refused {code, message}
    starter -> proxy   sig        {sig}                    (starter signature, covers accept)

``session_key`` (optional) is a public key the session's sshd lets in instead of ``key``:
condor_ssh_to_job's per-session key (``-keygen-options``). The client's signature covers the
hello, so only a client authorized for the job can name one, and it counts for that session only.
``spare`` (optional, true) marks a session opened ahead of need by the connect daemon: the
starter does not count it as in use until a client speaks to its sshd, and ends it when the job
stops taking sessions; its accept then says ``spare`` too (a starter that predates spares does
not, and the client closes such a session rather than keep it).

After ``sig`` the same socket carries the raw SSH stream. Readers take exactly the bytes of
each frame, so no SSH byte is ever consumed by the handshake.
"""
from __future__ import annotations

import hashlib
import json
import socket
import struct
import time

PROTOCOL_VERSION = 1
MAX_MESSAGE = 16 * 1024
HANDSHAKE_SECONDS = 10.0
NONCE_BYTES = 32


class Refusal:
    """Typed reasons a starter refuses a session; the proxy prints each as one line."""
    NOT_OWNER = "not_owner"
    WRONG_USER = "wrong_user"
    WRONG_JOB = "wrong_job"
    NOT_RUNNING = "not_running"
    JOB_EXITED = "job_exited"
    DISABLED = "disabled"
    NO_SSHD = "no_sshd"
    TOO_MANY_SESSIONS = "too_many_sessions"
    BAD_SIGNATURE = "bad_signature"
    PROTOCOL = "protocol"
    INTERNAL = "internal"


class ProtocolError(Exception):
    """The peer broke the protocol, went silent past the deadline, or hung up."""


class Transcript:
    """A running hash of every frame sent or received, in order."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, frame: bytes) -> None:
        self._hash.update(frame)

    def signed_data(self, role: str) -> bytes:
        """What a side signs: the protocol, its role, and the transcript so far."""
        return f"condor-job-proxy/{PROTOCOL_VERSION} {role}\n{self._hash.hexdigest()}\n".encode()


class Channel:
    """Framed messages over a socket, under one deadline for the whole exchange."""

    def __init__(self, sock: socket.socket, seconds: float = HANDSHAKE_SECONDS) -> None:
        self.sock = sock
        self.transcript = Transcript()
        self._deadline = time.monotonic() + seconds

    def send(self, kind: str, **fields: object) -> None:
        body = json.dumps({"type": kind, **fields}, separators=(",", ":")).encode()
        if len(body) > MAX_MESSAGE:
            raise ProtocolError(f"{kind} message too large")
        frame = struct.pack(">I", len(body)) + body
        self.transcript.add(frame)
        self._arm()
        try:
            self.sock.sendall(frame)
        except OSError as err:
            raise ProtocolError(f"connection lost: {err.strerror or err}") from None

    def receive(self, *expected: str) -> dict:
        """Read one message; its type must be one of ``expected`` (or ``refused``)."""
        header = self._read(4)
        (length,) = struct.unpack(">I", header)
        if length > MAX_MESSAGE:
            raise ProtocolError("message too large")
        body = self._read(length)
        self.transcript.add(header + body)
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):   # RecursionError: deeply nested JSON
            raise ProtocolError("malformed message") from None
        if not isinstance(message, dict) or message.get("type") not in (*expected, "refused"):
            raise ProtocolError(f"unexpected message (wanted {' or '.join(expected)})")
        return message

    def _read(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            self._arm()
            try:
                chunk = self.sock.recv(count - len(data))
            except socket.timeout:
                raise ProtocolError("handshake timed out") from None
            except OSError as err:
                raise ProtocolError(f"connection lost: {err.strerror or err}") from None
            if not chunk:
                raise ProtocolError("connection closed during the handshake")
            data += chunk
        return bytes(data)

    def _arm(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise ProtocolError("handshake timed out")
        self.sock.settimeout(left)


def text_field(message: dict, name: str, limit: int = 8192) -> str:
    """A required string field, bounded, or ProtocolError."""
    value = message.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ProtocolError(f"missing or bad field {name!r}")
    return value
