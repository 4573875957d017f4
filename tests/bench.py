"""Speed benchmark: how close `ssh job-N.0` comes to plain ssh, as ratios to floors measured here.

    python tests/bench.py [--quick] [--runs N] [--times N] [--json FILE] [--account]

Not a test (pytest does not collect it): it times things, and timings belong here, not in
tests. It sets up its own user (XDG dirs, queue, key, ssh config) in a temporary directory,
starts its own job with `python -m condor_job_proxy.starter run -- sleep ...` as tests/conftest.py does, and
removes everything when done. Variants are interleaved round by round, so a burst of load
from something else on the machine hits all of them alike; each number is a median.

Floors: ssh with `ProxyCommand sshd -i -f CFG` and ready keys, CFG being the sshd config
the starter writes for its sessions (so both sides negotiate the same algorithms) less its
ForceCommand (plain sshd runs commands with the login shell), and the same with OpenSSH's
default algorithms for reference; the floor takes eight host keys in turn (FLOOR_HOST_KEYS).

With --account (as root) it runs as a plain account the way many users are: a 51-byte home,
no $XDG_RUNTIME_DIR and no /run/user/<uid> (containers, su/runuser, cron, HPC access points),
its config and state in that home, so shared connections and the connect daemon live where
setup puts them for such a user, and the warm connect is the one that user gets.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from condor_job_proxy.common.jobid import JobId          # noqa: E402 - this checkout's code, after the path
from condor_job_proxy.common.queue import RUNNING, LocalQueue  # noqa: E402

from jobstart import end_job, wait_for_job_line   # noqa: E402 - beside this file (tests/)

PY = sys.executable
# sshd holds each login's key query for 5-9.3 ms (twice that if the query took longer), an
# amount drawn from a hash of its host keys, its config file and the user name. Our sessions'
# configs differ (each names its own directory), so every connect draws afresh; the floor
# rotates over this many host keys to draw alike, rather than once for the whole run.
FLOOR_HOST_KEYS = 8
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
MIB = 1024 * 1024


class Bench:
    """One isolated user with one running job, and a floor sshd set up beside it."""

    def __init__(self, root: Path, installed: bool = False, real_home: bool = False) -> None:
        """``real_home``: the account's own XDG directories (and no runtime dir if it has none),
        not ones made under ``root``."""
        self.root = root
        self.env = dict(os.environ)
        self.env.update(CONDOR_JOB_PROXY_QUEUE=str(root / "queue"), TMPDIR=str(root / "tmp"))
        if real_home:
            self.config_home = Path.home() / ".config"
        else:
            self.config_home = root / "config"
            self.env.update(XDG_CONFIG_HOME=str(self.config_home),
                            XDG_STATE_HOME=str(root / "state"), XDG_RUNTIME_DIR=str(root / "run"))
            (root / "run").mkdir(mode=0o700)
        if not installed:
            self.env["PYTHONPATH"] = str(ROOT)   # this checkout's code
        # An installed package has its bytecode compiled; without it every start would compile
        # this checkout's modules again (__pycache__ is ignored by git).
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        (root / "tmp").mkdir()
        self.ssh_config = root / "ssh_config"
        self.starter: subprocess.Popen | None = None
        self.host = ""

    # -- set-up ----------------------------------------------------------------------------
    def setup(self) -> None:
        self.proxy("setup", "--yes", "--ssh-config", str(self.ssh_config))
        job_dir = self.root / "job"
        job_dir.mkdir()
        err_file = self.root / "starter.err"
        with open(err_file, "wb") as err:
            self.starter = subprocess.Popen(
                [PY, "-m", "condor_job_proxy.starter", "run", "--", "sleep", "3600"], cwd=job_dir, env=self.env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        self.host = "job-" + _wait_for_job(self.starter, err_file)
        self.proxy("config", "refresh")
        self.include = (self.config_home / "condor-job-proxy" / "ssh_config").read_text()
        self.full_command = self._full_proxy_command()
        words = shlex.split(self._include_option("ProxyCommand"))
        self.fast_client = ("compiled (quick.c)" if "cjp-quick-" in words[0]
                            else "quick.py" if "-S" in words[:2] else "none")
        # The daemon's socket base comes just before the full command, when there is a client.
        self.daemon_dir = (Path(words[words.index("-m") - 2]).parent
                           if self.fast_client != "none" else None)
        path = self._include_option("ControlPath", "none")
        self.control_dir = str(Path(path).parent) if path != "none" else None
        self.relay_command = self.full_command.replace(" connect ", " connect --relay ", 1)
        self._setup_floor()

    def _full_proxy_command(self) -> str:
        """The include's ProxyCommand without the connect daemon's client in front: what ssh
        runs on a first connect, before any daemon is up."""
        words = shlex.split(self._include_option("ProxyCommand"))
        start = words.index("-m") - 1
        return " ".join([shlex.join(words[start:-2]), *words[-2:]])

    def _include_option(self, name: str, default: str | None = None) -> str:
        found = [line.split(None, 1)[1].strip() for line in self.include.splitlines()
                 if line.strip().startswith(name + " ")]
        if not found and default is None:
            raise SystemExit(f"the generated include has no {name}")
        return found[0] if found else default

    def _setup_floor(self) -> None:
        floor = self.root / "floor"
        floor.mkdir(mode=0o700)
        host_keys = [f"host_key_{draw}" for draw in range(FLOOR_HOST_KEYS)]
        for name in (*host_keys, "id"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(floor / name)],
                           check=True)
        (floor / "authorized_keys").write_text((floor / "id.pub").read_text())
        # The sessions' own sshd config, so both sides negotiate the same algorithms, but no
        # ForceCommand (our sessions get it on sshd's command line): plain sshd runs the command
        # with the account's login shell. (Our sessions' setup script restores the job's
        # environment and directory, then does the same: what it costs is ours to count.)
        from condor_job_proxy.starter import session_files
        ours = session_files.SSHD_CONFIG_TEMPLATE.format(dir=floor, permit_tty="yes", banner="none") + \
            f"AuthorizedKeysFile {floor}/authorized_keys\n"
        defaults = "".join(line + "\n" for line in ours.splitlines()
                           if not line.startswith(("KexAlgorithms", "Ciphers", "MACs")))
        known = []
        for draw, name in enumerate(host_keys):
            for config, text in (("sshd_config", ours), ("sshd_config_defaults", defaults)):
                (floor / f"{config}_{draw}").write_text(
                    text.replace(f"HostKey {floor}/host_key\n", f"HostKey {floor}/{name}\n"))
            known.append("floor " + " ".join((floor / f"{name}.pub").read_text().split()[:2]))
        (floor / "known_hosts").write_text("".join(line + "\n" for line in known))
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.floor = floor

    # -- commands ----------------------------------------------------------------------------
    def proxy(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([PY, "-m", "condor_job_proxy", *args], env=env or self.env,
                                capture_output=True, timeout=600)
        if result.returncode != 0:
            raise SystemExit(f"condor-job-proxy {' '.join(args)} failed: {result.stderr.decode()}")
        return result

    def ssh_ours(self, *extra: str) -> list[str]:
        """Our ssh; no shared connection unless ``extra`` asks (ssh takes an option's first value)."""
        return ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", *extra,
                "-o", "ControlMaster=no", "-o", "ControlPath=none", self.host]

    def ssh_first(self) -> list[str]:
        """A connect with no connect daemon: the full proxy command, as on a first connect."""
        return self.ssh_ours("-o", f"ProxyCommand={self.full_command}")

    def ssh_relay(self) -> list[str]:
        return self.ssh_ours("-o", "ProxyUseFdpass=no", "-o", f"ProxyCommand={self.relay_command}")

    def ssh_warm(self) -> list[str]:
        """ssh as the include has it: through the shared connection, where the include has one
        for this user (else the same as cold)."""
        return ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", self.host]

    def ssh_warm_unchecked(self) -> list[str] | None:
        """The warm connect without the include's check of a shared-connection directory in
        /tmp (its `Match ... exec`), to show what the check costs; None when there is none."""
        lines = self.include.splitlines()
        if not any(line.startswith("Match ") and " exec " in line for line in lines):
            return None
        config = self.root / "ssh_config_unchecked"
        config.write_text("\n".join("Match all" if line.startswith("Match ") else line
                                    for line in lines) + "\n")
        return ["ssh", "-F", str(config), "-o", "BatchMode=yes", self.host]

    def ssh_floor(self, defaults: bool = False, draw: int = 0) -> list[str]:
        """Plain ssh to ``sshd -i``, with the ``draw``-th host key (see FLOOR_HOST_KEYS)."""
        config = self.floor / (f"sshd_config{'_defaults' if defaults else ''}_"
                               f"{draw % FLOOR_HOST_KEYS}")
        # The same client cipher choice as the generated include, so a ratio measures only us.
        ciphers = [] if defaults else ["-o", f"Ciphers={self._include_option('Ciphers')}"]
        return ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", *ciphers,
                "-o", f"ProxyCommand={SSHD} -i -f {config}",
                "-o", f"IdentityFile={self.floor / 'id'}", "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.floor / 'known_hosts'}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
                "-o", "UpdateHostKeys=no", "-l", getpass.getuser(), "floor"]

    def stop_daemon(self) -> None:
        subprocess.run([PY, "-m", "condor_job_proxy", "daemon", "--stop"], env=self.env,
                       capture_output=True)

    def restart_daemon(self) -> None:
        """Stop the daemon (config.toml changed) and have a connect start it again."""
        self.stop_daemon()
        self.timed(self.ssh_ours() + ["true"])
        self.wait_for_daemon()

    def wait_for_daemon(self) -> None:
        """The first connect starts the daemon in the background; wait until it listens."""
        if self.daemon_dir is None:
            raise SystemExit("the generated include runs no connect daemon")
        deadline = time.monotonic() + 30
        while not list(self.daemon_dir.glob("cjp-d-*.sock")):
            if time.monotonic() > deadline:
                raise SystemExit("the connect daemon did not start")
            time.sleep(0.05)

    def timed(self, argv: list[str], stdin: int | None = subprocess.DEVNULL,
              stdout: int | None = subprocess.DEVNULL, shell: str | None = None) -> float:
        start = time.perf_counter()
        if shell is not None:
            result = subprocess.run(shell, shell=True, env=self.env, stderr=subprocess.PIPE)
        else:
            result = subprocess.run(argv, env=self.env, stdin=stdin, stdout=stdout,
                                    stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"failed: {shell or shlex.join(argv)}: {result.stderr.decode()}")
        return elapsed

    def stop(self) -> None:
        subprocess.run(self.ssh_warm()[:-1] + ["-O", "exit", self.host], env=self.env,
                       capture_output=True)
        self.stop_daemon()
        if self.starter:
            end_job(self.starter)


