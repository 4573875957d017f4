# bash: complete running jobs' host names (job-32.0) for ssh, scp, sftp and rsync.
# Source it from ~/.bashrc (after bash-completion, if you use it):
#     source /path/to/contrib/completion/condor-job-proxy.bash
# The names come from `condor-job-proxy jobs --names`; set CONDOR_JOB_PROXY to another
# command to use instead. Whatever completion these commands had before still runs first.

_condor_job_proxy_names() {
    "${CONDOR_JOB_PROXY:-condor-job-proxy}" jobs --names 2>/dev/null
}

# Add job hosts that complete the current word ([user@]host; scp/rsync: also host: paths).
_condor_job_proxy_add_hosts() {
    local cur=${COMP_WORDS[COMP_CWORD]} user="" name
    case $cur in
        -*|*/*|*:*) return ;;
    esac
    if [[ $cur == *@* ]]; then
        user=${cur%%@*}@
        cur=${cur#*@}
    fi
    local suffix=""
    [[ $1 == scp || $1 == rsync ]] && suffix=":"
    while IFS= read -r name; do
        [[ -n $name && $name == "$cur"* ]] && COMPREPLY+=("$user$name$suffix")
    done < <(_condor_job_proxy_names)
    [[ -n $suffix ]] && compopt -o nospace 2>/dev/null
    return 0
}

# Run the command's previous completion (loading bash-completion's lazily), then add ours.
_condor_job_proxy_complete() {
    local command=$1 previous=_condor_job_proxy_previous_${1//[^a-zA-Z0-9_]/_}
    COMPREPLY=()
    if [[ -n ${!previous} ]]; then
        "${!previous}" "$@"
    fi
    _condor_job_proxy_add_hosts "$command"
}

_condor_job_proxy_install() {
    local command spec function
    for command in ssh scp sftp rsync; do
        spec=$(complete -p "$command" 2>/dev/null)
        if [[ -z $spec ]] && declare -F _completion_loader >/dev/null; then
            _completion_loader "$command" >/dev/null 2>&1
            spec=$(complete -p "$command" 2>/dev/null)
        fi
        function=""
        [[ $spec =~ -F\ ([^ ]+) ]] && function=${BASH_REMATCH[1]}
        [[ $function == _condor_job_proxy_complete ]] && continue
        printf -v "_condor_job_proxy_previous_$command" %s "$function"
        complete -F _condor_job_proxy_complete "$command"
    done
}
_condor_job_proxy_install
