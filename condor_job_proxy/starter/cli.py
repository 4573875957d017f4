"""``condor-job-starter``: the job-side command line (thin: the work is in ``agent``)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..common import paths
from ..common.about import version_option
from .agent import JobOptions, StarterError, run_job
from ..common.jobad import JobAdError
from ..common.safepath import UnsafePath
from .lifecycle import Limits
from .publish import LocalPublisher, Publisher

_QUEUE_HELP = f"Local queue directory (default: ${paths.QUEUE_ENV}, config, or the state dir)."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@version_option("condor-job-starter")
def cli() -> None:
    """The job-side agent of condor-job-proxy."""


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--queue", "queue", metavar="DIR", help=_QUEUE_HELP)
@click.option("--authorized-keys-file", "keys_files", multiple=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="More public keys allowed into the job (e.g. the owner's); repeatable.")
@click.option("--htcondor/--local", "htcondor", default=None,
              help="Publish in the HTCondor job ad through chirp, or in the local queue "
                   "(default: HTCondor when $_CONDOR_JOB_AD is set).")
@click.option("--listen", default=None, metavar="ADDR", envvar="CONDOR_JOB_PROXY_LISTEN",
              help="Address the session server listens on (default: 127.0.0.1; in HTCondor "
                   "the execute node's address from the machine ad).")
@click.option("--port", default=0, show_default=True,
              help="The port to listen on (0: any free port).")
@click.option("--port-range", metavar="FIRST-LAST", envvar="CONDOR_JOB_PROXY_PORT_RANGE",
              help="Use the first free port in this range (e.g. what a firewall lets through).")
@click.option("--super-users-keys", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE", help="HTCondor: keys allowed into any job (default: "
              "$CONDOR_JOB_PROXY_SUPER_USERS_KEYS or /etc/condor-job-proxy/super_users_keys).")
@click.option("--max-sessions", default=64, show_default=True,
              type=click.IntRange(min=1), help="How many sessions may be open at once.")
@click.option("--memory-limit", type=click.FloatRange(min=0, min_open=True), metavar="MB",
              help="Remove the job when the resident memory of it and its sessions exceeds MB.")
@click.option("--cpu-limit", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Remove the job when the CPU time of it and its sessions exceeds SECONDS.")
@click.option("--grace", default=5.0, show_default=True, type=click.FloatRange(min=0),
              metavar="SECONDS", help="On removal, time between SIGTERM/SIGHUP and SIGKILL.")
@click.option("--linger", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Remove the job once no session has been open for SECONDS (interactive jobs).")
@click.option("--label", default="", metavar="TEXT",
              help="A label kept in the job's record (interactive jobs are found again by it).")
@click.argument("command", nargs=-1, required=True)
def run(queue: str | None, keys_files: tuple[Path, ...], htcondor: bool | None,
        listen: str | None, port: int, port_range: str | None, super_users_keys: Path | None,
        max_sessions: int, memory_limit: float | None, cpu_limit: float | None, grace: float,
        linger: float | None, label: str, command: tuple[str, ...]) -> None:
    """Run COMMAND as a job you can ssh into.

    Put -- before COMMAND, so that its own options are not read as the starter's. The
    starter exits with COMMAND's exit status.
    """
    try:
        if htcondor is None:
            htcondor = bool(os.environ.get("_CONDOR_JOB_AD"))
        publisher, default_listen = (_htcondor_publisher(super_users_keys) if htcondor
                                     else (LocalPublisher(paths.queue_dir(queue)), "127.0.0.1"))
        options = JobOptions(command=list(command), publisher=publisher,
                             authorized_keys_files=list(keys_files),
                             listen_host=listen or default_listen, listen_port=port,
                             port_range=_port_range(port_range), max_sessions=max_sessions,
                             limits=Limits(memory_limit, cpu_limit, grace, linger), label=label)
        status = run_job(options)
    except (StarterError, JobAdError, UnsafePath, ValueError, OSError) as err:
        click.echo(f"condor-job-starter: {err}", err=True)
        sys.exit(1)
    sys.exit(status)


def _htcondor_publisher(super_users_keys: Path | None) -> tuple[Publisher, str]:
    """The job ad publisher and the execute node's address, found before the job starts."""
    from ..common import jobad
    from .condor_publish import HTCondorPublisher
    publisher = HTCondorPublisher(jobad.read_job_ad(), super_users_keys)
    host = jobad.execute_host()
    if not host:
        raise StarterError(f"no execute node address: ${jobad.MACHINE_AD_ENV} has no MyAddress "
                           "(give --listen ADDR)")
    return publisher, host


def _port_range(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    first, sep, last = text.partition("-")
    try:
        bounds = (int(first), int(last if sep else first))
    except ValueError:
        raise ValueError(f"invalid port range {text!r}: expected FIRST-LAST") from None
    if not 0 < bounds[0] <= bounds[1] < 65536:
        raise ValueError(f"invalid port range {text!r}: expected 1 <= FIRST <= LAST <= 65535")
    return bounds


def _control(action: str, help_text: str) -> None:
    @cli.command(name={"remove": "rm"}.get(action, action), help=help_text)
    @click.option("--queue", "queue", metavar="DIR", help=_QUEUE_HELP)
    @click.option("--wait", "wait_seconds", default=30.0, show_default=True, metavar="SECONDS",
                  help="How long to wait for the job's record to show the change (0: not at all).")
    @click.argument("job_id", metavar="JOB")
    def command(queue: str | None, wait_seconds: float, job_id: str) -> None:
        from ..common.queue_control import ControlError, act
        from ..common.jobid import parse_job_id
        from ..common.queue import LocalQueue
        try:
            job = parse_job_id(job_id)
            record = act(LocalQueue(paths.queue_dir(queue)), job, action, wait_seconds)
        except (ControlError, ValueError) as err:
            click.echo(f"condor-job-starter: {err}", err=True)
            sys.exit(1)
        click.echo(f"job {job} {record.get('state')}" if wait_seconds else
                   f"job {job}: {action} requested")


_control("remove", "Remove JOB and every session process.\n\nThey get SIGTERM (sessions also "
         "SIGHUP), then SIGKILL after the starter's --grace seconds.")
_control("suspend", "Suspend JOB and all its sessions.\n\nThe job and every session "
         "process get SIGSTOP.")
_control("resume", "Resume a suspended JOB and its sessions.\n\nThe job and every "
         "session process get SIGCONT.")


def main() -> None:
    cli()
