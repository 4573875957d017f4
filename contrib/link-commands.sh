#!/usr/bin/env bash
# Put condor-job-proxy's three commands on the PATH of new login shells, as links in
# ~/.local/bin to the virtual environment's (what pipx does). A link or file there that belongs
# to another install is left alone, with a line saying so: that install stays the one in use.
# Usage: contrib/link-commands.sh VENV_BIN
set -euo pipefail
bin="$(cd "$1" && pwd)"
dest="$HOME/.local/bin"
mkdir -p "$dest"
for command in condor-job-proxy condor-job-starter condor_ssh_to_job; do
    target="$bin/$command"
    link="$dest/$command"
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$target" ]; then
        continue
    elif [ -e "$link" ] || [ -L "$link" ]; then
        echo "condor-job-proxy: $link belongs to another install ($(readlink "$link" || echo a file)); left as it is (this checkout's is $target)" >&2
    else
        ln -s "$target" "$link"
    fi
done
# Debian's and Ubuntu's ~/.profile add ~/.local/bin when it exists; root's and others' may not.
if ! env -i HOME="$HOME" USER="$(id -un)" bash -lc 'case ":$PATH:" in *":$HOME/.local/bin:"*) exit 0;; esac; exit 1' </dev/null >/dev/null 2>&1; then
    cat >>"$HOME/.profile" <<'PROFILE'

# added by condor-job-proxy (contrib/link-commands.sh): its commands are in ~/.local/bin
if [ -d "$HOME/.local/bin" ]; then PATH="$HOME/.local/bin:$PATH"; fi
PROFILE
    echo "condor-job-proxy: added ~/.local/bin to PATH in ~/.profile (new login shells)"
fi
