"""The starter's session server: authenticate each request, then hand it to a fresh sshd.

The server side of the handshake in ``protocol``: the client must name this job and its
user, offer a key that is authorized for the job, and sign the transcript with it; the
starter answers with the session's host key and login user, signed with the starter key
that the queue record publishes.
"""
from __future__ import annotations

import errno
import secrets
import socket
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import Callable

from . import sshsig
from .keys import fingerprint, normalize
from .protocol import NONCE_BYTES, PROTOCOL_VERSION, Channel, ProtocolError, Refusal, text_field
from .session import JobContext, Session
from .session_files import usable_shells


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
                 max_sessions: int = 64, on_change: Callable[[], None] = lambda: None) -> None:
        self.listener = listener
        self.context = context
        self.user = user
        self.identity = identity
        self.authorized = authorized
        self.max_sessions = max_sessions
        self.on_change = on_change   # told when a session starts or ends (accounting, lifecycle)
        self.refusal: tuple[str, str] | None = None   # set when the job stops taking sessions
        self._sessions: set[Session] = set()
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def serve_forever(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return   # listener closed: the starter is shutting down
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

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

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        channel = Channel(conn)
        try:
            session = self._handshake(channel)
        except Refused as refusal:
            _try(lambda: channel.send("refused", code=refusal.code, message=str(refusal)))
            conn.close()
            return
        except (ProtocolError, sshsig.SignatureError, OSError) as err:
            _try(lambda: channel.send("refused", code=Refusal.PROTOCOL, message=str(err)))
            conn.close()
            return
        except Exception as err:   # a bug must not leave a hostile peer a hanging thread
            print(f"condor-job-starter: refused a connection: {type(err).__name__}: {err}",
                  file=sys.stderr)
            _try(lambda: channel.send("refused", code=Refusal.INTERNAL, message="internal error"))
            conn.close()
            return
        try:
            conn.settimeout(None)
            session.start(conn)
        except OSError as err:
            self._forget(session)
            print(f"condor-job-starter: cannot start sshd: {err}", file=sys.stderr)
            return
        finally:
            conn.close()   # sshd has its own copy; ours would keep the connection open
        with self._lock:
            if self.refusal:   # the job stopped taking sessions while this one's sshd started
                session.end_if_unused()
        self.on_change()
        log = session.wait()
        if log:
            print(f"condor-job-starter: session of job {self.context.job} ended badly:\n{log}",
                  file=sys.stderr)
        self._forget(session)

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
                                     job_pids, hello.get("spare") is True)
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

    def _open_session(self, client_key: str, shells: object, job_pids: list[int],
                      spare: bool) -> Session:
        shells = usable_shells(shells)
        with self._lock:
            if self.refusal:   # checked again: the job may have stopped taking sessions meanwhile
                raise Refused(*self.refusal)
            if len(self._sessions) >= self.max_sessions:
                raise Refused(Refusal.TOO_MANY_SESSIONS, f"job {self.context.job} already has "
                              f"{self.max_sessions} sessions open (the limit)")
            try:
                session = Session(self.context, client_key, shells, job_pids, spare)
            except OSError as err:
                raise Refused(Refusal.INTERNAL, _tmpdir_problem(err)) from None
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


def _tmpdir_problem(err: OSError) -> str:
    """Why no session directory could be made, in words an admin acts on."""
    where = f"the job's TMPDIR ({tempfile.gettempdir()})"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot open a session: no space left in {where}"
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot open a session: {where} is not writable"
    return f"cannot open a session in {where}: {err.strerror or err}"


def _try(action: Callable[[], None]) -> None:
    try:
        action()
    except (ProtocolError, OSError):
        pass
