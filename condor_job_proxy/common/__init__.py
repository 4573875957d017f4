"""What the job-side agent and the client both speak: job ids, keys and signatures, the
handshake's messages, queue records, job ad names, paths and config.toml.

The bottom layer: it imports nothing else of condor_job_proxy.
"""
