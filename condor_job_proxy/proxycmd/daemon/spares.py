"""Spare sessions: the connect daemon opens a job's next session before ssh asks for it.

A cold connect waits for the handshake with the job's starter, then for a fresh sshd to start,
before ssh's own handshake can begin. When the same job is connected to again within
``lifetime`` seconds without a shared connection (ControlMaster off, ``-o ControlPath=none``,
tools with their own ssh options), the daemon opens one more session like it once no connect
is in flight, and hands it to the next such ssh: that ssh finds an sshd that has started and
sent its version line. A job reached through a shared connection asks the daemon only once
per master, so it gets no spare.

The starter knows the session as a spare: it does not count it as in use (the record's
session count, an interactive job's linger time) until a client speaks to its sshd, and it
kills it when the job stops taking sessions (exit, suspension, removal). The daemon closes a
spare after ``lifetime`` seconds and on exit, and hands one over only for the same endpoint,
request and key file, and only while its sshd is still there.
"""
from __future__ import annotations

import select
import socket
import threading
import time

from condor_job_proxy.common.keys import path_version

from .. import pipeline, transports
from ..errors import ProxyError
from ..model import JobEndpoint, OpenSession, SessionRequest

Key = tuple[JobEndpoint, SessionRequest, tuple[int, int, int, int] | None]


class Spares:
    """At most one spare session per (endpoint, request, key file); thread-safe."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime          # 0: no spares
        self._ready: dict[Key, tuple[OpenSession, float]] = {}
        self._last_connect: dict[Key, float] = {}
        self._wanted: set[Key] = set()
        self._unknown_to: set[JobEndpoint] = set()   # starters that predate spare sessions
        self._lock = threading.Lock()

    def open_session(self, endpoint: JobEndpoint, request: SessionRequest) -> OpenSession:
        """The live spare for this endpoint and request, else a new session (``pipeline``'s
        opener); one more is wanted when the last connect like it was recent."""
        if (not transports.load(endpoint.transport).keeps_spares or self.lifetime <= 0
                or endpoint in self._unknown_to):
            return pipeline.open_session(endpoint, request)
        # A spare's sshd lets in only the key it was opened with: the key file as it is now.
        key = (endpoint, request, path_version(request.identity))
        now = time.monotonic()
        with self._lock:
            spare = self._ready.pop(key, None)
            if now - self._last_connect.get(key, -self.lifetime) < self.lifetime:
                self._wanted.add(key)
            self._last_connect[key] = now
        if spare is not None:
            session, opened = spare
            if now - opened < self.lifetime and _alive(session.sock):
                return session
            session.sock.close()
        return pipeline.open_session(endpoint, request)

    def refill(self) -> None:
        """Open the spares wanted since the last refill; the daemon calls this when no connect
        is in flight, so spares never compete with a burst of connects."""
        with self._lock:
            wanted, self._wanted = self._wanted, set()
        for key in wanted:
            endpoint, request, _ = key
            try:
                session = pipeline.open_session(endpoint, request._replace(spare=True))
            except (ProxyError, OSError):
                continue   # the next connect opens its own session, and says why if it fails
            if not session.spare:   # an older starter: to it, a session like any other
                session.sock.close()
                self._unknown_to.add(endpoint)
                continue
            with self._lock:
                replaced = self._ready.pop(key, None)
                self._ready[key] = (session, time.monotonic())
            if replaced:
                replaced[0].sock.close()

    def expire(self) -> None:
        """Close spares older than ``lifetime``; forget connects older than that."""
        now = time.monotonic()
        with self._lock:
            old = [key for key, (_, opened) in self._ready.items() if now - opened >= self.lifetime]
            closing = [self._ready.pop(key)[0] for key in old]
            for key in [key for key, when in self._last_connect.items()
                        if now - when >= self.lifetime]:
                del self._last_connect[key]
        for session in closing:
            session.sock.close()

    def close(self) -> None:
        with self._lock:
            closing, self._ready = list(self._ready.values()), {}
        for session, _ in closing:
            session.sock.close()


def _alive(sock: socket.socket) -> bool:
    """Whether the spare's sshd is still there: no end of stream behind its version line (the
    starter kills an unused spare when the job stops taking sessions)."""
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP)
    return not any(events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL)
                   for _, events in poller.poll(0))

