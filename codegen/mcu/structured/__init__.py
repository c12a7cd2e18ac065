"""The structured MCU QP path: interior point with a Riccati recursion (see :mod:`.generate`)."""
