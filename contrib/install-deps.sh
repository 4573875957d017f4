#!/usr/bin/env bash
# Install what condor-job-proxy and its tests need from Debian, then the package itself.
# Used by contrib/quickstart.sh and .ci/run; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null || missing+=(openssh-client)
command -v rsync >/dev/null || missing+=(rsync)
command -v pgrep >/dev/null || missing+=(procps)
command -v ip >/dev/null || missing+=(iproute2)                         # network namespaces in tests
dpkg -s libnss-wrapper >/dev/null 2>&1 || missing+=(libnss-wrapper)      # ptys for unprivileged sshd
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)  # test accounts' venv
command -v xauth >/dev/null || missing+=(xauth)                           # ssh -X into a job
command -v Xvfb >/dev/null || missing+=(xvfb)                             # the X11 test's display
command -v xdpyinfo >/dev/null || missing+=(x11-utils)                    # the X11 test's client
command -v zsh >/dev/null || missing+=(zsh)                               # the zsh completion test
command -v cc >/dev/null || missing+=(gcc libc6-dev)                      # the compiled connect client
case "${1:-}" in *test*)                                                  # Node's ssh2 as a client
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm) ;;
esac
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python -m pip install -q --disable-pip-version-check -e ".${1:-}"
# ssh2 from npm, where tests/test_clients_without_terminal.py looks for it (VSCodium's
# open-remote-ssh speaks SSH with it); tests then need no network.
case "${1:-}" in *test*)
    node_dir=${CJP_TEST_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/condor-job-proxy-tests/node}
    [ -d "$node_dir/node_modules/ssh2" ] || npm install --silent --no-audit --no-fund \
        --omit=optional --prefix "$node_dir" ssh2@1.17.0 >/dev/null ;;
esac
# pyenv finds new console scripts only after a rehash (its pip shim does that; python -m pip not).
if command -v pyenv >/dev/null; then pyenv rehash; fi
