"""The job-side agent: runs a job, records it in a queue and opens ssh sessions into it.

Bottom layer of condor-job-proxy: it must not import ``proxycmd`` or ``sshconfig``.
"""
