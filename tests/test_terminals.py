"""A job on an execute node where sessions cannot have a terminal says why, and the rest works.

Such a node mounts /dev/pts without gid=5 and has no libnss-wrapper (our package pip-installed
there, say). The job's starter runs as a plain account in a private mount namespace that makes
this real: a fresh devpts instance without gid=, and an overlay that removes libnss_wrapper.so
from its library directory, as if the package were not installed.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from accounts import Account, account, ensure_venv
from conftest import wait_until
from jobstart import end_job, wait_for_job_line
from condor_job_proxy.starter.sshd import NSS_WRAPPER_PLACES

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="accounts and mounts need root")

# Run as root inside `unshare --mount`: $1 is the directory of whiteouts, the rest the command.
_NODE_WITHOUT_TERMINALS = """\
set -e
hide=$1; shift
mount -t devpts -o newinstance,mode=600,ptmxmode=666 devpts /dev/pts
for dir in $(ls "$hide"); do
    target=$(printf %s "$dir" | tr + /)
    mount -t overlay overlay -o "lowerdir=$hide/$dir:$target" "$target"
done
exec "$@"
"""


@pytest.fixture(scope="module")
def node():
    """Account cjp-nopty, set up, with a job running on a node that cannot give terminals."""
    ensure_venv()
    user = account("nopty")
    # Each ssh is a connect of its own, so each sees the session's banner (the shared case
    # has a test of its own below).
    config = user.home / ".config" / "condor-job-proxy"
    assert user.run("mkdir", "-p", str(config)).returncode == 0
    assert user.run("sh", "-c", f"echo 'control_master = false' > {config}/config.toml"
                    ).returncode == 0
    assert user.run("condor-job-proxy", "setup", "--yes").returncode == 0
    hide = _whiteouts([Path(place) for place in NSS_WRAPPER_PLACES if os.path.exists(place)])
    workdir = Path(tempfile.mkdtemp(prefix="cjp-nopty-cwd-"))
    shutil.chown(workdir, user.name)
    (workdir / "out.dat").write_text("results\n")
    shutil.chown(workdir / "out.dat", user.name)
    err_file = workdir.parent / f"{workdir.name}.starter.err"
    with open(err_file, "wb") as stderr:
        starter = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             _NODE_WITHOUT_TERMINALS, "sh", str(hide),
             *user.command("condor-job-starter", "run", "--", "sleep", "900",
                           env={"MARKER": "in-the-job", "TMPDIR": str(workdir)})],
            cwd=workdir, stderr=stderr, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    job = wait_for_job_line(starter, err_file, timeout=30)
    assert user.run("condor-job-proxy", "config", "refresh").returncode == 0
    yield {"user": user, "job": job, "host": f"job-{job}", "cwd": workdir,
           "starter_err": err_file}
    end_job(starter)
    for path in (hide, workdir):
        shutil.rmtree(path, ignore_errors=True)
    err_file.unlink(missing_ok=True)


def _whiteouts(libraries: list[Path]) -> Path:
    """Overlay layers that remove each library (a 0/0 character device is overlayfs' whiteout),
    one per directory, named after the directory with / as +."""
    hide = Path(tempfile.mkdtemp(prefix="cjp-no-nss-wrapper-"))
    os.chmod(hide, 0o755)
    for library in libraries:
        layer = hide / str(library.parent).replace("/", "+")
        layer.mkdir(mode=0o755, exist_ok=True)
        os.mknod(layer / library.name, stat.S_IFCHR | 0o600, os.makedev(0, 0))
    return hide


def _says_why(stderr: str, job: str) -> bool:
    """The one line, once: why there is no terminal and how to fix it."""
    lines = [line for line in stderr.splitlines() if "cannot give a terminal" in line]
    return (len(lines) == 1 and lines[0].startswith(f"condor-job-proxy: job {job} cannot give")
            and "install libnss-wrapper" in lines[0] and "mount devpts with gid=5" in lines[0])


def test_starter_says_its_sessions_cannot_have_a_terminal(node) -> None:
    said = node["starter_err"].read_text()
    assert f"condor-job-starter: job {node['job']} cannot give a terminal" in said, said
    assert "install libnss-wrapper" in said


def test_terminal_session_without_nss_wrapper_says_why(node) -> None:
    user: Account = node["user"]
    result = user.run("ssh", "-tt", "-o", "BatchMode=yes", node["host"], "tty", input=b"")
    stderr = result.stderr.decode()
    assert result.returncode == 255, stderr
    assert _says_why(stderr, node["job"]), stderr
    assert "closed by remote host" not in stderr


def test_interactive_login_without_nss_wrapper_says_why_and_goes_on(node) -> None:
    """`ssh job-N.0` typed at a terminal: the login goes on without a terminal."""
    user: Account = node["user"]
    result = user.run("script", "-qec", f"ssh -o BatchMode=yes {node['host']}", "/dev/null",
                      input=b"echo in-the-$((6*7))-job; exit 7\n")
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 7, output
    assert _says_why(output, node["job"]), output
    assert "in-the-42-job" in output


def test_interactive_login_over_a_shared_connection_says_why(node) -> None:
    """Only the client that opened the connection saw sshd's banner; a later login says it too."""
    user: Account = node["user"]
    shared = ("-o", "ControlMaster=auto", "-o", f"ControlPath=/tmp/{user.name}-cm-%C",
              "-o", "ControlPersist=60", "-o", "BatchMode=yes")
    try:
        first = user.run("ssh", *shared, node["host"], "true")
        assert first.returncode == 0 and _says_why(first.stderr.decode(), node["job"]), first
        result = user.run("script", "-qec", f"ssh {' '.join(shared)} {node['host']}", "/dev/null",
                          input=b"echo in-the-$((6*7))-job; exit 7\n")
        output = result.stdout.decode(errors="replace")
        assert result.returncode == 7, output
        assert _says_why(output, node["job"]), output
        assert "in-the-42-job" in output
    finally:
        user.run("ssh", *shared, "-O", "exit", node["host"])


def test_commands_scp_and_sftp_work_without_a_terminal(node) -> None:
    user: Account = node["user"]
    result = user.run("ssh", "-o", "BatchMode=yes", node["host"], "echo $MARKER")
    assert (result.returncode, result.stdout) == (0, b"in-the-job\n"), result.stderr
    result = user.run("scp", "-o", "BatchMode=yes", f"{node['host']}:out.dat", "copied.dat",
                      cwd=user.home)
    assert result.returncode == 0, result.stderr
    assert (user.home / "copied.dat").read_text() == "results\n"
    result = user.run("sftp", "-o", "BatchMode=yes", "-b", "-", node["host"],
                      input=b"put copied.dat back.dat\n", cwd=user.home)
    assert result.returncode == 0, result.stderr
    assert wait_until(lambda: (node["cwd"] / "back.dat").exists())


def test_doctor_says_why_a_job_has_no_terminal(node) -> None:
    user: Account = node["user"]
    result = user.run("condor-job-proxy", "doctor", node["host"])
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr
    line = next((line for line in out.splitlines() if line.startswith("terminals: ")), "")
    assert line.startswith(f"terminals: no: job {node['job']} cannot give a terminal"), out
    assert "install libnss-wrapper" in line and "gid=5" in line


def test_condor_ssh_to_job_without_a_terminal_says_why(node) -> None:
    """HTCondor's command line, typed at a terminal: one line says why, the shell goes on."""
    user: Account = node["user"]
    result = user.run("script", "-qec", f"condor_ssh_to_job {node['job']}", "/dev/null",
                      input=b"echo in-the-$((6*7))-job; exit 5\n")
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 5, output
    assert _says_why(output, node["job"]), output
    assert "in-the-42-job" in output