def _wait_for_job(process: subprocess.Popen, err_file: Path) -> str:
    try:
        return wait_for_job_line(process, err_file)
    except AssertionError as err:
        raise SystemExit(f"the starter did not start a job: {err}") from None


# -- measurements ----------------------------------------------------------------------------

def connect_times(bench: Bench, runs: int) -> dict[str, list[float]]:
    """`ssh HOST true`: floors; ours cold (the connect daemon serving; one connect after another,
    so from the third on the daemon hands over a spare session), ours on a first connect (no
    daemon), ours through a control master; interleaved."""
    variants = {
        "floor": floors(bench),
        "floor_openssh_defaults": floors(bench, defaults=True),
        "cold": [bench.ssh_ours()],
        "first": [bench.ssh_first()],
        "warm": [bench.ssh_warm()],
    }
    unchecked = bench.ssh_warm_unchecked()
    if unchecked:
        variants["warm_unchecked"] = [unchecked]
    bench.timed(bench.ssh_warm() + ["true"])   # starts the master, and the connect daemon
    bench.wait_for_daemon()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for run in range(runs):
        for name, argvs in variants.items():
            times[name].append(bench.timed(argvs[run % len(argvs)] + ["true"]))
    return times


def cold_without_spares(bench: Bench, runs: int) -> dict[str, list[float]]:
    """Cold connects while the daemon keeps no spare session (spare_session_seconds = 0), with
    the floor interleaved: what a connect after a quiet spell costs, and what every cold
    connect cost before spare sessions."""
    settings = bench.config_home / "condor-job-proxy" / "config.toml"
    before = settings.read_text() if settings.exists() else None
    settings.write_text((before or "") + "spare_session_seconds = 0\n")
    try:
        bench.restart_daemon()
        times: dict[str, list[float]] = {"floor": [], "cold": []}
        for run in range(runs):
            times["floor"].append(bench.timed(bench.ssh_floor(draw=run) + ["true"]))
            times["cold"].append(bench.timed(bench.ssh_ours() + ["true"]))
    finally:
        if before is None:
            settings.unlink()
        else:
            settings.write_text(before)
        bench.restart_daemon()
    return times


