"""A minimal host side of the serial protocol for tests and tools: one request in flight.

``FirmwareLink(pyserial_port)`` sends a request and waits for the reply with its seq (replies
with another seq are dropped, as docs/protocol.md asks); :meth:`FirmwareLink.hello` repeats
HELLO until INFO arrives and then uses the device's precision.
"""

from __future__ import annotations

import time
from typing import Any

from rlmpc.codegen.protocol import (
    DecodeError,
    Frame,
    FrameError,
    FrameParser,
    Hello,
    Info,
    Message,
    decode,
    encode,
)
from rlmpc.codegen.protocol_spec import Precision


class LinkError(RuntimeError):
    """No (valid) reply in time."""


class FirmwareLink:
    """Request/reply over an open pyserial port (``serial_for_url(url, timeout=...)``)."""

    def __init__(self, port: Any, precision: Precision = Precision.F32) -> None:
        self.port = port
        self.precision = precision
        self.parser = FrameParser()
        self.seq = 0
        self.info: Info | None = None

    def send_raw(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def receive(self, seq: int | None, timeout: float) -> Message | DecodeError | FrameError:
        """The next reply with ``seq`` (any seq if None), decoded; a FrameError if the device's
        bytes did not parse."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for result in self.parser.feed(self.port.read(max(1, self.port.in_waiting))):
                if isinstance(result, FrameError):
                    return result
                if seq is None or result.seq == seq:
                    return decode(result, self.precision)
        raise LinkError(f"no reply within {timeout:.1f} s")

    def send(self, msg: Message) -> int:
        """Send ``msg`` with the next seq and return that seq (read its reply with :meth:`receive`)."""
        self.seq = (self.seq + 1) % 256
        self.send_raw(encode(msg, self.seq, self.precision))
        return self.seq

    def request(self, msg: Message, timeout: float = 2.0) -> Message | DecodeError | FrameError:
        """Send ``msg`` with the next seq and return its reply."""
        return self.receive(self.send(msg), timeout)

    def request_pair(self, first: Message, second: Message, timeout: float = 2.0, *, one_write: bool = True
                     ) -> tuple[Message | DecodeError | FrameError | None, Message | DecodeError | FrameError | None]:
        """Send two requests back to back, without waiting for the first reply (the firmware handles
        frames in order, so the second waits on the device while it works on the first), and return
        both replies; None for a reply that did not come within ``timeout`` (stops at the first frame
        error).  ``one_write``: both frames in one write (a socket send costs ~0.5 ms on the emulator
        link); False: one write per frame, for a port wrapper that must see whole frames (fault
        injection)."""
        seqs = ((self.seq + 1) % 256, (self.seq + 2) % 256)
        self.seq = seqs[1]
        frames = (encode(first, seqs[0], self.precision), encode(second, seqs[1], self.precision))
        if one_write:
            self.send_raw(frames[0] + frames[1])
        else:
            self.port.write(frames[0])
            self.send_raw(frames[1])
        replies: dict[int, Message | DecodeError | FrameError] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and seqs[1] not in replies:
            for result in self.parser.feed(self.port.read(max(1, self.port.in_waiting))):
                if isinstance(result, FrameError):
                    replies.setdefault(seqs[0], result)
                    return replies.get(seqs[0]), replies.get(seqs[1])
                if result.seq in seqs:
                    replies[result.seq] = decode(result, self.precision)
        return replies.get(seqs[0]), replies.get(seqs[1])

    def request_frame(self, frame: bytes, seq: int,
                      timeout: float = 2.0) -> Message | DecodeError | FrameError:
        """Send prepared (e.g. corrupted) bytes and return the reply carrying ``seq``."""
        self.send_raw(frame)
        return self.receive(seq, timeout)

    def hello(self, attempts: int = 30, interval: float = 0.1) -> Info:
        """HELLO until INFO (emulated UARTs may drop bytes at start); adopt the device's precision."""
        for _ in range(attempts):
            try:
                reply = self.request(Hello(), timeout=interval)
            except LinkError:
                self.parser.reset()
                continue
            if isinstance(reply, Info):
                self.info = reply
                self.precision = Precision(reply.precision)
                return reply
        raise LinkError(f"no INFO after {attempts} HELLO frames")


__all__ = ["FirmwareLink", "Frame", "LinkError"]
