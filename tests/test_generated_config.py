"""A user runs setup once; then ssh, scp, sftp, rsync, forwarding and VS Code take job names.

Everything runs real OpenSSH against real jobs. The config-editing tests check bytes: after
`config uninstall` the user's ssh config is exactly what it was before `setup`.
"""
from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import can_connect, free_port, ROOT, Job, Workbench, sshd_children, wait_for_job_line, wait_until

# ---------------------------------------------------------------- editing ~/.ssh/config

USER_LINES = b"Host build\n    HostName build.example.org\n    User me\n"

AWKWARD_FILES = {
    "user-lines": USER_LINES,
    "no-final-newline": b"Host build\n    User me",
    "crlf-and-latin1": b"# caf\xe9\r\nHost build\r\n    User me\r\n",
    "empty": b"",
    "old-block-from-hand-edits": USER_LINES + b"\n# a comment about the BEGIN condor-job-proxy block\n",
}



def _setup(bench: Workbench, config: Path, *extra: str) -> subprocess.CompletedProcess:
    result = bench.proxy("setup", "--yes", "--ssh-config", str(config), *extra)
    assert result.returncode == 0, result.stderr
    return result


def _uninstall(bench: Workbench, config: Path, *extra: str) -> subprocess.CompletedProcess:
    result = bench.proxy("config", "uninstall", "--ssh-config", str(config), *extra)
    assert result.returncode == 0, result.stderr
    return result


def _ssh_G(bench: Workbench, config: Path, host: str) -> dict[str, list[str]]:
    result = subprocess.run(["ssh", "-F", str(config), "-G", host], capture_output=True,
                            env=bench.env, stdin=subprocess.DEVNULL, timeout=30)
    assert result.returncode == 0, result.stderr
    options: dict[str, list[str]] = {}
    for line in result.stdout.decode().splitlines():
        key, _, value = line.partition(" ")
        options.setdefault(key, []).append(value)
    return options


@pytest.mark.parametrize("original", AWKWARD_FILES.values(), ids=AWKWARD_FILES.keys())
def test_setup_then_uninstall_gives_back_the_same_bytes(bench: Workbench, original: bytes) -> None:
    config = bench.root / "home" / ".ssh" / "config"
    config.parent.mkdir(parents=True)
    config.write_bytes(original)
    config.chmod(0o644)
    _setup(bench, config)
    once = config.read_bytes()
    assert once.endswith(original) and once != original
    _setup(bench, config)
    assert config.read_bytes() == once, "a second setup changed the file"
    assert "proxyusefdpass yes" in _ssh_G_lines(bench, config, "job-7.0")
    _uninstall(bench, config)
    assert config.read_bytes() == original
    assert stat.S_IMODE(config.stat().st_mode) == 0o644
    assert not (bench.root / "config" / "condor-job-proxy" / "ssh_config").exists()


def _ssh_G_lines(bench: Workbench, config: Path, host: str) -> list[str]:
    return [f"{key} {value}" for key, values in _ssh_G(bench, config, host).items()
            for value in values]


def test_setup_creates_a_private_config_and_uninstall_deletes_it(bench: Workbench) -> None:
    home = bench.root / "home"
    home.mkdir()
    config = home / ".ssh" / "config"
    _setup(bench, config)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    _uninstall(bench, config)
    assert list(home.iterdir()) == [], "setup created ~/.ssh and its config; both must go"


def test_uninstall_keeps_lines_the_user_added_to_a_file_setup_created(bench: Workbench) -> None:
    config = bench.root / "config-made-by-setup"
    _setup(bench, config)
    with open(config, "ab") as file:
        file.write(USER_LINES)
    _uninstall(bench, config)
    assert config.read_bytes() == USER_LINES


def test_setup_writes_through_a_symlinked_config(bench: Workbench) -> None:
    dotfiles = bench.root / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "ssh_config").write_bytes(USER_LINES)
    link = bench.root / "linked_config"
    link.symlink_to(dotfiles / "ssh_config")
    _setup(bench, link)
    assert link.is_symlink()
    assert (dotfiles / "ssh_config").read_bytes().endswith(USER_LINES)
    assert "proxyusefdpass yes" in _ssh_G_lines(bench, link, "job-7.0")
    _uninstall(bench, link)
    assert link.is_symlink() and (dotfiles / "ssh_config").read_bytes() == USER_LINES


