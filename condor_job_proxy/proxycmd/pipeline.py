"""One session pipeline for every way into a job: ssh's ProxyCommand, the connect daemon and
condor_ssh_to_job, whatever the transport (our starter, EC2, the pool's own ssh-to-job).

``open_ready`` checks the login name, opens the session through the endpoint's transport, pins
the session's host key and settles which private key ssh must offer, by one rule for all
transports; what is then done with the socket (passed to ssh, relayed, sent back by the daemon,
offered to the wrapper's ssh) is the caller's delivery step.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from condor_job_proxy.common.jobid import JobId
from condor_job_proxy.common.names import printable

from . import client_files, handoff, transports
from .errors import ProxyError, UserMismatch, report
from .model import JobEndpoint, OpenSession, ReadySession, SessionRequest

Opener = Callable[[JobEndpoint, SessionRequest], OpenSession]


def open_session(endpoint: JobEndpoint, request: SessionRequest) -> OpenSession:
    """A new session through the endpoint's transport."""
    return transports.load(endpoint.transport).open_session(endpoint, request)


def open_ready(endpoint: JobEndpoint, request: SessionRequest, known_hosts: Path,
               identity_link: Path | None = None, opener: Opener = open_session) -> ReadySession:
    """A connected session whose host key is pinned in ``known_hosts`` under the job's host
    name (and, given ``identity_link``, ssh's identity link pointed at the key it needs).
    ``opener`` gets the session: a new one, or the connect daemon's spare."""
    host = request.host or endpoint.job.host()
    if endpoint.notice:   # another account's job: entered only by typing that account's name
        check_other_account(endpoint, request.ssh_user, host)
    else:
        check_login(endpoint.job, endpoint.user, request.ssh_user, host)
    session = opener(endpoint, request)
    try:
        backend = transports.load(endpoint.transport)   # loaded already: it made the session
        check_claim(endpoint, session.user, backend)
        check_login(endpoint.job, backend.insisted_user(session.user), request.ssh_user, host)
        client_files.pin(host, session.host_key, known_hosts, session.note)
    except BaseException:
        session.sock.close()
        raise
    identity = Path(session.key_file or endpoint.key_file or request.login_key or request.identity)
    if identity_link is not None:
        client_files.point_identity(host, identity, identity_link)
    notice = "\n".join(line for line in (endpoint.notice, session.notice) if line)
    return ReadySession(session.sock, session.user, identity, known_hosts, session.host_key,
                        session.key_file, notice)


def check_claim(endpoint: JobEndpoint, session_user: str,
                backend: transports.BaseTransport) -> None:
    """Our starter's sessions run as the account its queue record or job ad says: a starter
    that claims another (an impostor with a borrowed name) is refused, not believed."""
    if backend.claims_session_user and endpoint.user and session_user != endpoint.user:
        raise ProxyError(f"job {endpoint.job}: its starter says its sessions run as "
                         f"{printable(repr(session_user), 80)}, but the job is "
                         f"{endpoint.user}'s; refusing to connect")


def check_login(job: JobId, runs_as: str, asked: str | None, host: str) -> None:
    """Refuse, before any SSH byte, a login name the job's sshd would turn down."""
    if asked and runs_as and asked != runs_as:
        raise UserMismatch(f"job {job} runs as user {runs_as!r}, not {asked!r}: use ssh "
                           f"{runs_as}@{host} (or run: condor-job-proxy config refresh)", runs_as)


def check_other_account(endpoint: JobEndpoint, asked: str | None, host: str) -> None:
    """A local job of another uid's is never entered on the include's (or a remembered
    connection's) say-so: ssh must ask for that account's name, typed by the user. Neither a
    UserMismatch (which would rewrite the include) nor a hint to refresh it."""
    if asked and asked != endpoint.user:
        raise ProxyError(f"job {endpoint.job} is {endpoint.user}'s, not yours: "
                         f"{enter_on_purpose(endpoint.user, host)}")


def enter_on_purpose(user: str, host: str) -> str:
    """How to enter another account's job on purpose: its name, typed, is the consent."""
    return f"to enter it as {user} on purpose, type that name: ssh {user}@{host}"


def to_ssh(relay: bool = False) -> Callable[[ReadySession], None]:
    """Delivery to the ssh that runs us as its ProxyCommand: the socket itself when ssh takes
    an fd (ProxyUseFdpass), else a relay of our stdin/stdout."""
    def deliver(ready: ReadySession) -> None:
        if ready.notice:
            report(ready.notice)
        if not relay and handoff.stdout_takes_fd():
            handoff.pass_fd(ready.sock)
        else:
            handoff.relay(ready.sock)
    return deliver
