"""Export of learned θ with C solver code for targets (acados bundles; bare-metal in progress)."""
