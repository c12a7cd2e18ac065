"""Export of learned θ with C solver code for targets (work in progress: issue #4)."""
