"""The installed version, for every command's ``--version`` (HTCondor's tools: ``-version``)."""
from __future__ import annotations

from typing import Callable

PACKAGE = "condor-job-proxy"


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed
    try:
        return installed(PACKAGE)
    except PackageNotFoundError:
        return "(not installed: run from a source tree)"


def version_line(prog: str) -> str:
    """``prog (condor-job-proxy) X.Y.Z``: which package a drop-in command name comes from."""
    return f"{prog} {version()}" if prog == PACKAGE else f"{prog} ({PACKAGE}) {version()}"


def version_option(prog: str) -> Callable:
    """A click ``--version`` flag printing ``version_line(prog)``; the metadata is
    read only when asked, so the commands start no slower."""
    import click

    def show(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value and not ctx.resilient_parsing:
            click.echo(version_line(prog))
            ctx.exit()
    return click.option("--version", is_flag=True, expose_value=False, is_eager=True,
                        callback=show, help="Show the version and exit.")
