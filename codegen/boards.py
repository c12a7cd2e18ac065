"""The names of the boards the controller firmware builds for (no imports: the command line and
the pytest plugin read them without loading the toolchains).  How each is built:
:mod:`rlmpc.codegen.firmware`."""

MCU_BOARDS = ("host", "mps2-an386", "stm32f405")  # boards of bare-metal bundles
ALL_BOARDS = (*MCU_BOARDS, "linux-aarch64")  # plus the embedded-Linux controller (acados bundles)

__all__ = ["ALL_BOARDS", "MCU_BOARDS"]
