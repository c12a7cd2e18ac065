"""Export of learned θ with C solver code (acados bundles for embedded Linux, the malloc-free
bare-metal solver), the controller firmware for each board, and flashing."""
