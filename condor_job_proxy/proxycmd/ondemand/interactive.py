"""``ssh condor-interactive[-NAME]``: a job on demand, reused while it lives.

The ProxyCommand finds this user's live job of the template (so VS Code's reconnects and a
second terminal land in the same job), or submits one; waits for it to run with a status
line on stderr; ``condor_job_proxy.proxycmd.connect`` then connects as for ``ssh job-N.P``. The
job ends itself once nobody has used it for the template's linger time (the starter's ``--linger``). A job we submitted is
removed again when the wait is interrupted or ends without a session (held, timed out).
"""
from __future__ import annotations

import signal
import sys

from condor_job_proxy.common.jobid import JobId

from . import template as interactive_template
from ..errors import JobNotFound, ProxyError
from .submit import Backend, backend_for, describe
from .template import Template
from ..model import JobEndpoint
from ..resolvers import default_resolver
from .waiting import Waiter, explainer, resolve_waiting, wait_seconds

_HANGUPS = (signal.SIGTERM, signal.SIGHUP)   # ssh ends its ProxyCommand with SIGHUP


def interactive_endpoint(host: str, queue: str | None = None) -> JobEndpoint:
    """Find or submit the template's job and wait for it to run; where to reach it then."""
    name = interactive_template.template_name(host)
    if name is None:
        raise ProxyError(f"{host}: not an interactive host (condor-interactive or "
                         "condor-interactive-<template>)")
    template = interactive_template.load(name)
    resolver = default_resolver(queue)
    backend = backend_for(resolver)
    job = backend.find(template)
    if job is not None:
        _say(f"{host}: reusing job {job}")
        return _wait(resolver, backend, template, job, host)
    job = backend.submit(template)
    _say(f"{host}: submitted job {job} ({describe(template)})")
    return _wait_or_remove(resolver, backend, template, job, host)


def _wait(resolver, backend: Backend, template: Template, job: JobId,
          host: str) -> JobEndpoint:
    """Wait for the job to run; one that ends meanwhile is reported with how it ended."""
    waiter = Waiter(f"{job} ({host})", explain=explainer(resolver, job))
    return resolve_waiting(resolver, job, wait_seconds(interactive_host=True), waiter,
                           ended=lambda: backend.ended(job, template))


def _wait_or_remove(resolver, backend: Backend, template: Template, job: JobId,
                    host: str) -> JobEndpoint:
    """Wait for the job we submitted; take it out again if the wait does not end in a run
    (unless it has already left the queue)."""
    previous = {signum: signal.signal(signum, _interrupt) for signum in _HANGUPS}
    try:
        return _wait(resolver, backend, template, job, host)
    except JobNotFound:
        raise
    except (ProxyError, KeyboardInterrupt) as err:
        reason = "interrupted" if isinstance(err, KeyboardInterrupt) else str(err)
        _remove(backend, job, f"condor-job-proxy: {host} gave up waiting ({reason})")
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signum)


def _remove(backend: Backend, job: JobId, reason: str) -> None:
    try:
        backend.remove(job, reason)
        _say(f"removed job {job}")
    except (ProxyError, OSError) as err:
        _say(f"could not remove job {job}: {err}")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def host_names() -> list[str]:
    """Every interactive host the config defines (for the include's Host line)."""
    return [interactive_template.host_for(name) for name in interactive_template.template_names()]

