"""``condor_ssh_to_job`` on the proxy's pipeline, its ProxyCommand (fdrelay), and
riding on HTCondor's own tool (native_grabber, htcondor_tool).
"""
