"""``condor-job-proxy``: connect (the ProxyCommand), setup, config, jobs, pubkey.

Every failure becomes one line on stderr and exit status 255, ssh's code for a failed
connection; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from proxycmd.errors import ProxyError

if TYPE_CHECKING:
    from proxycmd.resolvers import JobSummary, Resolver

FAILED = 255


class _Group(click.Group):
    """Turns every error into one line and exit 255, unless --debug."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except ProxyError as err:
            _fail(ctx, str(err))
        except (OSError, ValueError) as err:
            _fail(ctx, str(err))
        except Exception as err:   # noqa: BLE001 - the contract is one line, never a traceback
            _fail(ctx, f"internal error: {type(err).__name__}: {err}")


def _fail(ctx: click.Context, message: str) -> None:
    if ctx.obj and ctx.obj.get("debug"):
        raise
    click.echo(f"condor-job-proxy: {message}", err=True)
    ctx.exit(FAILED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--queue", metavar="DIR", help="Local queue directory (default: "
              "$CONDOR_JOB_PROXY_QUEUE, config.toml, or the state dir).")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option("--config-dir", metavar="DIR", help="Config directory (default: platformdirs'; "
              "the generated ProxyCommand names the one it was made with).")
@click.option("--state-dir", metavar="DIR", help="State directory (default: platformdirs').")
@click.pass_context
def cli(ctx: click.Context, queue: str | None, debug: bool, config_dir: str | None,
        state_dir: str | None) -> None:
    """ssh, scp, sftp and rsync into running jobs by name: ssh job-32.0"""
    from starter import paths
    paths.use_dirs(config_dir, state_dir)
    ctx.obj = {"queue": queue, "debug": debug, "config_dir": config_dir, "state_dir": state_dir}


@cli.command()
@click.argument("host")
@click.argument("user", required=False)
@click.option("--relay", is_flag=True, help="Relay stdin/stdout instead of passing the socket.")
@click.option("--identity", type=click.Path(path_type=Path), help="Job-access private key.")
@click.option("--known-hosts", type=click.Path(path_type=Path),
              help="The job's known_hosts file to pin the session host key in.")
@click.option("--host-prefix", default=None, metavar="PREFIX",
              help="Job host names start with PREFIX (default: job-).")
@click.option("--job-identity", type=click.Path(path_type=Path),
              help="The job's identity link, pointed at a key the job needs (EC2 key pair).")
@click.option("--via", metavar="[USER@]AP", help="Reach the job through this access point, "
              "with your own ssh (a laptop outside the pool).")
@click.option("--via-command", metavar="CMD", default=None,
              help="condor-job-proxy on the access point (default: condor-job-proxy).")
@click.option("--prelude", is_flag=True, help="With --relay: the access point's side of --via.")
@click.option("--session-key", metavar="PUBKEY", default="",
              help="With --prelude: the laptop's public key, let into this session.")
@click.pass_obj
def connect(obj: dict, host: str, user: str | None, relay: bool, identity: Path | None,
            known_hosts: Path | None, host_prefix: str | None, job_identity: Path | None,
            via: str | None, via_command: str | None, prelude: bool, session_key: str) -> None:
    """ProxyCommand: connect HOST [USER] (ssh_config: connect %n %r)."""
    if prelude or via:
        sys.exit(_connect_via(obj, host, user, via, via_command, prelude, session_key,
                              identity=identity, known_hosts=known_hosts,
                              job_identity=job_identity, prefix=host_prefix))
    from .launch import connect_and_remember
    connect_and_remember(host, user, obj["queue"], relay=relay, identity=identity,
                         known_hosts=known_hosts, job_identity=job_identity, prefix=host_prefix)


def _connect_via(obj: dict, host: str, user: str | None, via: str | None,
                 via_command: str | None, prelude: bool, session_key: str, **paths) -> int:
    """The laptop's side (--via) or the access point's side (--relay --prelude)."""
    if prelude:
        from .access_point import serve
        return serve(host, user, obj["queue"], session_key, paths["prefix"], obj["debug"])
    from proxycmd import via as laptop
    from proxycmd.hop import DEFAULT_COMMAND, Hop
    return laptop.run(Hop(via, via_command or DEFAULT_COMMAND), host, user,
                      debug=obj["debug"], **paths)


@cli.command()
@click.option("--socket", "socket_path", type=click.Path(path_type=Path), metavar="PATH",
              help="Serve at PATH (the fast client names it when it starts a daemon).")
@click.option("--stop", is_flag=True, help="Stop the daemons the generated ssh config uses "
              "(or the one at --socket).")
@click.pass_obj
def daemon(obj: dict, socket_path: Path | None, stop: bool) -> None:
    """The connect daemon ssh's fast client asks (the first connect starts it)."""
    from sshconfig import settings

    from . import daemon as connect_daemon
    if stop:
        for path in [socket_path] if socket_path else _daemon_sockets(obj["queue"]):
            connect_daemon.stop(path)
        return
    if socket_path is None:
        raise click.UsageError("give --socket PATH (or --stop)")
    options = {key: obj[key] for key in ("queue", "config_dir", "state_dir")}
    connect_daemon.serve(socket_path, options, settings.load().connect_daemon_idle)


def _daemon_sockets(queue: str | None) -> list[Path]:
    """The sockets of the daemons serving the generated config (one per environment)."""
    from sshconfig import install

    from .daemon import sockets
    base = install.daemon_socket_base(queue, create=False)
    return sockets(base) if base else []


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Full records, for scripts.")
@click.option("--names", is_flag=True, help="Only host names of running jobs (completion).")
@click.pass_obj
def jobs(obj: dict, as_json: bool, names: bool) -> None:
    """List jobs, like a small condor_q."""
    from proxycmd.resolvers import REACHABLE_STATES, default_resolver
    found = default_resolver(obj["queue"]).list_jobs()
    if as_json:
        click.echo(json.dumps([_summary_json(job) for job in found], indent=2))
    elif names:
        from sshconfig import settings
        prefix = settings.load().host_prefix
        click.echo("".join(f"{job.job.host(prefix)}\n" for job in found if job.state in REACHABLE_STATES),
                   nl=False)
    else:
        click.echo(f"{'ID':<10} {'OWNER':<14} {'STATE':<10} {'AGE':>11}  CMD")
        now = time.time()
        for job in found:
            click.echo(f"{str(job.job):<10} {job.owner:<14} {job.state:<10} "
                       f"{_age(now - job.start_time):>11}  {' '.join(job.command)}")


@cli.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask before changing ~/.ssh/config.")
@click.option("--dry-run", is_flag=True, help="Show the changes as a unified diff; change nothing.")
@click.option("--ssh-config", type=click.Path(dir_okay=False, path_type=Path),
              help="The ssh config file to add the Include to (default: ~/.ssh/config).")
@click.option("--via", metavar="[USER@]AP", help="Reach the jobs of this access point through "
              "your own ssh to it (a laptop outside the pool).")
@click.option("--via-command", metavar="CMD", help="condor-job-proxy on the access point "
              "(default: condor-job-proxy).")
@click.pass_obj
def setup(obj: dict, yes: bool, dry_run: bool, ssh_config: Path | None, via: str | None,
          via_command: str | None) -> None:
    """Create your job-access key, the generated include and the Include block."""
    from proxycmd.hop import DEFAULT_COMMAND, Hop
    from proxycmd.userkey import ensure_key
    from sshconfig import install, managed
    from sshconfig import via as remembered_via
    ssh_config = ssh_config or managed.user_ssh_config()
    hop = Hop(via, via_command or DEFAULT_COMMAND) if via else None
    include = install.include_change(None if hop else _resolver(obj), obj["queue"], dry_run,
                                     via=hop)
    block = install.block_change(ssh_config, obj["queue"])
    if dry_run:
        click.echo(include.diff() + block.diff() or f"{ssh_config}: already set up", nl=False)
        return
    key, created = ensure_key()
    click.echo(f"{'created' if created else 'using'} job-access key {key}", err=True)
    remembered_via.remember(hop)
    include.apply()
    if block.changed:
        if not yes and sys.stdin.isatty():
            click.echo(block.diff(), err=True)
            click.confirm(f"Change {ssh_config} like this?", abort=True, err=True)
        block.apply()
    click.echo(f"{ssh_config} includes {install.include_file()}; try: ssh job-<id>", err=True)


@cli.group()
def config() -> None:
    """The generated ssh config include and the block in ~/.ssh/config."""


@config.command("refresh")
@click.option("--if-missing", "host", metavar="HOST",
              help="Only if HOST has no Host block yet (ssh's Match exec runs this).")
@click.option("--dry-run", is_flag=True, help="Show the changes as a unified diff.")
@click.option("--via", metavar="[USER@]AP", help="List the jobs on this access point (default: "
              "the one setup --via named).")
@click.pass_obj
def config_refresh(obj: dict, host: str | None, dry_run: bool, via: str | None) -> None:
    """Rewrite the include from the current job list; forget files of jobs that left."""
    from proxycmd import hop as hops
    from proxycmd import jobfiles
    from proxycmd.resolvers import REACHABLE_STATES
    from sshconfig import install
    from sshconfig import via as remembered_via
    if host is not None and install.includes_host(host):
        return
    hop = remembered_via.remembered()
    if via:
        hop = hops.Hop(via, hop.command if hop else hops.DEFAULT_COMMAND)
    resolver = None if hop else _resolver(obj)
    jobs = hops.list_jobs(hop) if hop else resolver.list_jobs()
    change = install.include_change(resolver, obj["queue"], dry_run, jobs=jobs, via=hop)
    if dry_run:
        click.echo(change.diff(), nl=False)
        return
    change.apply()
    jobfiles.prune({job.job for job in jobs if job.state in REACHABLE_STATES})


@config.command("show")
def config_show() -> None:
    """Print the generated include."""
    from sshconfig import install, managed
    text = managed.read(install.include_file())
    if text is None:
        raise click.ClickException(f"no {install.include_file()} (run: condor-job-proxy setup)")
    click.echo(text, nl=False)


@config.command("uninstall")
@click.option("--ssh-config", type=click.Path(dir_okay=False, path_type=Path),
              help="The ssh config file setup changed (default: ~/.ssh/config).")
@click.option("--dry-run", is_flag=True, help="Show the changes as a unified diff; change nothing.")
def config_uninstall(ssh_config: Path | None, dry_run: bool) -> None:
    """Remove exactly what setup added: the block and the include (your key stays)."""
    from sshconfig import install, managed
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
    """Print your public job-access key (for --authorized-keys-file or a submit file)."""
    from proxycmd.userkey import public_key
    click.echo(public_key())



@cli.command("submit-snippet")
def submit_snippet() -> None:
    """Print submit-file lines that make an HTCondor job reachable with ssh job-N.P."""
    import shutil

    from proxycmd.userkey import public_key
    from starter.condor_publish import OWNER_KEY_ATTR
    starter = shutil.which("condor-job-starter") or "/path/to/condor-job-starter"
    from starter.jobad import quote
    click.echo("\n".join([
        "# condor-job-proxy: run the job under its starter, so `ssh job-<cluster>.<proc>` works.",
        "# The starter must be installed at this path on the execute nodes (not transferred);",
        "# put your program and its arguments after `run --`, e.g. run -- ./analyze input.dat",
        f"executable = {starter}",
        "transfer_executable = false",
        'arguments = "run -- ./my-program"',
        "# The starter publishes its address and key in the job ad through chirp.",
        "+WantIOProxy = true",
        "# Your public job-access key: only this key (and the pool's queue super users) gets in.",
        f"+{OWNER_KEY_ATTR} = {quote(public_key())}",
    ]))

@cli.command()
@click.argument("job")
@click.pass_obj
def doctor(obj: dict, job: str) -> None:
    """Say how JOB (32.0 or job-32.0) would be reached, and check the basics."""
    from condor_job_proxy import doctor as checks
    for line in checks.report(job, obj["queue"]):
        click.echo(line)


def _resolver(obj: dict) -> Resolver:
    from proxycmd.resolvers import default_resolver
    return default_resolver(obj["queue"])


def _summary_json(job: JobSummary) -> dict:
    data = job._asdict()
    data["job"] = str(data["job"])
    return data


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    return f"{days}+{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def main() -> None:
    cli()
