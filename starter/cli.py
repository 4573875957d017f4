"""``condor-job-starter``: the job-side command line (thin: the work is in ``agent``)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from . import paths
from .agent import JobOptions, StarterError, run_job
from .publish import LocalPublisher


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """The job-side agent of condor-job-proxy."""


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--queue", "queue", metavar="DIR",
              help=f"Local queue directory (default: ${paths.QUEUE_ENV}, config, or the state dir).")
@click.option("--authorized-keys-file", "keys_files", multiple=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="More public keys allowed into the job (e.g. the owner's); repeatable.")
@click.option("--listen", default="127.0.0.1", show_default=True, metavar="ADDR",
              help="Address the session server listens on.")
@click.option("--port", default=0, show_default=True, help="Port (0: any free port).")
@click.option("--max-sessions", default=64, show_default=True, help="Concurrent sessions allowed.")
@click.argument("command", nargs=-1, required=True)
def run(queue: str | None, keys_files: tuple[Path, ...], listen: str, port: int,
        max_sessions: int, command: tuple[str, ...]) -> None:
    """Run COMMAND as a job you can ssh into: condor-job-starter run -- CMD ARGS..."""
    options = JobOptions(command=list(command), publisher=LocalPublisher(paths.queue_dir(queue)),
                         authorized_keys_files=list(keys_files), listen_host=listen,
                         listen_port=port, max_sessions=max_sessions)
    try:
        status = run_job(options)
    except (StarterError, ValueError, OSError) as err:
        click.echo(f"condor-job-starter: {err}", err=True)
        sys.exit(1)
    sys.exit(status)


def main() -> None:
    cli()
