"""ftrace: tracefs discovery (tracefs.py) and capability probes (probe.py)."""
