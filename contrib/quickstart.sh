#!/usr/bin/env bash
# Quick start on a fresh machine: install, put the commands on PATH, set up ssh, start a job,
# ssh into it. Run as root or as a user with sudo; only the distribution's python3 is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/install-deps.sh '[test]'   # with the test extra: the second command runs the tests
bin="${CONDOR_JOB_PROXY_VENV:-$PWD/.venv}/bin"
bash contrib/link-commands.sh "$bin"
"$bin/condor-job-proxy" setup --yes

mkdir -p ~/condor-job-demo && cd ~/condor-job-demo
log=~/condor-job-demo/starter.log     # the demo starter's messages
echo "a file in the job's directory" > some-file
DEMO_MESSAGE="hello from inside the job" setsid nohup "$bin/condor-job-starter" run -- sleep infinity \
    </dev/null >/dev/null 2>"$log" &
for _ in $(seq 100); do grep -q 'running: ssh' "$log" && break; sleep 0.1; done
host=$(sed -n 's/.*running: ssh //p' "$log" | head -n 1)
[ -n "$host" ] || { cat "$log" >&2; exit 1; }
"$bin/condor-job-proxy" config refresh

echo "+ ssh $host 'echo \$DEMO_MESSAGE; pwd; echo pids: \$_CONDOR_JOB_PIDS'"
ssh "$host" 'echo $DEMO_MESSAGE; pwd; echo pids: $_CONDOR_JOB_PIDS'
cat <<MSG

The job $host is running (condor-job-proxy jobs). Try:
    ssh $host
    scp $host:some-file .
    condor-job-proxy jobs
Stop it with: condor-job-starter rm ${host#job-}
(The commands are in ~/.local/bin; a new login shell has them on PATH.)
MSG
