"""condor-job-proxy. This package's own modules are the command-line front ends over
``proxycmd`` and ``sshconfig`` (thin: the work is below); ``starter`` is the job-side agent and
``common`` what both ends speak."""
from __future__ import annotations


def refresh_include(queue: str | None) -> None:
    """The connect path's hook after ssh used a login name the job does not run as: rewriting
    ssh_config is ``sshconfig``'s, a layer above ``proxycmd``, so it comes in from here."""
    from condor_job_proxy.sshconfig import install
    install.refresh_include(queue)
