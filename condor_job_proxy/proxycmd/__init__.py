"""The client side: ``condor-job-proxy connect``, used as ssh's ProxyCommand.

Host name -> job -> resolver (where it runs) -> transport (authenticated connection) ->
pinned host key -> the socket handed to ssh. Depends on ``common``, never on the
job-side ``starter``; never writes ssh_config.
"""