def floors(bench: Bench, defaults: bool = False) -> list[list[str]]:
    """The floor's ssh with each of its host keys, to take in turn."""
    return [bench.ssh_floor(defaults, draw) for draw in range(FLOOR_HOST_KEYS)]


def throughput(bench: Bench, size: int, runs: int) -> dict[str, list[float]]:
    """MB/s moving ``size`` bytes up (`cat >/dev/null` remotely) and down, per way of connecting;
    each transfer's time less the median time of `true` over the same way (set-up is not
    throughput: that is the connect measurement's business)."""
    variants = {"floor": floors(bench), "fdpass": [bench.ssh_ours()], "relay": [bench.ssh_relay()]}
    rates: dict[str, list[float]] = {f"{n}_{way}": [] for n in variants for way in ("up", "down")}
    setup = {name: [] for name in variants}
    for run in range(runs):
        for name, argvs in variants.items():
            argv = argvs[run % len(argvs)]
            ssh = shlex.join(argv)
            setup[name].append(bench.timed(argv + ["true"]))
            rates[f"{name}_up"].append(
                bench.timed([], shell=f"head -c {size} /dev/zero | {ssh} 'cat >/dev/null'"))
            rates[f"{name}_down"].append(
                bench.timed([], shell=f"{ssh} 'head -c {size} /dev/zero' >/dev/null"))
    for key, times in rates.items():
        overhead = med(setup[key.rsplit("_", 1)[0]])
        rates[key] = [size / max(t - overhead, 1e-3) / 1e6 for t in times]
    return rates


