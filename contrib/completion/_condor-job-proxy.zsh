# zsh: complete running jobs' host names (job-32.0) for ssh, scp, sftp and rsync.
# Source it from ~/.zshrc after compinit:
#     source /path/to/contrib/completion/_condor-job-proxy.zsh
# zsh's own ssh/scp/sftp/rsync completion asks the `hosts` style for host names; this adds
# `condor-job-proxy jobs --names` (or $CONDOR_JOB_PROXY) to the hosts it would list anyway.

_condor_job_proxy_hosts() {
    local -a jobs known
    jobs=(${(f)"$(${CONDOR_JOB_PROXY:-condor-job-proxy} jobs --names 2>/dev/null)"})
    # What _hosts lists when the style is unset: the names in /etc/hosts.
    if [[ -r /etc/hosts ]]; then
        known=(${=${${(f)"$(</etc/hosts)"}%%\#*}#*[[:blank:]]})
    fi
    reply=($jobs $known)
}

zstyle -e ':completion:*:(ssh|scp|sftp|rsync):*:hosts' hosts '_condor_job_proxy_hosts'
