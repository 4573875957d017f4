"""The generated ssh_config include and the managed Include block in ~/.ssh/config.

Depends on ``proxycmd`` for job listings; never talks to a starter.
"""