def test_dry_run_shows_a_unified_diff_and_changes_nothing(bench: Workbench) -> None:
    config = bench.root / "dry"
    config.write_bytes(USER_LINES)
    shown = bench.proxy("setup", "--dry-run", "--ssh-config", str(config))
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    assert f"--- {config}\n+++ {config}\n@@ -1,3 +1,6 @@\n+# BEGIN condor-job-proxy" in text
    assert config.read_bytes() == USER_LINES
    _setup(bench, config)
    removal = bench.proxy("config", "uninstall", "--dry-run", "--ssh-config", str(config))
    assert "-# END condor-job-proxy" in removal.stdout.decode()
    assert b"# BEGIN condor-job-proxy" in config.read_bytes()


def test_half_a_managed_block_is_left_alone_with_one_clear_line(bench: Workbench) -> None:
    config = bench.root / "broken"
    broken = b"# BEGIN condor-job-proxy (managed by `condor-job-proxy setup`; edits here are lost)\n" + USER_LINES
    config.write_bytes(broken)
    result = bench.proxy("setup", "--yes", "--ssh-config", str(config))
    assert result.returncode == 255
    assert result.stderr.decode().count("\n") == 1 and "without its partner" in result.stderr.decode()
    assert config.read_bytes() == broken


@pytest.fixture
def account_pool():
    if os.geteuid() != 0:
        pytest.skip("creating test accounts needs root")
    from accounts import account, ensure_venv
    ensure_venv()
    return account("cfg")


def test_setup_and_uninstall_on_the_real_home_ssh_config(account_pool) -> None:
    user = account_pool
    config = user.home / ".ssh" / "config"
    config.parent.mkdir(mode=0o700)
    config.write_bytes(USER_LINES)
    shutil.chown(config.parent, user.name)
    shutil.chown(config, user.name)
    config.chmod(0o600)
    setup = user.run("condor-job-proxy", "setup", "--yes")
    assert setup.returncode == 0, setup.stderr
    shown = user.run("ssh", "-G", "job-5.0")
    assert shown.returncode == 0, shown.stderr
    assert "proxyusefdpass yes" in shown.stdout.decode().splitlines()
    uninstall = user.run("condor-job-proxy", "config", "uninstall")
    assert uninstall.returncode == 0, uninstall.stderr
    assert config.read_bytes() == USER_LINES


# ---------------------------------------------------------------- shared connections, plain account

@pytest.fixture
def sharer():
    """A plain account as on an HPC access point or in a container: a 51-byte home, no
    $XDG_RUNTIME_DIR and no /run/user/<uid>, set up, with a job of its own running."""
    if os.geteuid() != 0:
        pytest.skip("creating test accounts needs root")
    from accounts import account, ensure_venv
    ensure_venv()
    user = account("sharer", long_home=True)
    assert len(str(user.home)) > 45 and not Path(f"/run/user/{pwd.getpwnam(user.name).pw_uid}").exists()
    tmp_dir = Path(f"/tmp/cjp-{pwd.getpwnam(user.name).pw_uid}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    assert user.run("condor-job-proxy", "setup", "--yes").returncode == 0
    workdir = Path(tempfile.mkdtemp(prefix="cjp-sharer-job-"))
    shutil.chown(workdir, user.name)
    err_file = workdir.parent / f"{workdir.name}.err"
    with open(err_file, "wb") as err:
        starter = user.popen("condor-job-starter", "run", "--", "sleep", "600", cwd=workdir,
                             env={"MARKER": "in-the-job"}, stdin=subprocess.DEVNULL, stderr=err)
    host = f"job-{wait_for_job_line(starter, err_file)}"
    yield user, host, tmp_dir
    user.run("ssh", "-O", "exit", host)
    user.run("condor-job-proxy", "daemon", "--stop")
    starter.terminate()
    starter.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)
    err_file.unlink(missing_ok=True)
    shutil.rmtree(tmp_dir, ignore_errors=True)


def _sessions(user) -> list[str]:
    """The account's session sshds (not their own children)."""
    ps = subprocess.run(["ps", "-u", user.name, "-o", "pid=,ppid=,comm="], capture_output=True,
                        text=True).stdout.split("\n")
    sshds = {line.split()[0]: line.split()[1] for line in ps if line.split()[2:] == ["sshd"]}
    return [pid for pid, parent in sshds.items() if parent not in sshds]


