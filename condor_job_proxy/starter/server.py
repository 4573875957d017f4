"""The starter's session server: authenticate each request, then hand it to a fresh sshd.

The server side of the handshake in ``protocol``: the client must name this job and its
user, offer a key that is authorized for the job, and sign the transcript with it; the
starter answers with the session's host key and login user, signed with the starter key
that the queue record publishes.
"""
from __future__ import annotations

import errno
import os
import secrets
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import hostcert
from ..common import sshsig
from .handshakes import Handshakes
from .stderr import log
from ..common.keys import fingerprint, normalize
from ..common.protocol import (NONCE_BYTES, PROTOCOL_VERSION, Channel, ProtocolError, Refusal,
                               text_field)
from .session import Session
from .session_files import JobContext
from .session_files import usable_shells


_ROOM_BYTES = 64 * 1024     # less free space than this where we write: no new session
_PAUSE = 0.05               # after accept() fails (out of fds, buffers, threads), before again
_COMPLAIN_EVERY = 60.0      # the same complaint at most this often: a flood must not fill a log


@dataclass(frozen=True)
class Room:
    """A directory the starter writes its bookkeeping to (TMPDIR, the queue): while it is
    full or read-only, new sessions are refused with one line naming it."""
    name: str          # as the refusal says it: "the job's TMPDIR (/tmp)"
    directory: Path


def tmpdir_room() -> Room:
    directory = tempfile.gettempdir()
    return Room(f"the job's TMPDIR ({directory})", Path(directory))


