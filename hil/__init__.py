"""Hardware-in-the-loop validation over a serial line (work in progress: issue #6)."""