def login_shell_cost(runs: int) -> float:
    """What the account's shell start-up files cost an ssh command (bash reads ~/.bashrc when
    run by sshd): paid once by the floor and by every session, so it weighs on every ratio."""
    shell = os.environ.get("SHELL") or "/bin/sh"
    env = {**os.environ, "SSH_CLIENT": "127.0.0.1 1 22", "SHLVL": "0"}
    times = []
    a, b = socket.socketpair()
    with a, b:
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([shell, "-c", "true"], stdin=b, env=env, capture_output=True)
            times.append(time.perf_counter() - start)
    return med(times)


def concurrent(bench: Bench, clients: int, rounds: int) -> dict[str, tuple[int, list[float]]]:
    """``clients`` cold connects started together, ours and plain ssh's (the floor, same
    options), alternating round by round: per variant, how many succeeded in its worst round
    and the median connect time of each round."""
    variants = {"ours": [bench.ssh_ours()] * clients,
                "floor": [bench.ssh_floor(draw=n) for n in range(clients)]}
    found = {name: (clients, []) for name in variants}

    def one(argv: list[str]) -> tuple[bool, float]:
        start = time.perf_counter()
        result = subprocess.run(argv + ["true"], env=bench.env,
                                stdin=subprocess.DEVNULL, capture_output=True)
        return result.returncode == 0, time.perf_counter() - start

    for _ in range(rounds):
        for name, argvs in variants.items():
            with ThreadPoolExecutor(clients) as pool:
                results = list(pool.map(one, argvs))
            worst_ok, times = found[name]
            found[name] = (min(worst_ok, sum(ok for ok, _ in results)),
                           times + [statistics.median(t for _, t in results)])
    return found


