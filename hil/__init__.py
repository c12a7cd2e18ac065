"""Hardware-in-the-loop validation over a serial line.

So far: the serial protocol (``docs/protocol.md``), defined once in :mod:`hil.protocol_spec`,
with the Python codec :mod:`hil.protocol` and the generator of the firmware's C header
:mod:`hil.codegen_protocol`.  The HIL runner, transports and reports are issue #6.
"""
