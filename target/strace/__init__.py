"""strace: the ptrace-based tracer (later) and the probes telling whether it can run here."""
