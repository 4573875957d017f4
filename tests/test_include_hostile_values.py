"""Hostile values for every field the include writer takes: it writes them as exactly the
value intended, or refuses them; never a broken file, another block or another directive.

Each example renders the include with one field hostile (newlines, CR, quotes, %-tokens, '#',
spaces, `Match`/`Include` lines, NUL, backslashes, `${...}`, very long, non-ASCII), then asks
real OpenSSH (`ssh -G`) what it made of the file: it must parse; its lines must be the same
directives, in the same order, as with a harmless value; and every value ssh reads back (the
login name, the ProxyCommand as the shell runs it, the Match exec command as it runs, the
identity, known_hosts and control paths) must be the one the writer was given.
"""
from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import require
from condor_job_proxy.proxycmd.via.hop import Hop
from condor_job_proxy.proxycmd.model import JobSummary
from condor_job_proxy.sshconfig import include
from condor_job_proxy.sshconfig.include import IncludeSettings
from condor_job_proxy.common.jobid import JobId
from condor_job_proxy.common.names import is_login_name

EXAMPLES = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
HOST = "job-7.0"
FRAGMENTS = ["\n", "\r", "\r\n", "\x00", "\x1b[2J", "\x7f", "\u0085", "\u2028", "\u202e", '"', "'",
             "%", "%n", "%C", "%%", "%r%h", "#", "# x", " ", "\t", "\\", "\\\\", "\\ ", "\\'",
             '\\"', "=", "~", "${HOME}", "$HOME", "*", "?", "!", ",", "-o", "é", "文字", "\ud800",
             "\nMatch exec \"touch /tmp/cjp-pwned\"\n", "Match all", "\n    User root",
             "\nInclude /etc/ssh/ssh_config", "ProxyCommand sh", ";id", "$(id)", "`id`"]
hostile = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), min_size=1, max_size=8).map("".join),
    st.text(min_size=1, max_size=30),
    st.integers(300, 4000).map(lambda n: "x" * n))
# Values nothing in ssh_config or the shell treats specially but spaces and '%': taken as is.
harmless = st.text("abcXYZ019._-+/ %@,:", min_size=1, max_size=20)


@pytest.fixture(scope="module")
def lab() -> Path:
    """A directory with a recorder: a program that writes the argv it was run with."""
    require("ssh")
    root = Path(tempfile.mkdtemp(prefix="cjp-include-hostile-"))
    recorder = root / "record"
    recorder.write_text('#!/bin/sh\nprintf "%s\\0" "$0" "$@" > "$CJP_RECORD"\n')
    recorder.chmod(0o755)
    return root


def base_settings(lab: Path, **changes) -> IncludeSettings:
    values = dict(proxy_command=[str(lab / "record"), "-m", "condor_job_proxy"],
                  identity=Path("/x/key"), known_hosts_dir=Path("/x/known_hosts"),
                  identities_dir=Path("/x/identities"), control_dir=Path("/x/sockets"),
                  control_persist="60s", daemon_client=[], via=None,
                  interactive_hosts=("condor-interactive", "condor-interactive-gpu"),
                  control_check=[str(lab / "record"), "--private-dir", "/x/sockets"])
    values.update(changes)
    return IncludeSettings(**values)


def job(user: str = "alice", owner: str = "alice", state: str = "running") -> JobSummary:
    return JobSummary(JobId(7, 0), owner, user, state, 0.0, ("sleep", "1"))


def render_or_refuse(jobs: list[JobSummary], chosen: IncludeSettings) -> str | None:
    """The include, or None when the writer refused (a ValueError, nothing else)."""
    try:
        return include.render(jobs, chosen)
    except ValueError:
        return None


def directives(text: str) -> list[str]:
    """The keyword of each line ssh reads (comments and blank lines are not)."""
    words = [line.split(None, 1)[0] for line in text.split("\n") if line.strip()]
    return [word for word in words if not word.startswith("#")]


