"""Hardware-in-the-loop validation over a serial line.

The serial protocol (``docs/protocol.md``) is defined once in :mod:`hil.protocol_spec`, with the
Python codec :mod:`hil.protocol` and the generator of the firmware's C header
:mod:`hil.codegen_protocol`.  HIL runs: :mod:`hil.transport` (links, ``Device``),
:func:`hil.runner.run_hil`, :func:`hil.verdict.evaluate`, :func:`hil.report.write_report`; the
command ``rlmpc hil`` (:mod:`hil.cli`), ``rlmpc bench-target`` (:mod:`hil.bench_target`), test
conditions (:mod:`hil.conditions`), fault injection (:mod:`hil.faults`) and the pytest plugin
(:mod:`hil.pytest_plugin`).
"""
