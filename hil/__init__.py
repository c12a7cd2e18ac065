"""Hardware-in-the-loop validation over a serial line.

The serial protocol (``docs/protocol.md``) is defined once in :mod:`rlmpc.codegen.protocol_spec`, with the
Python codec :mod:`rlmpc.codegen.protocol` and the generator of the firmware's C header
:mod:`rlmpc.codegen.protocol_header`.  HIL runs: :mod:`rlmpc.hil.transport` (links, ``Device``),
:func:`rlmpc.hil.runner.run_hil`, :func:`rlmpc.hil.verdict.evaluate`, :func:`rlmpc.hil.report.write_report`; the
command ``rlmpc hil`` (:mod:`rlmpc.hil.cli`), ``rlmpc bench-target`` (:mod:`rlmpc.hil.bench_target`), test
conditions (:mod:`rlmpc.hil.conditions`), fault injection (:mod:`rlmpc.hil.faults`) and the pytest plugin
(:mod:`rlmpc.hil.pytest_plugin`).
"""
