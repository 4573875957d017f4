"""The job-side agent: runs a job, records it in a queue and opens ssh sessions into it.

It imports only ``common`` (what it shares with the client), never ``proxycmd`` or ``sshconfig``.
"""
