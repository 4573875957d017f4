#!/usr/bin/env bash
# Install what condor-job-proxy needs from the distribution, then the project itself into a
# virtual environment of this checkout (.venv, or $CONDOR_JOB_PROXY_VENV), made with the
# distribution's python3: no `python` command, no pyenv and no --break-system-packages needed.
# Usage: contrib/install-deps.sh [EXTRA]   (EXTRA: '[test]' adds what the tests need)
# Used by contrib/quickstart.sh and .ci/run; safe to run again. Touches no other checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
venv="${CONDOR_JOB_PROXY_VENV:-$PWD/.venv}"

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null || missing+=(openssh-client)
command -v rsync >/dev/null || missing+=(rsync)
command -v pgrep >/dev/null || missing+=(procps)
command -v python3 >/dev/null || [ -x /usr/bin/python3 ] || missing+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
dpkg -s libnss-wrapper >/dev/null 2>&1 || missing+=(libnss-wrapper)      # ptys for unprivileged sshd
command -v cc >/dev/null || missing+=(gcc libc6-dev)                      # the compiled connect client
if [ "$extra" = "[test]" ]; then
    command -v ip >/dev/null || missing+=(iproute2)                       # network namespaces in tests
    command -v xauth >/dev/null || missing+=(xauth)                       # ssh -X into a job
    command -v Xvfb >/dev/null || missing+=(xvfb)                         # the X11 test's display
    command -v xdpyinfo >/dev/null || missing+=(x11-utils)                # the X11 test's client
    command -v zsh >/dev/null || missing+=(zsh)                           # the zsh completion test
    command -v sudo >/dev/null || missing+=(sudo)                         # the quick start test's new user
    command -v node >/dev/null || missing+=(nodejs)                       # Node's ssh2 as a client
    command -v npm >/dev/null || missing+=(npm)
    command -v podman >/dev/null || missing+=(podman uidmap)              # a job in a real container
    command -v runc >/dev/null || missing+=(runc)                         # podman's runtime here (crun refuses hybrid cgroups)
    [ -x /bin/busybox ] && dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)   # the container's root filesystem
fi

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    elif command -v sudo >/dev/null && sudo -v 2>/dev/null; then
        SUDO=(sudo)
    else
        echo "condor-job-proxy: missing packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]} (then run this again)" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null; then
        echo "condor-job-proxy: missing packages: ${missing[*]} (Debian's names); install them with your distribution's package manager, then run this again" >&2
        exit 1
    fi
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The distribution's python3 first: a pyenv or conda python earlier on PATH may vanish later.
python=/usr/bin/python3
[ -x "$python" ] || python="$(command -v python3)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "condor-job-proxy: needs Python 3.11 or later; $python is $("$python" --version 2>&1)" >&2
    exit 1
}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".$extra"
echo "condor-job-proxy: installed into $venv (commands in $venv/bin)"
if [ "$extra" = "[test]" ]; then
    # ssh2 from npm, where tests/test_clients_without_terminal.py looks for it (VSCodium's
    # open-remote-ssh speaks SSH with it); tests then need no network.
    node_dir=${CJP_TEST_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/condor-job-proxy-tests/node}
    if [ ! -d "$node_dir/node_modules/ssh2" ] && ! npm_log=$(npm install --no-audit --no-fund \
            --omit=optional --prefix "$node_dir" ssh2@1.17.0 2>&1); then
        # Only the Node client tests need it: they say they are skipped; nothing else stops.
        echo "condor-job-proxy: could not install Node's ssh2 for the tests (the Node client tests will be skipped): $(printf '%s\n' "$npm_log" | grep -m1 -i 'error' || echo "npm failed")" >&2
    fi
fi