def test_second_ssh_reuses_the_connection_without_a_runtime_dir_and_a_long_home(sharer) -> None:
    user, host, tmp_dir = sharer
    refresh = user.run("condor-job-proxy", "config", "refresh")
    assert refresh.returncode == 0, refresh.stderr
    shutil.rmtree(tmp_dir, ignore_errors=True)        # as after a reboot: ssh must make it again
    first = user.run("ssh", "-o", "BatchMode=yes", host, "echo $MARKER")
    assert first.returncode == 0 and first.stdout == b"in-the-job\n", first.stderr
    check = user.run("ssh", "-O", "check", host)
    assert check.returncode == 0 and "Master running" in check.stderr.decode(), check.stderr
    info = os.lstat(tmp_dir)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == pwd.getpwnam(user.name).pw_uid
    second = user.run("ssh", "-o", "BatchMode=yes", host, "echo $MARKER")
    assert second.returncode == 0 and second.stdout == b"in-the-job\n", second.stderr
    assert len(_sessions(user)) == 1
    doctor = user.run("condor-job-proxy", "doctor", host).stdout.decode()
    assert f"check shared connections: in {tmp_dir} (no login runtime directory" in doctor


def test_a_tmp_directory_taken_by_someone_else_turns_sharing_off_with_one_line(sharer) -> None:
    user, host, tmp_dir = sharer
    assert user.run("condor-job-proxy", "config", "refresh").returncode == 0
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir()               # taken by root (another user) while the name was free
    tmp_dir.chmod(0o777)
    result = user.run("ssh", "-o", "BatchMode=yes", host, "echo $MARKER")
    assert result.returncode == 0 and result.stdout == b"in-the-job\n", result.stderr
    lines = result.stderr.decode().splitlines()
    assert lines == [f"condor-job-proxy: {tmp_dir} is not a directory of yours: connecting "
                     "without a shared connection (remove it, or run: condor-job-proxy doctor)"]
    assert list(tmp_dir.iterdir()) == [], "a socket went into a directory someone else owns"
    doctor = user.run("condor-job-proxy", "doctor", host).stdout.decode()
    assert f"check shared connections: off: {tmp_dir} is not a directory of yours\n" in doctor


# ---------------------------------------------------------------- using a job by name

@pytest.fixture
def shared(bench: Workbench):
    """The bench with the default settings: shared connections in a short runtime dir."""
    runtime = Path(tempfile.mkdtemp(prefix="cjp-"))     # /tmp/cjp-XXXX: short socket paths
    bench.env["XDG_RUNTIME_DIR"] = str(runtime)
    (bench.root / "config" / "condor-job-proxy" / "config.toml").write_text("")
    bench.proxy("config", "refresh", check=True)
    yield bench
    for job in bench.jobs:
        bench.ssh("-O", "exit", job.host)
    shutil.rmtree(runtime, ignore_errors=True)


def test_ssh_G_shows_every_option_for_a_job_host(shared: Workbench, job: Job) -> None:
    options = _ssh_G(shared, shared.ssh_config, job.host)
    include = shared.root / "config" / "condor-job-proxy"
    state = shared.root / "state" / "condor-job-proxy"
    runtime = shared.env["XDG_RUNTIME_DIR"]
    assert options["user"] == [os.environ.get("USER") or subprocess.getoutput("id -un")]
    python = os.path.abspath(sys.executable)
    # The fast client (built from quick.c where there is a compiler), the daemon sockets'
    # base, then the full command.
    client = (f"{state}/bin/cjp-quick-" if shutil.which("cc") or shutil.which("gcc")
              else f"{python} -S -E -s {ROOT / 'condor_job_proxy' / 'proxycmd' / 'daemon' / 'quick.py'} ")
    assert options["proxycommand"][0].startswith(client)
    assert f" {runtime}/cjp-d-" in options["proxycommand"][0]
    assert f" {python} -m condor_job_proxy " in options["proxycommand"][0]
    assert f"--known-hosts {state}/known_hosts/%h " in options["proxycommand"][0]
    assert f"--job-identity {state}/identities/%h %h %r" in options["proxycommand"][0]
    assert options["proxyusefdpass"] == ["yes"]
    # The link to the key this session needs first, then your job-access key.
    assert options["identityfile"] == [f"{state}/identities/%h", str(include / "id_ed25519")]
    assert options["identitiesonly"] == ["yes"]
    assert options["userknownhostsfile"] == [f"{state}/known_hosts/{job.host}"]
    assert options["stricthostkeychecking"] == ["true"]
    assert options["controlmaster"] == ["auto"]
    assert options["controlpath"][0].startswith(f"{runtime}/cjp-")
    assert options["controlpersist"] == ["60"]
    assert options["serveraliveinterval"] == ["30"]
    assert options["connecttimeout"] == ["30"]
    assert options["forwardagent"] == ["no"]