def ssh_G(lab: Path, text: str, host: str = HOST) -> tuple[dict[str, list[str]], list[str]]:
    """What ssh makes of the include for ``host``, and the argv Match exec ran (if it did)."""
    config = lab / "config"
    config.write_bytes(text.encode())
    record = lab / "exec-argv"
    record.unlink(missing_ok=True)
    result = subprocess.run(["ssh", "-F", str(config), "-G", host], capture_output=True,
                            stdin=subprocess.DEVNULL, timeout=30,
                            env={**os.environ, "CJP_RECORD": str(record)})
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    options: dict[str, list[str]] = {}
    for line in result.stdout.decode(errors="surrogateescape").splitlines():
        key, _, value = line.partition(" ")
        options.setdefault(key, []).append(value)
    ran = record.read_bytes().split(b"\0")[:-1] if record.exists() else []
    return options, [word.decode() for word in ran]


def expand(value: str, host: str = HOST, user: str = "alice") -> str:
    """ssh's %-expansion of the tokens we write (%% %h %n %r); any other token fails the test."""
    out, index = [], 0
    while index < len(value):
        char = value[index]
        if char != "%":
            out.append(char)
            index += 1
            continue
        token = value[index + 1:index + 2]
        assert token in ("%", "h", "n", "r"), f"ssh would expand %{token} in {value!r}"
        out.append({"%": "%", "h": host.lower(), "n": host, "r": user}[token])
        index += 2
    return "".join(out)


def proxy_argv(lab: Path, command: str) -> list[str]:
    """The argv the ProxyCommand runs as: ssh's `sh -c "exec CMD"`, with the recorder."""
    record = lab / "proxy-argv"
    subprocess.run(["/bin/sh", "-c", f"exec {expand(command)}"], check=True, timeout=30,
                   env={**os.environ, "CJP_RECORD": str(record)}, stdin=subprocess.DEVNULL)
    return [word.decode() for word in record.read_bytes().split(b"\0")[:-1]]


def intended_argv(chosen: IncludeSettings) -> list[str]:
    argv = [*chosen.daemon_client, *map(str, chosen.proxy_command), "connect"]
    if chosen.via is not None:
        argv += ["--via", chosen.via.target]
        if chosen.via.command != "condor-job-proxy":
            argv += ["--via-command", chosen.via.command]
    argv += ["--identity", str(chosen.identity), "--known-hosts", f"{chosen.known_hosts_dir}/{HOST}",
             "--job-identity", f"{chosen.identities_dir}/{HOST}"]
    return argv + [HOST, "alice"]


def check_as_intended(lab: Path, jobs: list[JobSummary], chosen: IncludeSettings,
                      refusable: bool = True) -> None:
    """The include for ``jobs`` and ``chosen`` is refused, or ssh reads exactly what was meant."""
    text = render_or_refuse(jobs, chosen)
    if text is None:
        assert refusable, "the writer refused a harmless value"
        return
    baseline = include.render([job()], base_settings(lab, via=chosen.via,
                                                     daemon_client=chosen.daemon_client))
    written = [j for j in jobs if j.state in ("running", "suspended") and is_login_name(j.user)]
    expected = directives(baseline)   # the job's Host and User first, then the rest
    assert directives(text) == (expected if written else expected[2:])
    options, ran = ssh_G(lab, text)
    default_user = pwd.getpwuid(os.getuid()).pw_name
    assert options["user"] == [written[0].user if written else default_user]
    assert proxy_argv(lab, options["proxycommand"][0]) == intended_argv(chosen)
    assert [expand(path) for path in options["identityfile"]] == [
        f"{chosen.identities_dir}/{HOST}", str(chosen.identity)]
    assert options["userknownhostsfile"] == [f"{chosen.known_hosts_dir}/{HOST}"]
    assert ran == [str(word) for word in chosen.control_check]
    assert options["controlpath"][0].startswith(f"{chosen.control_dir}/")
    assert options["controlpersist"] == [{"60s": "60"}.get(chosen.control_persist,
                                                          chosen.control_persist)]


