"""Command-line front ends over ``proxycmd`` and ``sshconfig`` (thin: the work is below)."""
