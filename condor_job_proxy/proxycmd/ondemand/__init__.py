"""On-demand jobs, ``ssh condor-interactive[-NAME]``: the template, submitting,
waiting for the job to start.
"""
