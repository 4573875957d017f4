"""Transports open an authenticated connection to a job's sshd.

Shaped like sshuttle's ``methods``: ``BaseTransport`` below is the interface, each module of
this package defines one backend as a class named ``Transport``, and ``load`` imports the one an
endpoint names (``htcondor-native`` is module ``htcondor_native``), so each connect imports only
the backend it uses.
"""
from __future__ import annotations


from ..errors import ProxyError
from ..model import JobEndpoint, OpenSession, SessionRequest

NAMES = ("starter", "ec2", "htcondor-native")


class BaseTransport:
    """One way into a job's sshd. Callers ask what a backend does through what is declared
    here (``load(endpoint.transport).keeps_spares``), never by its name."""
    name = ""
    # It runs HTCondor's own condor_ssh_to_job: the connect daemon leaves its connects to the
    # full command (they gain nothing from it), our condor_ssh_to_job hands the job to that tool.
    runs_htcondor_tool = False
    # It proves who we are with the user's job-access key: the daemon serves it only when it
    # can sign with that key itself (no passphrase for ssh-keygen to ask on a terminal).
    signs_with_user_key = False
    # The daemon may open a session ahead of need and keep it (the starter knows spares).
    keeps_spares = False
    # ssh logs in with a key file that must not leave this machine (no --via relay for it).
    login_key_stays_here = False
    # The far end says which account the session runs as, and must name the job's own user.
    claims_session_user = False
    # ssh meets a plain sshd the job's host runs (an EC2 instance's): no handshake of ours to
    # sign, no session key or shells to pass on, and condor_ssh_to_job's rules for such jobs
    # as HTCondor documents them (no -ssh program, no -X, the login name the user's).
    plain_sshd = False

    def open_session(self, endpoint: JobEndpoint, request: SessionRequest) -> OpenSession:
        """An authenticated connection that carries the raw SSH stream from now on."""
        raise NotImplementedError

    def insisted_user(self, session_user: str) -> str:
        """The login name the session's sshd insists on, from the user the session reports;
        "" when it takes any name."""
        return session_user


def load(name: str) -> BaseTransport:
    """The backend for transport ``name``; an unknown name is one clear error."""
    if name not in NAMES:
        raise ProxyError(f"no transport named {name!r}")
    # __import__ rather than importlib.import_module: the same import, but one that
    # ``python -X importtime`` (how the start-up test sees what a connect loads) reports.
    return __import__(f"{__name__}.{name.replace('-', '_')}", fromlist=["_"]).Transport()
