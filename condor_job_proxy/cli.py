"""``condor-job-proxy``: connect (the ProxyCommand), setup, config, jobs, pubkey.

Every failure becomes one line on stderr and exit status 255, ssh's code for a failed
connection; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from condor_job_proxy.proxycmd import options
from condor_job_proxy.proxycmd.errors import one_line
from condor_job_proxy.proxycmd.outcome import FAILED
from condor_job_proxy.common.about import version_option
from condor_job_proxy.common.settings import SettingsError

from . import refresh_include

if TYPE_CHECKING:
    from condor_job_proxy.proxycmd.via.hop import Hop
    from condor_job_proxy.proxycmd.model import JobSummary
    from condor_job_proxy.proxycmd.resolvers import BaseResolver


class _Group(click.Group):
    """Turns every error into one line and exit 255, unless --debug."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except SettingsError as err:   # the user's own file: said as click says a bad option
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise click.ClickException(str(err)) from None
        except Exception as err:   # noqa: BLE001 - the contract is one line, never a traceback
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(one_line(err), err=True)
            ctx.exit(FAILED)


def _from_table(table: tuple[options.Option, ...], **helps: str):
    """click options for one table of ``condor_job_proxy.proxycmd.options`` (the ProxyCommand's
    own parser reads the same table); ``helps`` words an option's help for another command."""
    def decorate(function):
        for option in reversed(table):
            path = {"type": click.Path(path_type=Path)} if option.is_path else {}
            function = click.option(option.flag, option.key, is_flag=not option.takes_value,
                                    metavar=option.metavar or None,
                                    help=helps.get(option.key, option.help), **path)(function)
        return function
    return decorate


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@version_option("condor-job-proxy")
@_from_table(options.GROUP)
@click.pass_context
def cli(ctx: click.Context, queue: str | None, debug: bool, config_dir: str | None,
        state_dir: str | None) -> None:
    """ssh, scp, sftp and rsync into running jobs by name, as in ssh job-32.0."""
    from condor_job_proxy.common import paths
    paths.use_dirs(config_dir, state_dir)
    ctx.obj = {"queue": queue, "debug": debug, "config_dir": config_dir, "state_dir": state_dir}


@cli.command()
@click.argument("host")
@click.argument("user", required=False)
@_from_table(options.CONNECT)
@click.pass_obj
def connect(obj: dict, host: str, user: str | None, **given: object) -> None:
    """Connect ssh to a job: the ProxyCommand.

    The generated ssh config runs it as connect %n %r: HOST is the job's host name, USER the
    login name ssh was asked for.
    """
    from condor_job_proxy.proxycmd.main import run_connect
    sys.exit(run_connect({**obj, **given, "host": host, "user": user},
                         after_user_mismatch=refresh_include))


@cli.command()
@click.option("--socket", "socket_path", type=click.Path(path_type=Path), metavar="PATH",
              help="Serve at PATH (the fast client names it when it starts a daemon).")
@click.option("--stop", is_flag=True, help="Stop the daemons the generated ssh config uses "
              "(or the one at --socket).")
@click.pass_obj
def daemon(obj: dict, socket_path: Path | None, stop: bool) -> None:
    """Serve or stop your connect daemon.

    ssh's fast client asks the daemon to connect, so a connect does not start the full proxy
    command; the first connect starts the daemon, and it exits after a quiet spell.
    """
    from condor_job_proxy.common import paths
    from condor_job_proxy.proxycmd.daemon import server
    if stop:
        for path in [socket_path] if socket_path else _daemon_sockets(obj["queue"]):
            server.stop(path)
        return
    if socket_path is None:
        raise click.UsageError("give --socket PATH (or --stop)")
    shared = {key: obj[key] for key in options.DAEMON_SHARED}
    chosen = paths.settings()
    server.serve(socket_path, shared, chosen.connect_daemon_idle, refresh_include,
                 chosen.spare_session_seconds)


def _daemon_sockets(queue: str | None) -> list[Path]:
    """The sockets of the daemons serving the generated config (one per environment)."""
    from condor_job_proxy.proxycmd.daemon.server import sockets
    from condor_job_proxy.sshconfig import install
    base = install.daemon_socket_base(queue, create=False)
    return sockets(base) if base else []


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Full records, for scripts.")
@click.option("--names", is_flag=True,
              help="Only host names of running jobs you may enter (completion).")
