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
    """One way into a job's sshd."""
    name = ""

    def open_session(self, endpoint: JobEndpoint, request: SessionRequest) -> OpenSession:
        """An authenticated connection that carries the raw SSH stream from now on."""
        raise NotImplementedError


def load(name: str) -> BaseTransport:
    """The backend for transport ``name``; an unknown name is one clear error."""
    if name not in NAMES:
        raise ProxyError(f"no transport named {name!r}")
    # __import__ rather than importlib.import_module: the same import, but one that
    # ``python -X importtime`` (how the start-up test sees what a connect loads) reports.
    return __import__(f"{__name__}.{name.replace('-', '_')}", fromlist=["_"]).Transport()
