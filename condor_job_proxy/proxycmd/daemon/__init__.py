"""The connect daemon and its clients: ssh's ProxyCommand without a Python start per connect.

``quick.py`` (and ``quick.c``, the same client compiled by ``build``) is what ssh runs: it asks
the user's daemon (``server``) for the job's connected socket and passes it to ssh, or becomes
the full proxy command (``condor_job_proxy.proxycmd.main``) when no daemon serves the request.
"""
