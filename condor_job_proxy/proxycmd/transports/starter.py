"""Our own starter: TCP to its session server, then the mutual-authentication handshake."""
from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from condor_job_proxy.common import sshsig
from condor_job_proxy.common.protocol import (NONCE_BYTES, PROTOCOL_VERSION, Channel, ProtocolError,
                                              Refusal, text_field)

from ..errors import JobNotRunning, NotAuthorized, ProxyError
from ..userkey import public_key_blob
from ..model import JobEndpoint, OpenSession, SessionRequest
from . import BaseTransport

if TYPE_CHECKING:
    from pathlib import Path

CONNECT_SECONDS = 10.0
_REFUSAL_PREFIX = {
    Refusal.NOT_OWNER: "you are not the job's owner",
    Refusal.TOO_MANY_SESSIONS: "too many sessions",
    Refusal.JOB_EXITED: "job has exited",
}


class Transport(BaseTransport):
    """Our own starter: TCP to its session server and the mutual-authentication handshake."""
    name = "starter"
    signs_with_user_key = True
    keeps_spares = True
    claims_session_user = True

    def open_session(self, endpoint: JobEndpoint, request: SessionRequest) -> OpenSession:
        """Connect and authenticate both ways. Both ssh-keygen runs start first, so their start-up
        overlaps the connect and the starter's own work instead of following it."""
        public_key = public_key_blob(request.identity)
        signer = _start_signing(request)
        try:
            checker = sshsig.start_verify(endpoint.starter_key)
        except BaseException:
            signer.cancel()
            raise
        try:
            sock = _connect(endpoint)
            try:
                return _handshake(Channel(sock), endpoint, request, public_key, signer, checker)
            except BaseException:
                sock.close()
                raise
        finally:
            signer.cancel()
            checker.cancel()


def _connect(endpoint: JobEndpoint, seconds: float = CONNECT_SECONDS) -> socket.socket:
    host, _, port = endpoint.address.rpartition(":")
    try:
        sock = socket.create_connection((_host_for_lookup(host.strip("[]")), int(port)),
                                        timeout=seconds)
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or err
        raise ProxyError(f"cannot reach the starter of job {endpoint.job} at "
                         f"{endpoint.address}: {reason}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _host_for_lookup(host: str) -> str | bytes:
    """getaddrinfo IDNA-encodes every str it gets, importing the unicode tables (~3 ms) even
    for ``127.0.0.1``; an ASCII name or address goes as bytes and means the same."""
    return host.encode() if host.isascii() else host


def _handshake(channel: Channel, endpoint: JobEndpoint, request: SessionRequest,
               public_key: str, signer: sshsig.PendingSignature,
               checker: sshsig.PendingVerification) -> OpenSession:
    job = endpoint.job
    try:
        extra = {"session_key": request.session_key} if request.session_key else {}
        if request.spare:
            extra["spare"] = True
        cert = _certificate(endpoint, request) if request.certify else ""
        if cert:
            extra["host_cert"] = cert
        channel.send("hello", proto=PROTOCOL_VERSION, job=str(job), user=request.user,
                     key=public_key, nonce=os.urandom(NONCE_BYTES).hex(), shells=request.shells,
                     **extra)
        _raise_if_refused(channel.receive("challenge"), job)
        channel.send("auth", sig=_finish_signing(signer, channel.transcript.signed_data("client")))
        accept = channel.receive("accept")
        _raise_if_refused(accept, job)
        signed = channel.transcript.signed_data("server")
        checker.finish(signed, text_field(channel.receive("sig"), "sig"))
        host_key, session_user = text_field(accept, "host_key"), text_field(accept, "user", 256)
    except ProtocolError as err:
        raise ProxyError(f"job {job}: handshake with the starter failed: {err}") from None
    except sshsig.SignatureError as err:
        raise ProxyError(f"job {job}: the starter did not prove it holds the job's published "
                         f"key ({err}); refusing to connect") from None
    channel.sock.settimeout(None)
    return OpenSession(channel.sock, host_key, session_user, spare=accept.get("spare") is True)


def check_access(endpoint: JobEndpoint, identity: Path,
                 seconds: float = CONNECT_SECONDS) -> None:
    """Ask the job's starter whether it lets ``identity``'s key in as ``endpoint.user``, without
    opening a session (doctor): the hello goes out, and the starter's challenge means yes, its
    refusal comes back in the words a connect gets; no auth follows, so nothing is opened.
    Nothing is signed either way, so this diagnoses, it proves nothing about the starter."""
    job = endpoint.job
    with _connect(endpoint, seconds) as sock:
        channel = Channel(sock, seconds)   # the whole exchange: a starter may stay silent
        try:
            channel.send("hello", proto=PROTOCOL_VERSION, job=str(job), user=endpoint.user,
                         key=public_key_blob(identity), nonce=os.urandom(NONCE_BYTES).hex())
            _raise_if_refused(channel.receive("challenge"), job)
        except ProtocolError as err:
            raise ProxyError(f"job {job}: handshake with the starter failed: {err}") from None


def _certificate(endpoint: JobEndpoint, request: SessionRequest) -> str:
    """The user's host CA's certificate of the host key the starter published; "" when it
    cannot be made (an unreadable CA, cryptography before 40): the session goes without, as
    before, and only a client that needs it (asyncssh) finds the host key unverifiable
    (``doctor`` says why)."""
    from .. import hostca
    try:
        return hostca.certify(endpoint.host_keys[0], request.certify)
    except (OSError, ValueError, ImportError):
        return ""


def _start_signing(request: SessionRequest) -> sshsig.PendingSignature:
    try:
        return sshsig.start_sign(str(request.identity))
    except OSError as err:
        raise ProxyError(f"cannot run ssh-keygen to sign: {err.strerror}") from None


def _finish_signing(signer: sshsig.PendingSignature, data: bytes) -> str:
    try:
        return signer.finish(data)
    except sshsig.SignatureError as err:
        raise ProxyError(str(err)) from None


def _raise_if_refused(message: dict, job: object) -> None:
    if message.get("type") != "refused":
        return
    code = str(message.get("code", ""))
    # Shown before the starter has proved anything: no control character (a terminal escape)
    # from the other end reaches the user's terminal.
    raw = str(message.get("message", "refused"))[:500]
    text = "".join(c if c.isprintable() else " " for c in raw)
    prefix = _REFUSAL_PREFIX.get(code)
    line = f"job {job}: {prefix}: {text}" if prefix else f"job {job}: {text}"
    if code == Refusal.NOT_OWNER:
        raise NotAuthorized(line)
    if code in (Refusal.JOB_EXITED, Refusal.NOT_RUNNING):
        # Suspended or ending: it ran already, so waiting "for it to start" would be wrong.
        raise JobNotRunning(line, "completed" if code == Refusal.JOB_EXITED else "not_running")
    raise ProxyError(line)
