"""Installing as a new user would on a stock machine: only the distribution's python3 (PEP 668
in force), no `python` command, no pyenv on PATH, a fresh account with sudo or without.

These install from the package registry, as the quick start does, so they take a minute each.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from accounts import ROOT, account

STOCK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SUDOERS = Path("/etc/sudoers.d/cjp-newcomer")


def _checkout_copy(home: Path) -> Path:
    """This checkout's tracked files, as a fresh clone in the account's home would hold them."""
    copy = home / "condor-job-proxy"
    shutil.rmtree(copy, ignore_errors=True)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, target)
    subprocess.run(["chown", "-R", f"{home.owner()}:", str(copy)], check=True)
    return copy


def _stock_login(user, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """argv as ``user`` in a login shell begun from a stock PATH and no terminal."""
    env = ["env", "-i", f"HOME={user.home}", f"USER={user.name}", f"LOGNAME={user.name}",
           "SHELL=/bin/bash", f"PATH={STOCK_PATH}", "LANG=C.UTF-8"]
    command = " ".join(f"'{word}'" for word in argv)
    return subprocess.run(["runuser", "-u", user.name, "--", *env, "bash", "-lc", command],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def newcomer():
    if not shutil.which("sudo"):
        pytest.skip("sudo is not installed (contrib/install-deps.sh '[test]' installs it)")
    user = account("newcomer")
    for leftover in (".profile", ".bashrc"):
        skel = Path("/etc/skel") / leftover
        if skel.exists():
            shutil.copy(skel, user.home / leftover)
            os.chown(user.home / leftover, user.home.stat().st_uid, user.home.stat().st_gid)
    SUDOERS.write_text(f"{user.name} ALL=(ALL) NOPASSWD: ALL\n")
    SUDOERS.chmod(0o440)
    yield user
    SUDOERS.unlink(missing_ok=True)
    subprocess.run(["pkill", "-u", user.name], check=False)   # a demo job a failed test left


def test_quick_start_as_a_new_sudo_user_on_a_stock_machine(newcomer):
    checkout = _checkout_copy(newcomer.home)
    roots_own = Path(sys.executable).resolve()
    done = _stock_login(newcomer, "bash", str(checkout / "contrib" / "quickstart.sh"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hello from inside the job" in done.stdout
    assert "pids: " in done.stdout
    host = re.search(r"The job (job-[0-9.]+) is running", done.stdout).group(1)
    # A new login shell finds the three commands, from this checkout's environment.
    for command in ("condor-job-proxy", "condor-job-starter", "condor_ssh_to_job"):
        found = _stock_login(newcomer, "readlink", "-f", f"{newcomer.home}/.local/bin/{command}")
        assert found.stdout.strip().startswith(str(checkout / ".venv" / "bin")), found
        on_path = _stock_login(newcomer, "command", "-v", command)
        assert on_path.returncode == 0, on_path
    again = _stock_login(newcomer, "ssh", "-T", "-o", "BatchMode=yes", host, "echo", "again")
    assert again.stdout.strip().endswith("again"), again.stderr
    stop = _stock_login(newcomer, "condor-job-starter", "rm", host.removeprefix("job-"))
    assert stop.returncode == 0, stop.stderr
    assert Path(sys.executable).resolve() == roots_own   # nobody else's install moved


def test_install_without_sudo_names_the_missing_packages():
    """A user who may not install packages learns, in one line, what is missing and the command
    that installs it; nothing else happens (no environment is made)."""
    user = account("nosudo")
    checkout = _checkout_copy(user.home)
    shown = user.home / "stock-bin"   # the stock tools, less rsync: as on a machine without it
    shutil.rmtree(shown, ignore_errors=True)
    shown.mkdir()
    for tool in ("bash", "env", "id", "dpkg", "dpkg-query", "python3", "ssh", "pgrep", "cc", "dirname",
                 "sudo", "readlink", "cat"):
        if shutil.which(tool, path=STOCK_PATH):
            (shown / tool).symlink_to(shutil.which(tool, path=STOCK_PATH))
    done = subprocess.run(["runuser", "-u", user.name, "--", "env", "-i", f"HOME={user.home}",
                           f"PATH={shown}", "bash", str(checkout / "contrib" / "install-deps.sh")],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done
    assert done.stderr.strip().splitlines() == [
        "condor-job-proxy: missing packages: rsync; install them with: sudo apt-get install "
        "rsync (then run this again)"]
    assert not (checkout / ".venv").exists()


def test_wheel_installs_into_a_fresh_venv(tmp_path):
    """`pip install` of a built wheel, as from the registry: the three commands run, and the
    fast client's source travels with it (setup compiles it where a C compiler is)."""
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                            str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next(dist.glob("condor_job_proxy-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "-q",
                                "--disable-pip-version-check", str(wheel)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    for command in ("condor-job-proxy", "condor-job-starter", "condor_ssh_to_job"):
        shown = subprocess.run([str(venv / "bin" / command), "--version"], capture_output=True,
                               text=True, timeout=60, cwd=tmp_path)
        assert shown.returncode == 0 and re.search(r"\b\d+\.\d+\.\d+\b", shown.stdout), shown
    sources = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import importlib.resources as r; "
                              "print(r.files('condor_job_proxy.proxycmd.daemon').joinpath('quick.c').is_file())"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert sources.stdout.strip() == "True"