@click.pass_obj
def jobs(obj: dict, as_json: bool, names: bool) -> None:
    """List jobs, like a small condor_q.

    On a laptop set up with setup --via, the jobs on that access point.
    """
    from condor_job_proxy.proxycmd.via import hop as hops
    from condor_job_proxy.proxycmd.model import REACHABLE_STATES
    hop = _via(obj)
    resolver = None if hop else _resolver(obj)
    if hop:
        found = hops.list_jobs(hop)
    else:   # names, as the include's Host blocks: only your own local jobs
        found = resolver.enterable_jobs()[0] if names else resolver.list_jobs()
    _say_ignored(obj, resolver)
    if as_json:
        click.echo(json.dumps([_summary_json(job) for job in found], indent=2))
    elif names:
        from condor_job_proxy.common import paths
        prefix = paths.settings().host_prefix
        click.echo("".join(f"{job.job.host(prefix)}\n" for job in found if job.state in REACHABLE_STATES),
                   nl=False)
    else:
        _print_table(found)


def _print_table(found: list[JobSummary]) -> None:
    """The listing; what records and ads say is made printable (no control characters)."""
    from condor_job_proxy.common.names import printable
    click.echo(f"{'ID':<10} {'OWNER':<14} {'STATE':<10} {'AGE':>11}  CMD")
    now = time.time()
    for job in found:
        click.echo(f"{str(job.job):<10} {printable(job.owner, 64):<14} {printable(job.state, 80):<10} "
                   f"{_age(now - job.start_time):>11}  {printable(' '.join(job.command))}")
        if job.hold_reason:
            click.echo(f"{'':<10} held: {printable(job.hold_reason)}")


def _say_ignored(obj: dict, resolver: BaseResolver | None) -> None:
    """With --debug: the files of the local queue that are not records, and why."""
    queue = resolver.queue if resolver else None
    if obj.get("debug") and queue is not None:
        for line in queue.ignored:
            click.echo(f"debug: {line}", err=True)


@cli.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask before changing ~/.ssh/config.")
@click.option("--dry-run", is_flag=True, help="Show the changes as a unified diff; change nothing.")
@click.option("--ssh-config", type=click.Path(dir_okay=False, path_type=Path),
              help="The ssh config file to add the Include to (default: ~/.ssh/config).")
@_from_table(options.pick("via", "via_command"), via="Reach the jobs of this access point "
             "through your own ssh to it (a laptop outside the pool).")
@click.pass_obj
def setup(obj: dict, yes: bool, dry_run: bool, ssh_config: Path | None, via: str | None,
          via_command: str | None) -> None:
    """Set up ssh for job host names.

    Creates your job-access key unless one exists, writes the generated include and adds the
    Include block at the top of ~/.ssh/config.
    """
    from condor_job_proxy.proxycmd.via.hop import DEFAULT_COMMAND, Hop
    from condor_job_proxy.proxycmd.userkey import ensure_key
    from condor_job_proxy.sshconfig import install, managed
    from condor_job_proxy.sshconfig import via as remembered_via
    ssh_config = ssh_config or managed.user_ssh_config()
    hop = Hop(via, via_command or DEFAULT_COMMAND) if via else None
    block = install.block_change(ssh_config, obj["queue"])
    if block.changed and not yes and not dry_run and sys.stdin.isatty():
        click.echo(block.diff(), err=True)   # asked before anything is written or built
        click.confirm(f"Change {ssh_config} like this?", abort=True, err=True)
    resolver = None if hop else _resolver(obj)
    jobs, left_out = install.listed_jobs(resolver, hop)
    include = install.include_change(resolver, obj["queue"], dry_run, jobs=jobs, via=hop,
                                     left_out=left_out)
    if dry_run:
        click.echo(include.diff() + block.diff() or f"{ssh_config}: already set up\n", nl=False)
        return
    key, created = ensure_key()
    click.echo(f"{'created' if created else 'using'} job-access key {key}", err=True)
    remembered_via.remember(hop)
    install.apply_include(include, jobs)
    if block.changed:
        block.apply()
    click.echo(f"{ssh_config} includes {install.include_file()}; try: ssh job-<id>", err=True)


@cli.group()
def config() -> None:
    """Refresh, show or remove the generated config.

    That is the generated ssh config include, and the block setup added to ~/.ssh/config.
    """


@config.command("refresh")
@click.option("--if-missing", "host", metavar="HOST",
              help="Only if HOST has no Host block yet (ssh's Match exec runs this).")
@click.option("--dry-run", is_flag=True, help="Show the changes as a unified diff.")
@_from_table(options.pick("via"), via="List the jobs on this access point (default: the one "
             "setup --via named).")
