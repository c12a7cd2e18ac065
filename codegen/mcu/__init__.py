"""Bare-metal MPC solver for microcontrollers (issue #4).

The MPC of a :class:`~rlmpc.toolkit.problem.ProblemFunctions` at fixed θ is condensed
around an LQR pre-stabilisation (:mod:`rlmpc.codegen.mcu.condense`), turned into
DAQP's least-distance form (:mod:`rlmpc.codegen.mcu.ldp`) and written out as a
malloc-free C99 solver with static data (:mod:`rlmpc.codegen.mcu.generate`);
:mod:`rlmpc.codegen.mcu.host_check` compiles it natively and compares it with acados.
"""