def test_every_option_in_the_include_has_a_comment(shared: Workbench, job: Job) -> None:
    text = shared.proxy("config", "show", check=True).stdout.decode()
    assert f"Host {job.host} " in text or f"Host {job.host}\n" in text
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("    ") and not line.strip().startswith("#"):
            above = next(l for l in reversed(lines[:number]) if not l.startswith("    ") or
                         l.strip().startswith("#"))
            assert above.strip().startswith("#"), f"no comment above {line.strip()!r}"


def test_second_ssh_reuses_the_control_master(shared: Workbench, job: Job) -> None:
    assert shared.ssh(job.host, "true").returncode == 0
    check = shared.ssh("-O", "check", job.host)
    assert check.returncode == 0 and "Master running" in check.stderr.decode(), check.stderr
    pinned = shared.root / "state" / "condor-job-proxy" / "known_hosts" / job.host
    pinned.unlink()      # a new connection would pin it again; a reused one never asks
    second = shared.ssh(job.host, "echo $MARKER")
    assert second.returncode == 0 and second.stdout == b"only-in-the-job\n", second.stderr
    assert not pinned.exists()
    assert len(sshd_children(job.process.pid)) == 1


def test_control_persist_false_ends_the_master_with_its_session(shared: Workbench, job: Job) -> None:
    (shared.root / "config" / "condor-job-proxy" / "config.toml").write_text("control_persist = false\n")
    shared.proxy("config", "refresh", check=True)
    assert shared.ssh(job.host, "true").returncode == 0
    assert shared.ssh("-O", "check", job.host).returncode != 0
    assert wait_until(lambda: not sshd_children(job.process.pid))


def _vscode_script(port: int) -> bytes:
    """Like VS Code's: start a server in the background, report where it listens, stay."""
    server = ("import socket\n"
              f"s=socket.create_server(('127.0.0.1',{port}))\n"
              "while True:\n"
              "    c,_=s.accept(); c.recv(1024); c.sendall(b'HTTP/1.0 200 OK\\r\\n\\r\\nvscode-server in the job'); c.close()\n")
    return (f"cat > vscode_server.py <<'PY'\n{server}PY\n"
            "python3 vscode_server.py &\n"
            "echo $! > vscode_server.pid\n"
            f"echo listeningOn=={port}==\n"
            "wait\n").encode()