@dataclass
class StarterIdentity:
    """The starter's signing key: private file (0600, in a private dir) and public line."""
    private_file: str
    public: str


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SessionServer:
    def __init__(self, listener: socket.socket, context: JobContext, user: str,
                 identity: StarterIdentity, authorized: Callable[[], set[str]],
                 max_sessions: int = 64, on_change: Callable[[], None] = lambda: None,
                 rooms: dict[str, Room] | None = None) -> None:
        self.listener = listener
        self.context = context
        self.user = user
        self.identity = identity
        self.authorized = authorized
        self.max_sessions = max_sessions
        self.on_change = on_change   # told when a session starts or ends (accounting, lifecycle)
        self.refusal: tuple[str, str] | None = None   # set when the job stops taking sessions
        self.rooms = rooms or {"tmpdir": tmpdir_room()}
        self._held: dict[str, tuple[str, bool]] = {}   # room -> why, unseen by statvfs (``hold``)
        self._sessions: set[Session] = set()
        self._lock = threading.Lock()
        self._handshakes = Handshakes()
        self._complained: dict[str, float] = {}

    @property
    def address(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def serve_forever(self) -> None:
        """Accept until the listener is closed. Running out of file descriptors, buffers or
        threads is waited out (a handshake is pushed out to make room), never the end."""
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError as err:
                if self.listener.fileno() < 0 or err.errno in (errno.EBADF, errno.EINVAL):
                    return   # listener closed (or shut down): the starter is shutting down
                self._wait_out(f"cannot accept connections: {err.strerror or err}")
                continue
            try:
                self._handshakes.admit(conn)
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
            except Exception as err:   # "can't start new thread", or a bug: accept the next
                self._handshakes.done(conn)
                conn.close()
                self._wait_out(f"cannot serve a connection: {type(err).__name__}: {err}")

    def _wait_out(self, problem: str) -> None:
        self._handshakes.drop_one()
        now = time.monotonic()
        if now - self._complained.get(problem, -_COMPLAIN_EVERY) >= _COMPLAIN_EVERY:
            self._complained[problem] = now
            log(f"{problem} (waiting it out)")
        time.sleep(_PAUSE)

    def session_count(self) -> int:
        """Every session, spares too: each is a job process until it ends."""
        with self._lock:
            return len(self._sessions)

    def sessions_in_use(self) -> int:
        """The sessions someone uses: what the record shows and what keeps a job from lingering
        out. A spare nobody has spoken to is not one."""
        with self._lock:
            sessions = list(self._sessions)
        return sum(session.in_use() for session in sessions)

    def session_pids(self) -> set[int]:
        with self._lock:
            return {s.process.pid for s in self._sessions if s.process}

    def stop_taking_sessions(self, code: str, message: str) -> bool:
        """Refuse new sessions from now on and end the spares nobody uses; True if none is
        open (nor can open any more)."""
        with self._lock:
            self.refusal = (code, message)
            for session in self._sessions:
                session.end_if_unused()
            return not self._sessions

    def hold(self, room: str, err: OSError) -> None:
        """A write to ``room`` failed. If for want of space or writability, refuse new
        sessions until ``release`` (the next write that works), or, for what statvfs sees (a
        full or read-only filesystem, not a quota), until statvfs shows room again."""
        problem = room_problem(err, self.rooms[room]) if room in self.rooms else None
        if problem:
            with self._lock:
                self._held[room] = (problem, err.errno not in (errno.ENOSPC, errno.EROFS))

    def release(self, room: str) -> None:
        with self._lock:
            self._held.pop(room, None)

    def no_room(self) -> str | None:
        """Why a new session cannot be kept track of now (TMPDIR or the queue full or
        read-only, seen by a failed write or by statvfs), or None."""
        with self._lock:
            held = dict(self._held)
        for name, room in self.rooms.items():
            problem = _room_problem(room)
            if problem:
                return problem
            if name in held and held[name][1]:
                return held[name][0]
        return None

    def _serve(self, conn: socket.socket) -> None:
        try:
            session = self._authenticate(conn)
        finally:
            kept = self._handshakes.done(conn)
        if session and not kept:   # pushed out by newer connections just as it authenticated
            self._forget(session)
            session = None
        if session is None:
            conn.close()
            return
        try:
            conn.settimeout(None)
            session.start(conn)
        except OSError as err:
            self._forget(session)
            log(f"cannot start sshd: {err}")
            return
        finally:
            conn.close()   # sshd has its own copy; ours would keep the connection open
        with self._lock:
            if self.refusal:   # the job stopped taking sessions while this one's sshd started
                session.end_if_unused()
        self.on_change()
        output = session.wait()
        if output:
            log(f"session of job {self.context.job} ended badly:\n{output}")
        self._forget(session)

    def _authenticate(self, conn: socket.socket) -> Session | None:
        """The session ``conn`` authenticated for, or None once it was refused (and told)."""
        channel = Channel(conn)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return self._handshake(channel)
        except Refused as refusal:
            code, message = refusal.code, str(refusal)
        except (ProtocolError, sshsig.SignatureError, OSError) as err:
            code, message = Refusal.PROTOCOL, str(err)
        except Exception as err:   # a bug must not leave a hostile peer a hanging thread
            log(f"refused a connection: {type(err).__name__}: {err}")
            code, message = Refusal.INTERNAL, "internal error"
        _try(lambda: channel.send("refused", code=code, message=message))
        return None

    def _handshake(self, channel: Channel) -> Session:
        hello = channel.receive("hello")
        if hello.get("proto") != PROTOCOL_VERSION:
            raise Refused(Refusal.PROTOCOL, f"unsupported protocol version {hello.get('proto')!r}")
        client_key = normalize(text_field(hello, "key"))
        if client_key is None:
            raise Refused(Refusal.PROTOCOL, "hello carries no usable public key")
        self._authorize(hello, client_key)
        channel.send("challenge", nonce=secrets.token_hex(NONCE_BYTES))
        signed = channel.transcript.signed_data("client")   # what the client signs: up to here
        job_pids = self.context.pids()   # read-only /proc scan, done while the client signs
        auth = channel.receive("auth")
        try:
            sshsig.verify(client_key, signed, text_field(auth, "sig"))
        except sshsig.SignatureError:
            raise Refused(Refusal.BAD_SIGNATURE, "the client's signature does not verify") from None
        session = self._open_session(_session_key(hello) or client_key, hello.get("shells"),
                                     job_pids, hello.get("spare") is True,
                                     self._host_cert(hello, client_key))
        try:
            # A spare is acknowledged, so a client keeps one only from a starter that knows it.
            extra = {"spare": True} if session.spare else {}
            channel.send("accept", host_key=self.context.host_key_public, user=self.user,
                         **extra)
            channel.send("sig", sig=sshsig.sign(self.identity.private_file,
                                                channel.transcript.signed_data("server")))
        except BaseException:
            self._forget(session)
            raise
        return session

    def _authorize(self, hello: dict, client_key: str) -> None:
        job = self.context.job
        if text_field(hello, "job", 64) != job:
            raise Refused(Refusal.WRONG_JOB, f"this starter runs job {job}, not {hello['job']}")
        if self.refusal:
            raise Refused(*self.refusal)
        if client_key not in self.authorized():
            raise Refused(Refusal.NOT_OWNER, f"access to job {job} denied: key "
                          f"{fingerprint(client_key)} is not the job's owner's (nor a super user's)")
        user = text_field(hello, "user", 256)
        if user != self.user:
            raise Refused(Refusal.WRONG_USER, f"job {job} runs as user {self.user!r}, not {user!r}: "
                          f"connect as {self.user}@ (e.g. ssh -l {self.user})")
        host = self.context.host
        if host.login_disabled:
            raise Refused(Refusal.DISABLED, "ssh access to this job is disabled by its user's "
                          f"login shell ({host.login_shell})")
        if not host.sshd:
            raise Refused(Refusal.NO_SSHD, "the job's machine has no sshd (install openssh-server)")

    def _host_cert(self, hello: dict, client_key: str) -> Path | None:
        """The file of the host certificate the client's hello carries, if any."""
        if "host_cert" not in hello:
            return None
        try:
            return hostcert.cert_file(self.context.directory, client_key, hello["host_cert"],
                                      self.context.host_key_public)
        except hostcert.BadCertificate as err:
            raise Refused(Refusal.PROTOCOL, f"cannot use the client's host certificate: {err}") \
                from None
        except OSError as err:
            raise Refused(Refusal.INTERNAL, write_problem(err, self.rooms["tmpdir"])) from None
        except ImportError:   # cryptography before 40: OpenSSH, paramiko and Node use the pin
            log("a client's host certificate is left out: it needs cryptography 40 or later")
            return None

    def _open_session(self, client_key: str, shells: object, job_pids: list[int],
                      spare: bool, host_cert: Path | None = None) -> Session:
        shells = usable_shells(shells)
        problem = self.no_room()
        if problem:
            raise Refused(Refusal.INTERNAL, problem)
        with self._lock:
            if self.refusal:   # checked again: the job may have stopped taking sessions meanwhile
                raise Refused(*self.refusal)
            if len(self._sessions) >= self.max_sessions:
                raise Refused(Refusal.TOO_MANY_SESSIONS, f"job {self.context.job} already has "
                              f"{self.max_sessions} sessions open (the limit)")
            try:
                session = Session(self.context, client_key, shells, job_pids, spare, host_cert)
            except OSError as err:
                raise Refused(Refusal.INTERNAL, write_problem(err, self.rooms["tmpdir"])) from None
            self._sessions.add(session)
        return session

    def _forget(self, session: Session) -> None:
        session.remove()
        with self._lock:
            self._sessions.discard(session)
        self.on_change()


def _session_key(hello: dict) -> str | None:
    """The per-session key the client asks sshd to accept instead of its own, if any."""
    if "session_key" not in hello:
        return None
    key = normalize(text_field(hello, "session_key"))
    if key is None:
        raise Refused(Refusal.PROTOCOL, "hello carries an unusable session_key")
    return key


def room_problem(err: OSError, room: Room) -> str | None:
    """The refusal for a write to ``room`` that failed for want of space or writability
    (what waits for an admin or for room), None for other errors."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot open a session: no space left in {room.name}"
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot open a session: {room.name} is not writable"
    return None


def write_problem(err: OSError, room: Room) -> str:
    """Why a write to ``room`` failed, in words an admin acts on."""
    return room_problem(err, room) or \
        f"cannot open a session in {room.name}: {err.strerror or err}"


def _room_problem(room: Room) -> str | None:
    """What statvfs says before any write fails: a read-only or (nearly) full filesystem."""
    try:
        fs = os.statvfs(room.directory)
    except OSError:
        return None   # cannot tell; the writes will
    if fs.f_flag & os.ST_RDONLY:
        return room_problem(OSError(errno.EROFS, ""), room)
    if fs.f_bavail * fs.f_frsize < _ROOM_BYTES or (fs.f_files and not fs.f_favail):
        return room_problem(OSError(errno.ENOSPC, ""), room)
    return None


def _try(action: Callable[[], None]) -> None:
    try:
        action()
    except (ProtocolError, OSError):
        pass