def refresh_10k(bench: Bench, jobs: int, runs: int) -> list[float]:
    """`condor-job-proxy config refresh` over a queue of ``jobs`` running jobs."""
    root = bench.root / "big"
    queue = LocalQueue(root / "queue")
    queue.directory.mkdir(parents=True)
    template = {"owner": getpass.getuser(), "owner_uid": os.getuid(), "pids": [os.getpid()],
                "cwd": str(root), "state": RUNNING, "command": ["sleep", "3600"],
                "start_time": time.time(), "starter_pid": os.getpid(),
                "starter_address": "127.0.0.1:9", "host": socket.gethostname(),
                "starter_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}
    for cluster in range(1, jobs + 1):
        queue.update(JobId(cluster, 0), {**template, "cluster": cluster, "proc": 0})
    env = {**bench.env, "XDG_CONFIG_HOME": str(root / "config"),
           "XDG_STATE_HOME": str(root / "state"), "CONDOR_JOB_PROXY_QUEUE": str(queue.directory)}
    shutil.copytree(bench.config_home / "condor-job-proxy", root / "config" / "condor-job-proxy")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        bench.proxy("config", "refresh", env=env)
        times.append(time.perf_counter() - start)
    written = (root / "config" / "condor-job-proxy" / "ssh_config").read_text()
    blocks = sum(line.startswith("Host job-") and "*" not in line for line in written.splitlines())
    if blocks != jobs:
        raise SystemExit(f"refresh wrote {blocks} of {jobs} jobs")
    return times


def proxy_alone(bench: Bench, extra_args: tuple[str, ...] = ()) -> tuple[int, str]:
    """Run the generated ProxyCommand by itself, as ssh would with ProxyUseFdpass: peak RSS (KiB)
    from wait4's rusage, and whatever it wrote to stderr. The received socket is closed."""
    argv = shlex.split(bench.full_command.replace("%h", bench.host)
                       .replace("%r", getpass.getuser()))
    argv[1:1] = list(extra_args)
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(argv, stdin=theirs, stdout=theirs, stderr=subprocess.PIPE,
                            env=bench.env)   # one socket for both, as ssh does
    theirs.close()
    stderr = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    for fd in fds:
        os.close(fd)
    ours.close()
    if proc.returncode != 0 or not fds:
        raise SystemExit(f"the ProxyCommand failed alone: {stderr}")
    return usage.ru_maxrss, stderr


def daemon_memory(bench: Bench) -> dict[str, int]:
    """VmRSS / VmHWM (KiB) of the connect daemon (its pid is in its socket's lock file)."""
    # The live daemon's lock: lock files outlive their daemons (and earlier runs' are here too).
    live = next(bench.daemon_dir.glob("cjp-d-*.sock"))
    return starter_memory(int(Path(f"{live}.lock").read_text()))


def starter_memory(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (KiB) of a process: the starter, the connect daemon."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def import_overhead(bench: Bench, runs: int) -> tuple[list[str], float, dict[str, list[float]]]:
    """The modules a real connect imports beyond a bare interpreter, their -X importtime self
    time, and the wall time of importing exactly them vs `python -c pass`, interleaved."""
    _, trace = proxy_alone(bench, ("-X", "importtime"))
    bare = _importtime([PY, "-X", "importtime", "-c", "pass"], bench.env)
    extra = {name: us for name, us in _importtime_lines(trace).items() if name not in bare}
    top = [name for name in extra if "." not in name or name.split(".")[0] not in extra]
    # -X importtime also lists imports that failed (optional modules): keep those failing too.
    statement = (f"import importlib\nfor name in {top!r}:\n    try: importlib.import_module(name)"
                 "\n    except ImportError: pass")
    variants = {"bare": [PY, "-c", "pass"], "connect_imports": [PY, "-c", statement]}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, argv in variants.items():
            times[name].append(bench.timed(argv))
    return sorted(extra), sum(extra.values()) / 1000, times


def _importtime(argv: list[str], env: dict) -> dict[str, int]:
    return _importtime_lines(subprocess.run(argv, env=env, capture_output=True, text=True).stderr)


def _importtime_lines(text: str) -> dict[str, int]:
    found = {}
    for line in text.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            self_us, _, name = line[len("import time:"):].split("|")
            if self_us.strip().isdigit():
                found[name.strip()] = int(self_us)
    return found


# -- report ------------------------------------------------------------------------------------

def med(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> float:
    """Half the interquartile range over the median: how noisy a number was."""
    if len(values) < 4:
        return (max(values) - min(values)) / 2 / med(values)
    q = statistics.quantiles(values, n=4)
    return (q[2] - q[0]) / 2 / med(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, 64 MiB transfers")
    parser.add_argument("--runs", type=int, help="runs per variant (default 15, quick 5)")
    parser.add_argument("--times", type=int, default=1,
                        help="whole benchmark runs, each with a fresh set-up; with more than one "
                             "the JSON holds every run and the median of each ratio")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--account", action="store_true",
                        help="(root) run as a fresh plain account with a 50-byte home and no "
                             "runtime directory, its config in that home, with the code "
                             "installed in the tests' venv")
    parser.add_argument("--installed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--real-home", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.account:
        sys.exit(run_as_account(args))
    results = []
    for number in range(args.times):
        if args.times > 1:
            print(f"\n== run {number + 1} of {args.times}")
        results.append(one_run(args))
        print_table(results[-1])
    out = results[0] if args.times == 1 else {"runs": results, "median_of_runs": {
        key: med([run[key] for run in results]) for key in results[0]
        if key.endswith("_ratio") and results[0][key] is not None}}
    if args.times > 1:
        print("\nmedian of the runs: " + ", ".join(f"{key} {value:.2f}" for key, value in
                                                  out["median_of_runs"].items()))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


def one_run(args: argparse.Namespace) -> dict:
    """Set up a user and a job, measure everything, clean up."""
    runs = args.runs or (5 if args.quick else 15)
    size = (64 if args.quick else 512) * MIB
    transfer_runs = 2 if args.quick else 3
    root = Path(tempfile.mkdtemp(prefix="cjp-bench-"))
    bench = Bench(root, installed=args.installed, real_home=args.real_home)
    load_before = os.getloadavg()
    try:
        bench.setup()
        idle = starter_memory(bench.starter.pid)
        out = measure(bench, runs, size, transfer_runs)
        out["starter_idle_rss_kib"] = idle["VmRSS"]
        out["starter_idle_hwm_kib"] = idle["VmHWM"]
        out["starter_hwm_after_kib"] = starter_memory(bench.starter.pid)["VmHWM"]
    finally:
        bench.stop()
        shutil.rmtree(root, ignore_errors=True)
    out["fast_client"] = bench.fast_client
    out["account"] = _account_facts()
    out["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                      "python": platform.python_version(), "ssh": _ssh_version(),
                      "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                      "runs": runs, "transfer_mib": size // MIB}
    return out


def measure(bench: Bench, runs: int, size: int, transfer_runs: int) -> dict:
    connects = connect_times(bench, runs)
    unspared = cold_without_spares(bench, runs)
    rates = throughput(bench, size, transfer_runs)
    together = concurrent(bench, 32, 2 if runs < 10 else 4)
    ok, concurrent_medians = together["ours"]
    floor_concurrent = together["floor"][1]
    refresh = refresh_10k(bench, 10_000, 3)
    proxy_rss, _ = proxy_alone(bench)
    daemon = daemon_memory(bench)
    modules, importtime_ms, imports = import_overhead(bench, runs * 2)
    shell_rc = login_shell_cost(5)

    floor = med(connects["floor"])
    cold = med(connects["cold"])

    def rate(name: str) -> float:
        return statistics.harmonic_mean([med(rates[f"{name}_up"]), med(rates[f"{name}_down"])])

    return {
        "connect_floor_s": floor,
        "connect_floor_openssh_defaults_s": med(connects["floor_openssh_defaults"]),
        "connect_cold_s": cold,
        "connect_warm_s": med(connects["warm"]),
        "connect_first_s": med(connects["first"]),
        "connect_cold_ratio": cold / floor,
        "connect_cold_without_spare_s": med(unspared["cold"]),
        "connect_cold_without_spare_ratio": med(unspared["cold"]) / med(unspared["floor"]),
        "connect_first_ratio": med(connects["first"]) / floor,
        "connect_warm_ratio": med(connects["warm"]) / floor,
        "connect_warm_unchecked_ratio": (med(connects["warm_unchecked"]) / floor
                                         if "warm_unchecked" in connects else None),
        "throughput_mb_s": {name: med(values) for name, values in rates.items()},
        "throughput_fdpass_ratio": rate("fdpass") / rate("floor"),
        "throughput_relay_ratio": rate("relay") / rate("floor"),
        "concurrent32_ok": ok,
        "concurrent32_median_s": med(concurrent_medians),
        "concurrent32_ratio": med(concurrent_medians) / cold,
        "concurrent32_floor_median_s": med(floor_concurrent),
        "concurrent32_floor_ratio": med(floor_concurrent) / floor,
        "concurrent32_vs_plain_ratio": med(concurrent_medians) / med(floor_concurrent),
        "shared_connections_dir": bench.control_dir,
        "daemon_socket_dir": str(bench.daemon_dir) if bench.daemon_dir else None,
        "refresh_10k_s": med(refresh),
        "proxy_peak_rss_kib": proxy_rss,
        "daemon_rss_kib": daemon["VmRSS"],
        "daemon_peak_rss_kib": daemon["VmHWM"],
        "import_overhead_ms": (med(imports["connect_imports"]) - med(imports["bare"])) * 1000,
        "import_bare_ms": med(imports["bare"]) * 1000,
        "importtime_self_sum_ms": importtime_ms,
        "connect_path_modules": modules,
        "login_shell_rc_s": shell_rc,
        "noise": {name: spread(values) for name, values in
                  {**connects, **rates, **imports, "refresh_10k": refresh,
                   "cold_without_spare": unspared["cold"]}.items()},
    }


TARGETS = {  # key: (limit, whether the value must stay at or below it)
    "connect_cold_ratio": (1.25, True), "connect_warm_ratio": (0.2, True),
    "throughput_fdpass_ratio": (0.95, False), "throughput_relay_ratio": (0.8, False),
    "concurrent32_ok": (32, False), "concurrent32_ratio": (3.0, True),
    "concurrent32_vs_plain_ratio": (1.15, True),
    "refresh_10k_s": (1.0, True), "import_overhead_ms": (25.0, True),
}


def print_table(out: dict) -> None:
    tp = out["throughput_mb_s"]
    noise = out["noise"]
    rows = [
        ("connect floor, session sshd config (s)", out["connect_floor_s"], noise["floor"], ""),
        ("connect floor, OpenSSH defaults (s)", out["connect_floor_openssh_defaults_s"],
         noise["floor_openssh_defaults"], ""),
        ("ssh job true, cold (s)", out["connect_cold_s"], noise["cold"], "connect_cold_ratio"),
        ("  the same with no spare session (s)", out["connect_cold_without_spare_s"],
         noise["cold_without_spare"], "connect_cold_without_spare_ratio"),
        ("ssh job true, first: no connect daemon (s)", out["connect_first_s"], noise["first"],
         "connect_first_ratio"),
        ("ssh job true, warm control master (s)", out["connect_warm_s"], noise["warm"],
         "connect_warm_ratio"),
    ]
    if out["connect_warm_unchecked_ratio"] is not None:
        rows.append(("  the same without the /tmp directory check", out["connect_warm_unchecked_ratio"]
                     * out["connect_floor_s"], noise["warm_unchecked"], "connect_warm_unchecked_ratio"))
    for name in ("floor", "fdpass", "relay"):
        key = "" if name == "floor" else f"throughput_{name}_ratio"
        rows.append((f"throughput {name} up/down (MB/s)",
                     f"{tp[name + '_up']:.0f}/{tp[name + '_down']:.0f}",
                     max(noise[name + "_up"], noise[name + "_down"]), key))
    rows += [
        ("32 concurrent connects: succeeded", out["concurrent32_ok"], None, "concurrent32_ok"),
        ("32 concurrent connects: median (s)", out["concurrent32_median_s"], None,
         "concurrent32_ratio"),
        ("32 concurrent floor connects: median (s)", out["concurrent32_floor_median_s"], None,
         "concurrent32_vs_plain_ratio"),
        ("config refresh, 10,000 jobs (s)", out["refresh_10k_s"], noise["refresh_10k"],
         "refresh_10k_s"),
        ("connect-path imports over bare start (ms)", out["import_overhead_ms"], None,
         "import_overhead_ms"),
        ("  (-X importtime self-time sum, ms)", out["importtime_self_sum_ms"], None, ""),
        ("login shell start-up files, per command (s)", out["login_shell_rc_s"], None, ""),
        ("proxy peak RSS (MiB)", out["proxy_peak_rss_kib"] / 1024, None, ""),
        ("connect daemon RSS / peak (MiB)",
         f"{out['daemon_rss_kib'] / 1024:.1f}/{out['daemon_peak_rss_kib'] / 1024:.1f}", None, ""),
        ("starter idle RSS / peak after bench (MiB)",
         f"{out['starter_idle_rss_kib'] / 1024:.1f}/{out['starter_hwm_after_kib'] / 1024:.1f}",
         None, ""),
    ]
    print(f"{'measure':<44} {'value':>10} {'noise':>6}  {'ratio/target':<22}")
    for label, value, noisy, key in rows:
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        noisy_text = f"{noisy:.0%}" if noisy is not None else ""
        verdict = ""
        if key in TARGETS:
            limit, at_most = TARGETS[key]
            held = out[key] <= limit if at_most else out[key] >= limit
            verdict = (f"{out[key]:.2f} {'<=' if at_most else '>='} {limit} "
                       f"{'ok' if held else 'MISSED'}")
        elif key:
            verdict = f"{out[key]:.2f}"
        print(f"{label:<44} {shown:>10} {noisy_text:>6}  {verdict}")
    print(f"(fast client: {out['fast_client']}; shared connections in "
          f"{out['shared_connections_dir'] or 'none: ControlMaster no'}; connect daemon sockets "
          f"in {out['daemon_socket_dir'] or 'none'})")
    print(f"(32 concurrent floor connects take {out['concurrent32_floor_ratio']:.1f}x a single "
          "floor connect: the scale of what 2 cores allow)")
    account = out["account"]
    print(f"(run as {account['user']}, home {account['home']} ({account['home_bytes']} bytes), "
          f"runtime directory {account['runtime_dir'] or 'none'})")
    machine = out["machine"]
    print(f"\n{machine['cpus']} CPUs, {machine['platform']}, Python {machine['python']}, "
          f"{machine['ssh']}; load average {machine['loadavg_before'][0]:.2f} before, "
          f"{machine['loadavg_after'][0]:.2f} after; {machine['runs']} runs per connect "
          f"variant, {machine['transfer_mib']} MiB transfers; noise = half the IQR / median")


def run_as_account(args: argparse.Namespace) -> int:
    """Re-run this benchmark as the account ``cjp-bencher`` (tests/accounts.py), as a plain
    user is: a long home, no runtime directory, and only the login shell start-up files a new
    account gets (paid alike by the floor and our sessions)."""
    import accounts
    venv = accounts.ensure_venv()
    python = str(venv / "bin" / "python")
    if subprocess.run([python, "-c", "import cryptography"], capture_output=True).returncode:
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        "cryptography"], check=True)
        subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True)
    user = accounts.account("bencher", long_home=True)
    out = Path(tempfile.mkdtemp(prefix="cjp-bench-out-"))
    os.chmod(out, 0o777)
    argv = [python, str(Path(__file__).resolve()), "--installed", "--real-home",
            "--json", str(out / "r.json")]
    argv += ["--quick"] if args.quick else []
    argv += ["--runs", str(args.runs)] if args.runs else []
    argv += ["--times", str(args.times)]
    try:
        status = subprocess.run(user.command(*argv), cwd=user.home).returncode
        if status == 0 and args.json:
            shutil.copyfile(out / "r.json", args.json)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return status


def _account_facts() -> dict:
    """Who ran the benchmark: what decides where shared connections can live."""
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    home = str(Path.home())
    return {"user": getpass.getuser(), "home": home, "home_bytes": len(os.fsencode(home)),
            "runtime_dir": runtime if os.path.isdir(runtime) else None}


def _ssh_version() -> str:
    return subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()


if __name__ == "__main__":
    main()