@pytest.mark.parametrize("forward", ["-D", "-L"])
def test_vscode_remote_ssh_reaches_its_server_in_the_job(shared: Workbench, job: Job,
                                                        forward: str) -> None:
    local, remote = free_port(), free_port()
    flag = [forward, str(local)] if forward == "-D" else [forward, f"{local}:127.0.0.1:{remote}"]
    vscode = subprocess.Popen(["ssh", "-F", str(shared.ssh_config), "-o", "BatchMode=yes",
                               "-T", *flag, "-o", "ConnectTimeout=15", job.host, "bash"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=shared.env)
    try:
        vscode.stdin.write(_vscode_script(remote))
        vscode.stdin.flush()
        assert vscode.stdout.readline() == f"listeningOn=={remote}==\n".encode()
        assert wait_until(lambda: can_connect(local), timeout=10)
        assert wait_until(lambda: _can_connect_in_job(shared, job, remote), timeout=10)
        if forward == "-D":
            reply = _socks5_get(local, "127.0.0.1", remote)
        else:
            reply = _http_get(socket.create_connection(("127.0.0.1", local), timeout=10))
        assert reply.endswith(b"vscode-server in the job")
    finally:
        vscode.kill()
        vscode.wait()
        pid_file = shared.root / "job0" / "vscode_server.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 15)


def _can_connect_in_job(bench: Workbench, job: Job, port: int) -> bool:
    probe = f"python3 -c \"import socket; socket.create_connection(('127.0.0.1',{port})).close()\""
    return bench.ssh(job.host, probe).returncode == 0


def _socks5_get(proxy_port: int, host: str, port: int) -> bytes:
    """A minimal SOCKS5 CONNECT (RFC 1928, no authentication), as VS Code's client does."""
    conn = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    conn.sendall(b"\x05\x01\x00")
    assert _exactly(conn, 2) == b"\x05\x00"
    address = host.encode()
    conn.sendall(b"\x05\x01\x00\x03" + bytes([len(address)]) + address + struct.pack("!H", port))
    version, status, _, kind = _exactly(conn, 4)
    assert (version, status) == (5, 0), f"SOCKS5 refused the connect: status {status}"
    _exactly(conn, {1: 4, 4: 16}.get(kind) or _exactly(conn, 1)[0])
    _exactly(conn, 2)
    return _http_get(conn)


def _http_get(conn: socket.socket) -> bytes:
    with conn:
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        return data


def _exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


@pytest.fixture
def big_file(shared: Workbench) -> tuple[Path, str]:
    path = shared.root / "big.bin"
    with open(path, "wb") as file:
        for _ in range(64):
            file.write(os.urandom(1 << 20))
    return path, _digest(path)


def _transfer(bench: Workbench, tool: str, source: str, target: str) -> subprocess.CompletedProcess:
    if tool == "rsync":
        rsh = f"ssh -F {bench.ssh_config} -o BatchMode=yes"
        return subprocess.run(["rsync", "-e", rsh, source, target], capture_output=True,
                              env=bench.env, timeout=300)
    if tool == "sftp":
        remote, local = (source, target) if ":" in source else (target, source)
        host, path = remote.split(":", 1)
        command = f"get {path} {local}" if ":" in source else f"put {local} {path}"
        return bench.ssh("-b", "-", host, input=command.encode() + b"\n", tool="sftp", timeout=300)
    return bench.ssh(source, target, tool="scp", timeout=300)


@pytest.mark.parametrize("tool", ["scp", "sftp", "rsync"])
def test_64_MiB_file_to_the_job_and_back(shared: Workbench, job: Job, big_file, tool: str) -> None:
    path, digest = big_file
    up = _transfer(shared, tool, str(path), f"{job.host}:copy.bin")
    assert up.returncode == 0, up.stderr
    assert _digest(shared.root / "job0" / "copy.bin") == digest
    back = shared.root / "back.bin"
    down = _transfer(shared, tool, f"{job.host}:copy.bin", str(back))
    assert down.returncode == 0, down.stderr
    assert _digest(back) == digest


def test_refresh_on_connect_adds_a_block_for_a_job_started_after_the_last_refresh(
        shared: Workbench) -> None:
    (shared.root / "config" / "condor-job-proxy" / "config.toml").write_text(
        "refresh_on_connect = true\n")
    _setup(shared, shared.ssh_config)
    assert "Match all\nInclude" in shared.ssh_config.read_text()
    job = _start_job_without_refresh(shared)
    include = shared.root / "config" / "condor-job-proxy" / "ssh_config"
    assert f"Host {job.host}" not in include.read_text()
    result = shared.ssh(job.host, "echo $MARKER")
    assert result.returncode == 0 and result.stdout == b"from-a-new-job\n", result.stderr
    assert f"Host {job.host} " in include.read_text()


def test_refresh_on_connect_never_runs_shell_code_from_a_host_name(shared: Workbench) -> None:
    """ssh 9.6 (and Debian's 9.2) refuses such names; older ones reach our Match, which skips them."""
    (shared.root / "config" / "condor-job-proxy" / "config.toml").write_text(
        "refresh_on_connect = true\n")
    _setup(shared, shared.ssh_config)
    planted = shared.root / "planted"
    for quote in "'\\":
        shared.ssh("-G", f"job-1{quote}; touch {planted}; {quote}")
        assert not planted.exists()


def _start_job_without_refresh(bench: Workbench) -> Job:
    cwd = bench.root / "late"
    cwd.mkdir()
    err = bench.root / "late.err"
    with open(err, "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "condor_job_proxy.starter", "run", "--", "sleep", "600"],
                                   cwd=cwd, env={**bench.env, "MARKER": "from-a-new-job"},
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=stderr)
    job_id = wait_for_job_line(process, err)
    job = Job(job_id, f"job-{job_id}", process, err)
    bench.jobs.append(job)
    return job


def test_host_prefix_from_config_toml_names_jobs(shared: Workbench, job: Job) -> None:
    (shared.root / "config" / "condor-job-proxy" / "config.toml").write_text('host_prefix = "hpc-"\n')
    shared.proxy("config", "refresh", check=True)
    host = f"hpc-{job.id}"
    assert shared.proxy("jobs", "--names", check=True).stdout.decode() == f"{host}\n"
    result = shared.ssh(host, "echo $MARKER")
    assert result.returncode == 0 and result.stdout == b"only-in-the-job\n", result.stderr
    assert shared.ssh(job.host, "true").returncode == 255


# ---------------------------------------------------------------- completion and X11

def _proxy_command_on_path(bench: Workbench) -> dict[str, str]:
    bin_dir = bench.root / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "condor-job-proxy"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m condor_job_proxy \"$@\"\n")
    wrapper.chmod(0o755)
    return {**bench.env, "PATH": f"{bin_dir}:{bench.env['PATH']}"}


