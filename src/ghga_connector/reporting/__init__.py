"""Progress reporters: rich bars, plain log lines, JSON lines, or nothing."""