@EXAMPLES
@given(user=hostile)
def test_a_hostile_login_name_never_becomes_a_directive(lab: Path, user: str) -> None:
    check_as_intended(lab, [job(user=user)], base_settings(lab))


@EXAMPLES
@given(owner=hostile, state=hostile | st.sampled_from(["running", "suspended"]))
def test_a_hostile_owner_or_state_never_becomes_a_directive(lab: Path, owner: str,
                                                             state: str) -> None:
    check_as_intended(lab, [job(owner=owner, state=state)], base_settings(lab))


@EXAMPLES
@given(word=hostile, where=st.integers(1, 3))
def test_a_hostile_word_of_the_proxy_command_stays_one_word(lab: Path, word: str,
                                                            where: int) -> None:
    command = [str(lab / "record"), "-m", "condor_job_proxy"]
    command.insert(where, word)
    check_as_intended(lab, [job()], base_settings(lab, proxy_command=command))


@EXAMPLES
@given(word=hostile)
def test_a_hostile_daemon_client_word_stays_one_word(lab: Path, word: str) -> None:
    check_as_intended(lab, [job()], base_settings(lab, daemon_client=[str(lab / "record"), word]))


@EXAMPLES
@given(field=st.sampled_from(["identity", "known_hosts_dir", "identities_dir", "control_dir"]),
       name=hostile)
def test_a_hostile_path_is_that_path_or_refused(lab: Path, field: str, name: str) -> None:
    check_as_intended(lab, [job()], base_settings(lab, **{field: Path("/x/" + name)}))


@EXAMPLES
@example(word="'")   # the shell's quoting of it holds a double quote (found by hypothesis)
@given(word=hostile)
def test_a_hostile_control_check_word_runs_as_one_word(lab: Path, word: str) -> None:
    check = [str(lab / "record"), "--private-dir", word]
    check_as_intended(lab, [job()], base_settings(lab, control_check=check))


@EXAMPLES
@given(target=hostile, command=hostile)
def test_a_hostile_access_point_or_its_command_stays_one_word(lab: Path, target: str,
                                                              command: str) -> None:
    check_as_intended(lab, [job()], base_settings(lab, via=Hop(target, command)))


@EXAMPLES
@given(prefix=hostile, persist=hostile, host=hostile)
def test_hostile_settings_are_refused(lab: Path, prefix: str, persist: str, host: str) -> None:
    """Prefix, ControlPersist and interactive host names are patterns or keywords in
    ssh_config: only the values the settings allow get in, anything else is refused."""
    for changes in ({"prefix": prefix}, {"control_persist": persist},
                    {"interactive_hosts": ("condor-interactive", host)}):
        text = render_or_refuse([job()], base_settings(lab, **changes))
        if text is not None:   # a refusal is the answer for most of them
            assert directives(text) == directives(include.render([job()], base_settings(lab)))
            ssh_G(lab, text, host="condor-interactive")


@EXAMPLES
@given(user=harmless.filter(is_login_name), path=harmless)
def test_harmless_values_are_written_as_they_are(lab: Path, user: str, path: str) -> None:
    check_as_intended(lab, [job(user=user)], base_settings(lab, identity=Path("/x/" + path)),
                      refusable=False)


def test_a_job_id_that_is_not_integers_gets_no_block(lab: Path) -> None:
    forged = JobSummary(("7\n    ProxyCommand sh", 0, None), "alice", "alice", "running", 0.0, ())
    text = include.render([forged, job()], base_settings(lab))
    assert directives(text) == directives(include.render([job()], base_settings(lab)))


def test_settings_with_a_prefix_of_another_shape_are_refused(lab: Path) -> None:
    for prefix in ("job-*", "job\n", "x y", "!job-", "job-,root-"):
        assert render_or_refuse([job()], base_settings(lab, prefix=prefix)) is None