@click.pass_obj
def config_refresh(obj: dict, host: str | None, dry_run: bool, via: str | None) -> None:
    """Rewrite the include from the job list.

    One Host block per running job, with its User; files kept for jobs that left are removed.
    """
    from condor_job_proxy.proxycmd.via import hop as hops
    from condor_job_proxy.proxycmd import client_files
    from condor_job_proxy.proxycmd.model import REACHABLE_STATES
    from condor_job_proxy.sshconfig import install
    from condor_job_proxy.sshconfig import via as remembered_via
    if host is not None and install.includes_host(host):
        return
    hop = remembered_via.remembered()
    if via:
        hop = hops.Hop(via, hop.command if hop else hops.DEFAULT_COMMAND)
    resolver = None if hop else _resolver(obj)
    jobs, left_out = install.listed_jobs(resolver, hop)
    _say_ignored(obj, resolver)
    change = install.include_change(resolver, obj["queue"], dry_run, jobs=jobs, via=hop,
                                    left_out=left_out)
    if dry_run:
        click.echo(change.diff(), nl=False)
        return
    install.apply_include(change, jobs)
    client_files.prune({job.job for job in jobs if job.state in REACHABLE_STATES})


@config.command("show")
def config_show() -> None:
    """Print the generated include."""
    from condor_job_proxy.sshconfig import install, managed
    text = managed.read(install.include_file())
    if text is None:
        raise click.ClickException(f"no {install.include_file()} (run: condor-job-proxy setup)")
    click.echo(text, nl=False)


@config.command("uninstall")
@click.option("--ssh-config", type=click.Path(dir_okay=False, path_type=Path),
              help="The ssh config file setup changed (default: ~/.ssh/config).")
@click.option("--dry-run", is_flag=True, help="Show the changes as a unified diff; change nothing.")
def config_uninstall(ssh_config: Path | None, dry_run: bool) -> None:
    """Remove exactly what setup added.

    The block in ~/.ssh/config and the include go; your job-access key stays.
    """
    from condor_job_proxy.sshconfig import install, managed
    changes = install.removal_changes(ssh_config or managed.user_ssh_config())
    if dry_run:
        click.echo("".join(change.diff() for change in changes), nl=False)
        return
    for change in changes:
        change.apply()
        if change.changed:
            click.echo(f"{'removed' if change.new is None else 'restored'} {change.path}", err=True)


@cli.command()
def pubkey() -> None:
    """Print your public job-access key.

    Give it to condor-job-starter run --authorized-keys-file, or put it in a submit file.
    """
    from condor_job_proxy.proxycmd.userkey import public_key
    click.echo(public_key())



@cli.command("submit-snippet")
@click.option("--into", "into", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
              help="Put the lines into submit file FILE, before its queue statement, running "
                   "the program FILE names under the starter.")
def submit_snippet(into: Path | None) -> None:
    """Print submit-file lines for a reachable job.

    The lines make an HTCondor job reachable with ssh job-N.P: the starter as the job's
    executable, +WantIOProxy, and your public job-access key. They must come before the
    submit file's queue statement: use --into FILE rather than >> FILE.
    """
    from . import snippet
    if into is None:
        click.echo("\n".join(snippet.lines()))
        return
    snippet.insert_into(into)
    click.echo(f"{into}: added condor-job-proxy's lines before its queue statement", err=True)


@cli.command()
@click.argument("job")
@click.pass_obj
def doctor(obj: dict, job: str) -> None:
    """Say how a job would be reached, and why not.

    JOB is 32.0 or job-32.0. Also checks ssh, your key, the include and the connect daemon.
    Exits 0 when a connect would get into the job now, 1 when not. On a laptop set up with
    setup --via, the access point's doctor looks at the job.
    """
    from condor_job_proxy import doctor as checks
    hop = _via(obj)
    found = checks.report_via(job, hop) if hop else checks.report(job, obj["queue"])
    try:
        for line in found.lines:
            click.echo(line)
        sys.stdout.flush()
    except BrokenPipeError:   # doctor JOB | head -3: the reader has all it wanted
        _quiet_stdout()
    sys.exit(0 if found.reachable else 1)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush meets no closed pipe."""
    import os
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _via(obj: dict) -> Hop | None:
    """The access point setup --via named, unless --queue names a queue on this machine."""
    from condor_job_proxy.sshconfig import via as remembered_via
    return None if obj["queue"] else remembered_via.remembered()


def _resolver(obj: dict) -> BaseResolver:
    from condor_job_proxy.proxycmd.resolvers import default_resolver
    return default_resolver(obj["queue"])


def _summary_json(job: JobSummary) -> dict:
    data = job._asdict()
    data["job"] = str(data["job"])
    return data


def _age(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"   # a start time no clock gives (NaN, infinite) in a record or ad
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    return f"{days}+{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def main() -> None:
    cli()
