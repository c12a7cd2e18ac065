"""Serial links to a controller firmware: open with retries, record every byte, step with recovery.

:func:`open_link` opens any pyserial URL (``/dev/tty*``, a pty path, ``socket://``,
``rfc2217://``, ``loop://``) with bounded retries and wraps the port in a
:class:`RecordingPort` that keeps the raw bytes in both directions (the serial log artifact).
:class:`Device` wraps :class:`rlmpc.codegen.firmware_link.FirmwareLink` (one request in flight):
``info()``, ``step(x)``, ``reset()``, ``ping()``.  A failed request (timeout, frame error,
undecodable or unexpected reply, ERROR reply) is retried after a resynchronisation (drain
input, reset the parser, a new HELLO handshake); every retry, resync and lost step is counted
in :attr:`Device.stats`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import serial

from rlmpc.codegen.firmware_link import FirmwareLink, LinkError
from rlmpc.codegen.protocol import (
    Ack,
    Action,
    DecodeError,
    Error,
    FrameError,
    Hello,
    Info,
    Message,
    Ping,
    Pong,
    Reset,
    SetTheta,
    Step,
)
from rlmpc.codegen.protocol_spec import CostUnit, MsgType, Precision


class TransportError(RuntimeError):
    """The link could not be opened, or a request failed after all retries."""


class RecordingPort:
    """A pyserial port proxy that timestamps every chunk written and read.

    ``log`` holds ``(t, direction, bytes)`` with ``t`` in seconds since opening and direction
    ``"tx"`` (host → device) or ``"rx"``.
    """

    def __init__(self, port: Any) -> None:
        self.port = port
        self.t0 = time.monotonic()
        self.log: list[tuple[float, str, bytes]] = []

    def write(self, data: bytes) -> int | None:
        self.log.append((time.monotonic() - self.t0, "tx", bytes(data)))
        return self.port.write(data)

    def read(self, size: int = 1) -> bytes:
        data: bytes = self.port.read(size)
        if data:
            self.log.append((time.monotonic() - self.t0, "rx", bytes(data)))
        return data

    def __getattr__(self, name: str) -> Any:  # flush, in_waiting, reset_input_buffer, close, ...
        return getattr(self.port, name)

    @property
    def bytes_tx(self) -> int:
        return sum(len(b) for _, d, b in self.log if d == "tx")

    @property
    def bytes_rx(self) -> int:
        return sum(len(b) for _, d, b in self.log if d == "rx")

    def dump(self, path: str | Path) -> Path:
        """Write the log as text: one line per chunk, ``<t s> <tx|rx> <hex>``."""
        out = Path(path)
        out.write_text("".join(f"{t:.6f} {d} {b.hex()}\n" for t, d, b in self.log), encoding="ascii")
        return out


def open_link(url: str, *, baudrate: int = 115200, timeout: float = 0.01, attempts: int = 5,
              interval: float = 0.2) -> RecordingPort:
    """Open ``url`` with ``serial_for_url``, retrying up to ``attempts`` times ``interval`` apart."""
    if attempts < 1:
        raise ValueError("attempts: expected >= 1")
    last: Exception | None = None
    for i in range(attempts):
        try:
            port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, write_timeout=2.0)
            return RecordingPort(port)
        except (serial.SerialException, OSError, ValueError) as exc:
            last = exc
            if i + 1 < attempts:
                time.sleep(interval)
    raise TransportError(f"{url}: could not open after {attempts} attempts: {last}")


@dataclass(frozen=True)
class ActionResult:
    """One STEP answered: ``u``, status ``flags``, iterations, ``cost`` (in the device's
    cost unit), round-trip ``latency`` [s] of the successful request and the ``retries`` it took."""

    step: int
    u: tuple[float, ...]
    flags: int
    solver_status: int
    iterations: int  # SQP iterations
    qp_iterations: int
    cost: int
    latency: float
    retries: int = 0


@dataclass
class LinkStats:
    requests: int = 0
    retries: int = 0
    resyncs: int = 0
    lost_steps: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Device:
    """The firmware at the other end of ``port`` (see the module doc).

    ``timeout`` is the reply deadline per request, ``max_retries`` the retries after the first
    failed attempt of a request.  Call :meth:`connect` (or :meth:`info`) first.
    """

    def __init__(self, port: Any, *, timeout: float = 2.0, max_retries: int = 3,
                 hello_attempts: int = 30) -> None:
        self.port = port
        self.link = FirmwareLink(port)
        self.timeout = timeout
        self.max_retries = max_retries
        self.hello_attempts = hello_attempts
        self.stats = LinkStats()
        self._info: Info | None = None
        self._step = 0

    @classmethod
    def open(cls, url: str, **kwargs: Any) -> Device:
        """:func:`open_link` and a handshake."""
        port = open_link(url)
        device = cls(port, **kwargs)
        try:
            device.connect()
        except BaseException:
            port.close()
            raise
        return device

    # --- handshake and recovery -------------------------------------------------------
    def connect(self) -> Info:
        try:
            self._info = self.link.hello(attempts=self.hello_attempts)
        except LinkError as exc:
            raise TransportError(f"handshake failed: {exc}") from None
        except (OSError, serial.SerialException) as exc:  # e.g. the board reset the connection
            raise TransportError(f"handshake failed: serial error: {exc}") from None
        return self._info

    def info(self) -> Info:
        return self._info if self._info is not None else self.connect()

    @property
    def precision(self) -> Precision:
        return Precision(self.info().precision)

    @property
    def cost_unit(self) -> CostUnit:
        return CostUnit(self.info().cost_unit)

    def resync(self) -> None:
        """Drain pending input, reset the frame parser and shake hands again."""
        self.stats.resyncs += 1
        time.sleep(0.01)
        try:
            while self.port.in_waiting:
                self.port.read(self.port.in_waiting)
        except (OSError, serial.SerialException):
            pass
        self.link.parser.reset()
        self.connect()

    def _request(self, msg: Message, accept: type, what: str) -> tuple[Any, float, int]:
        """Send ``msg`` until a reply of type ``accept`` arrives (and passes ``_check``)."""
        retries = 0
        while True:
            self.stats.requests += 1
            t0 = time.perf_counter()
            problem: str
            try:
                reply = self.link.request(msg, timeout=self.timeout)
                latency = time.perf_counter() - t0
                if isinstance(reply, accept) and self._check(msg, reply):
                    return reply, latency, retries
                problem = _describe(reply)
            except LinkError as exc:
                problem = str(exc)
            except (OSError, serial.SerialException) as exc:
                problem = f"serial error: {exc}"
            self.stats.errors.append(f"{what}: {problem}")
            if retries >= self.max_retries:
                raise TransportError(f"{what}: failed after {retries + 1} attempts: {problem}")
            retries += 1
            self.stats.retries += 1
            try:
                self.resync()
            except TransportError as exc:
                self.stats.errors.append(f"{what}: resync: {exc}")

    @staticmethod
    def _check(msg: Message, reply: Message | DecodeError | FrameError) -> bool:
        if isinstance(msg, Step):
            return isinstance(reply, Action) and reply.step == msg.step
        if isinstance(msg, Ping):
            return isinstance(reply, Pong) and reply.data == msg.data
        if isinstance(msg, Reset):
            return reply == Ack(MsgType.RESET)
        return True

    # --- requests ---------------------------------------------------------------------
    def step(self, x: npt.ArrayLike, p: npt.ArrayLike = ()) -> ActionResult:
        """One control step; raises :class:`TransportError` (and counts a lost step) if no
        valid ACTION arrives after all retries."""
        k = self._step
        self._step = (self._step + 1) % (1 << 32)
        msg = Step(k, np.asarray(x, dtype=float).ravel(), np.asarray(p, dtype=float).ravel())
        try:
            a, latency, retries = self._request(msg, Action, f"STEP {k}")
        except TransportError:
            self.stats.lost_steps += 1
            raise
        return ActionResult(k, a.u, a.flags, a.solver_status, a.sqp_iterations, a.qp_iterations,
                            a.cost, latency, retries)

    def set_theta(self, problem_hash: bytes, theta_hash: bytes, theta: npt.ArrayLike) -> None:
        """Push θ (SET_THETA) between two steps; the device answers ACK or a refusal (ERROR)."""
        theta_t = tuple(float(v) for v in np.asarray(theta, dtype=float).ravel())
        self._request(SetTheta(problem_hash, theta_hash, theta_t), Ack, "SET_THETA")
        self.hello()  # INFO now reports the new θ hash

    def reset(self) -> None:
        self._request(Reset(), Ack, "RESET")
        self._step = 0

    def ping(self, data: bytes = b"rlmpc") -> float:
        """Round-trip time [s] of a PING."""
        return self._request(Ping(data), Pong, "PING")[1]

    def hello(self) -> Info:
        reply = self._request(Hello(), Info, "HELLO")[0]
        self._info = reply
        return reply

    def close(self) -> None:
        self.port.close()


def _describe(reply: Message | DecodeError | FrameError) -> str:
    if isinstance(reply, Error):
        return f"ERROR code {reply.code} for request {reply.request} (detail {reply.detail})"
    if isinstance(reply, (DecodeError, FrameError)):
        return f"bad reply: {reply}"
    return f"unexpected reply {type(reply).__name__}"


__all__ = ["ActionResult", "Device", "LinkStats", "RecordingPort", "TransportError", "open_link"]