@pytest.mark.parametrize("command,word,expected", [
    ("ssh", "job-", "{host}"), ("scp", "job-", "{host}:"), ("sftp", "me@job-", "me@{host}"),
    ("rsync", "jo", "{host}:")])
def test_bash_completes_job_host_names(bench: Workbench, job: Job, command: str, word: str,
                                       expected: str) -> None:
    script = (f"source {ROOT}/contrib/completion/condor-job-proxy.bash\n"
              f"COMP_WORDS=({command} '{word}'); COMP_CWORD=1\n"
              f"_condor_job_proxy_complete {command} '{word}' {command}\n"
              "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    result = subprocess.run(["bash", "--norc", "-c", script], capture_output=True,
                            env=_proxy_command_on_path(bench), timeout=60)
    assert result.returncode == 0, result.stderr
    assert expected.format(host=job.host) in result.stdout.decode().split("\n")


def test_zsh_offers_job_host_names_as_hosts(bench: Workbench, job: Job) -> None:
    if not shutil.which("zsh"):
        pytest.fail("zsh is missing: apt-get install zsh")
    script = (f"source {ROOT}/contrib/completion/_condor-job-proxy.zsh\n"
              "zstyle -a ':completion::complete:ssh:argument-1:hosts' hosts found\n"
              "print -l $found\n")
    result = subprocess.run(["zsh", "-f", "-c", script], capture_output=True,
                            env=_proxy_command_on_path(bench), timeout=60)
    assert result.returncode == 0, result.stderr
    assert job.host in result.stdout.decode().split("\n")


@pytest.fixture
def x_display(bench: Workbench):
    """A real X server (Xvfb) with a cookie in the client's XAUTHORITY, as on a desktop."""
    if not shutil.which("Xvfb") or not shutil.which("xauth"):
        pytest.fail("Xvfb/xauth missing: apt-get install xvfb xauth x11-apps")
    number = 50 + os.getpid() % 200
    auth = bench.root / "Xauthority"
    cookie = os.urandom(16).hex()
    subprocess.run(["xauth", "-f", str(auth), "add", f":{number}", ".", cookie], check=True)
    server = subprocess.Popen(["Xvfb", f":{number}", "-auth", str(auth), "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**bench.env, "DISPLAY": f":{number}", "XAUTHORITY": str(auth)}
    assert wait_until(lambda: subprocess.run(["xdpyinfo"], env=env, capture_output=True)
                      .returncode == 0, timeout=15)
    yield env
    server.terminate()
    server.wait(10)


@pytest.mark.parametrize("flag", ["-X", "-Y"])
def test_ssh_X_gives_the_session_a_working_display(bench: Workbench, job: Job, x_display,
                                                  flag: str) -> None:
    result = subprocess.run(["ssh", "-F", str(bench.ssh_config), "-o", "BatchMode=yes", flag,
                             job.host, 'echo "DISPLAY=$DISPLAY"; xdpyinfo | grep -m1 "^name of display"'],
                            capture_output=True, env=x_display, timeout=60)
    assert result.returncode == 0, result.stderr
    display, name = result.stdout.decode().splitlines()
    assert display.startswith("DISPLAY=localhost:") and name.startswith("name of display:")


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
