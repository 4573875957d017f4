"""The submit-file lines that make an HTCondor job reachable, printed or put into a submit file.

Every submit file ends in a queue statement, and lines after it belong to no job (condor_submit
then says "No 'executable' parameter was provided"), so ``--into FILE`` puts the lines just
before the first queue statement. There the starter becomes the executable; the program the
file ran (its ``executable`` and ``arguments``) becomes what the starter runs, and a program
that was transferred stays transferred.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from condor_job_proxy.common.files import replace_file
from condor_job_proxy.proxycmd.errors import ProxyError
from condor_job_proxy.proxycmd.ondemand.submit import submit_arguments

MARK = "# condor-job-proxy:"
_QUEUE = re.compile(r"\s*queue\b", re.IGNORECASE)
_COMMAND = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*$")
PLACEHOLDER = ("./my-program",)


def lines(program: tuple[str, ...] = PLACEHOLDER, transfer: str | None = None) -> list[str]:
    """The snippet: the starter as executable running ``program``, +WantIOProxy, my key."""
    from condor_job_proxy.proxycmd.userkey import public_key
    from condor_job_proxy.common.jobad import OWNER_KEY_ATTR, quote
    starter = shutil.which("condor-job-starter") or "/path/to/condor-job-starter"
    return [
        f"{MARK} run the job under its starter, so `ssh job-<cluster>.<proc>` works.",
        "# The starter must be installed at this path on the execute nodes (not transferred);",
        "# your program and its arguments come after `run --`, e.g. run -- ./analyze input.dat",
        f"executable = {starter}",
        "transfer_executable = false",
        f"arguments = {submit_arguments(['run', '--', *program])}",
        *([f"transfer_input_files = {transfer}"] if transfer else []),
        "# The starter publishes its address and key in the job ad through chirp.",
        "+WantIOProxy = true",
        "# Your public job-access key: only this key (and the pool's queue super users) gets in.",
        f"+{OWNER_KEY_ATTR} = {quote(public_key())}",
    ]


def insert_into(path: Path) -> None:
    """Put the snippet into the submit file ``path`` before its queue statement (at the end
    when it has none), running the program the file names; the file is replaced atomically."""
    try:
        text = path.read_text()
    except OSError as err:
        raise ProxyError(f"cannot read {path}: {err.strerror}") from None
    old = text.splitlines()
    if any(line.startswith(MARK) for line in old):
        raise ProxyError(f"{path} already has condor-job-proxy's lines")
    at = next((n for n, line in enumerate(old) if _QUEUE.match(line)), len(old))
    commands = _commands(old[:at])
    program, transfer = _program(commands, path)
    new = [*old[:at], *lines(program, transfer), *old[at:]]
    replace_file(path, "\n".join(new) + "\n", path.stat().st_mode & 0o7777)


def _commands(text: list[str]) -> dict[str, str]:
    """The submit commands ``text`` sets (names lower-cased; the last setting wins)."""
    found = {}
    for line in text:
        match = _COMMAND.match(line)
        if match and not line.lstrip().startswith("#"):
            found[match.group(1).lower()] = match.group(2)
    return found


def _program(commands: dict[str, str], path: Path) -> tuple[tuple[str, ...], str | None]:
    """What the file ran (its executable and arguments) and the transfer list that keeps a
    transferred executable transferred (None: no change)."""
    executable = commands.get("executable")
    if not executable:
        return PLACEHOLDER, None
    if executable.startswith("$"):
        raise ProxyError(f"{path}: executable = {executable} is a macro; write the snippet's "
                         "lines by hand (condor-job-proxy submit-snippet)")
    program = (executable, *arguments(commands.get("arguments", "")))
    if commands.get("transfer_executable", "true").lower() == "false" or os.path.isabs(executable):
        return program, None
    listed = commands.get("transfer_input_files", "")
    return program, f"{listed}, {executable}" if listed else executable


def arguments(text: str) -> list[str]:
    """condor_submit's arguments as words: the new syntax (in double quotes; a word in single
    quotes may hold spaces, '' is a quote, "" a double quote) or the old (split on spaces)."""
    text = text.strip()
    if not (len(text) >= 2 and text[0] == text[-1] == '"'):
        return text.split()
    inner = text[1:-1].replace('""', '"')
    return [word[1].replace("''", "'") if word[2] is None else word[2]
            for word in re.finditer(r"'((?:[^']|'')*)'|([^\s']+)", inner)]
