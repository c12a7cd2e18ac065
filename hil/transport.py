"""Serial links to a controller firmware: open with retries, record every byte, step with recovery.

:func:`open_link` opens any pyserial URL (``/dev/tty*``, a pty path, ``socket://``,
``rfc2217://``, ``loop://``) with bounded retries and wraps the port in a
:class:`RecordingPort` that keeps the raw bytes in both directions (the serial log artifact).
:class:`Device` wraps :class:`rlmpc.codegen.firmware_link.FirmwareLink` (one request in flight):
``info()``, ``step(x)``, ``reset()``, ``ping()``.  A failed request (timeout, frame error,
undecodable or unexpected reply, a transient ERROR such as BAD_CRC) is retried after a
resynchronisation (drain input, reset the parser, one short HELLO handshake); every retry,
resync and lost step is counted in :attr:`Device.stats`.

It fails fast and says why:

* a deterministic refusal of the device (ERROR UNSUPPORTED, BAD_DIMENSION, BAD_HASH,
  OUT_OF_BOUNDS, BAD_VERSION) ends the request at once (:class:`DeviceRefusalError`): resending the
  same request would get the same answer;
* a closed port (the emulator or the board went away, the socket was closed) or a device
  process that exited (``alive``) ends it at once (:class:`LinkDownError`);
* reply deadlines follow the link's measured round trip (:meth:`Device.calibrate`: PINGs after
  the handshake, then the step latencies seen): ``max(MIN_TIMEOUT, 10 × PING round trip,
  10 × the median and 2 × the maximum of the latest STEP round trips)``, doubled at each retry
  of a request, at most ``timeout``, instead of a fixed 2 s (a late reply only costs a retry);
  SET_THETA likewise from the SET_THETA round trips seen (the device may work a while on it: the
  first push waits ``timeout``);
* a :class:`LinkBudget` bounds the time without any valid frame (``max_silence_s``): past it
  the request ends with :class:`LinkDownError`.  (The runner also bounds the consecutive lost steps.)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
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
    StepTheta,
    StepThetaDelta,
    theta_delta,
)
from rlmpc.codegen.protocol_spec import MAX_FRAME, Capability, CostUnit, ErrorCode, MsgType, Precision
from rlmpc.hil.faults import find_faulty


class TransportError(RuntimeError):
    """The link could not be opened, or a request failed after all retries."""


class LinkDownError(TransportError):
    """The link is gone or silent beyond the budget: the run cannot go on (no retry helps)."""


class DeviceRefusalError(TransportError):
    """The device refused the request deterministically (ERROR with a code a retry cannot change)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


REFUSALS = frozenset({ErrorCode.UNSUPPORTED, ErrorCode.BAD_DIMENSION, ErrorCode.BAD_HASH,
                      ErrorCode.OUT_OF_BOUNDS, ErrorCode.BAD_VERSION})
MIN_TIMEOUT = 0.05  # s: the shortest reply deadline, whatever the measured round trip
RTT_FACTOR, STEP_FACTOR = 10.0, 10.0
PAIR_MIN_TIMEOUT = 1.0  # s: SET_THETA+STEP (the device recomputes its θ-dependent data first; under a
# loaded emulator host a pair took up to 0.3 s, where a 0.25 s floor cost retries)
SCALED = ("STEP", "PING", "HELLO")  # the requests whose deadline follows the measured round trip
LATENCY_WINDOW = 64  # STEP round trips whose median sets the STEP deadline


@dataclass(frozen=True)
class LinkBudget:
    """How long a run may go on without the device: ``max_silence_s`` without any valid frame
    (then :class:`LinkDownError`), ``max_consecutive_lost`` steps in a row without a valid ACTION
    (checked by :func:`rlmpc.hil.runner.run_hil`)."""

    max_silence_s: float = 3.0
    max_consecutive_lost: int = 5

    def __post_init__(self) -> None:
        if not self.max_silence_s > 0:
            raise ValueError(f"max_silence_s: expected a positive number of seconds, got {self.max_silence_s}")
        if self.max_consecutive_lost < 1:
            raise ValueError(f"max_consecutive_lost: expected >= 1, got {self.max_consecutive_lost}")


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


def check_url(url: str) -> None:
    """Refuse (one-line ValueError) a ``socket://`` or ``rfc2217://`` URL without a valid host:port."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("socket", "rfc2217"):
        return
    hostport = rest.split("?")[0].split("/")[0]
    host, colon, port = hostport.rpartition(":")
    if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"--port: {url!r}: expected {scheme}://HOST:PORT with PORT from 1 to 65535")


def open_link(url: str, *, baudrate: int = 115200, timeout: float = 0.01, attempts: int = 5,
              interval: float = 0.2) -> RecordingPort:
    """Open ``url`` with ``serial_for_url``, retrying up to ``attempts`` times ``interval`` apart."""
    if attempts < 1:
        raise ValueError("attempts: expected >= 1")
    check_url(url)
    last: Exception | None = None
    for i in range(attempts):
        try:
            port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, write_timeout=2.0)
            return RecordingPort(port)
        except (serial.SerialException, OSError, ValueError) as exc:
            last = exc
            if isinstance(exc, ValueError) and not isinstance(exc, serial.SerialException):
                raise TransportError(f"{url}: not a port pyserial can open ({exc})") from None
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


@dataclass(frozen=True)
class Sent:
    """A request written ahead of reading its reply (:meth:`Device.send_step_theta`): the message, its
    seq and when it was written (``time.perf_counter``)."""

    msg: Message
    seq: int
    t0: float


@dataclass
class LinkStats:
    requests: int = 0
    retries: int = 0
    resyncs: int = 0
    flushes: int = 0  # resyncs that had to complete a partial frame on the device with filler bytes
    lost_steps: int = 0
    theta_deltas: int = 0  # STEP_THETA_DELTA frames answered (θ as differences to the θ in use)
    theta_delta_refusals: int = 0  # refused for their base (BAD_HASH): sent again as STEP_THETA
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Device:
    """The firmware at the other end of ``port`` (see the module doc).

    ``timeout``: the longest reply deadline per request (the first STEP waits this long, later
    ones less, see :meth:`reply_timeout`); ``max_retries``: retries after the first failed
    attempt of a request; ``budget``: the :class:`LinkBudget`; ``alive``: returns None while the
    device's process runs, else a reason (e.g. the emulator's exit code).  Call :meth:`connect`
    (or :meth:`info`) first.
    """

    def __init__(self, port: Any, *, timeout: float = 2.0, max_retries: int = 3,
                 hello_attempts: int = 30, budget: LinkBudget | None = None,
                 alive: Callable[[], str | None] | None = None, theta_delta: bool = True) -> None:
        self.port = port
        self.link = FirmwareLink(port)
        self.timeout = timeout
        self.max_retries = max_retries
        self.hello_attempts = hello_attempts
        self.budget = budget or LinkBudget()
        self.alive = alive
        self.stats = LinkStats()
        self.rtt: float | None = None  # s, median PING round trip (calibrate)
        self.step_latencies: list[float] = []  # s, the latest STEP round trips answered at once
        self.theta_latencies: list[float] = []  # s, the latest SET_THETA round trips answered at once
        self.pair_latencies: list[float] = []  # s, the latest SET_THETA+STEP pairs answered at once
        self.step_theta_latencies: list[float] = []  # s, the latest STEP_THETA round trips answered at once
        self.last_valid = time.monotonic()
        self._info: Info | None = None
        self._step = 0
        # STEP_THETA_DELTA where the device offers it and the frame is shorter than STEP_THETA's
        self.theta_delta = theta_delta
        self._theta_base: tuple[int, npt.NDArray[np.float64]] | None = None  # tag, values of the θ last applied

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
        self._check_alive("handshake")
        try:
            self._info = self.link.hello(attempts=self.hello_attempts)
        except LinkError as exc:
            self._check_alive("handshake")
            raise TransportError(f"handshake failed: {exc}") from None
        except (OSError, serial.SerialException) as exc:  # e.g. the board reset the connection
            raise LinkDownError(f"handshake failed: the link closed ({exc})") from None
        self.last_valid = time.monotonic()
        return self._info

    def calibrate(self, pings: int = 5) -> float:
        """Measure the link's round trip (median of ``pings`` PINGs) for the reply deadlines."""
        samples = []
        for _ in range(pings):
            samples.append(self._request(Ping(b"rlmpc"), Pong, "PING", self.timeout)[1])
        self.rtt = float(np.median(samples))
        return self.rtt

    def reply_timeout(self, what: str = "STEP") -> float:
        """The reply deadline: scaled to the measured round trip and the slowest STEP so far
        (``timeout`` before anything was measured, and for a STEP before the first answered one)."""
        if what == "SET_THETA" and self.rtt is not None and self.theta_latencies:  # (from its own round trips)
            typical, slowest = float(np.median(self.theta_latencies)), max(self.theta_latencies)
            return min(self.timeout, max(MIN_TIMEOUT, RTT_FACTOR * self.rtt, STEP_FACTOR * typical, 2.0 * slowest))
        if what == "STEP_THETA" and self.step_theta_latencies:  # (as a pair: the device recomputes θ's data first)
            typical, slowest = float(np.median(self.step_theta_latencies)), max(self.step_theta_latencies)
            return min(self.timeout, max(PAIR_MIN_TIMEOUT, STEP_FACTOR * typical, 2.0 * slowest))
        if self.rtt is None or what not in SCALED or (what == "STEP" and not self.step_latencies):
            return self.timeout  # (RESET, the first SET_THETA, …: rare, and the device may work a while on them)
        typical = slowest = 0.0
        if what == "STEP":
            typical, slowest = float(np.median(self.step_latencies)), max(self.step_latencies)
        return min(self.timeout, max(MIN_TIMEOUT, RTT_FACTOR * self.rtt, STEP_FACTOR * typical, 2.0 * slowest))

    def info(self) -> Info:
        return self._info if self._info is not None else self.connect()

    @property
    def precision(self) -> Precision:
        return Precision(self.info().precision)

    @property
    def cost_unit(self) -> CostUnit:
        return CostUnit(self.info().cost_unit)

    def _check_alive(self, what: str) -> None:
        if self.alive is not None:
            reason = self.alive()
            if reason is not None:
                raise LinkDownError(f"{what}: {reason}")

    def resync(self, timeout: float | None = None) -> None:
        """Drain pending input, reset the frame parser and shake hands again (briefly: two HELLOs
        at the reply deadline; the initial :meth:`connect` tries longer)."""
        self.stats.resyncs += 1
        try:
            while self.port.in_waiting:
                self.port.read(self.port.in_waiting)
        except (OSError, serial.SerialException) as exc:
            raise LinkDownError(f"the link closed ({exc})") from None
        self.link.parser.reset()
        try:
            try:
                self._info = self.link.hello(attempts=2, interval=timeout or self.reply_timeout("HELLO"))
            except LinkError:
                # the device's parser may sit inside a frame whose length field was corrupted (up to
                # MAX_PAYLOAD bytes to go, which HELLOs of 8 bytes take long to fill): complete it with
                # filler bytes (no SYNC in them), then shake hands again
                self.stats.flushes += 1
                self.port.write(bytes(MAX_FRAME))
                with contextlib.suppress(OSError, serial.SerialException):
                    self.port.flush()
                time.sleep(timeout or self.reply_timeout("HELLO"))
                while self.port.in_waiting:
                    self.port.read(self.port.in_waiting)
                self.link.parser.reset()
                self._info = self.link.hello(attempts=2, interval=timeout or self.reply_timeout("HELLO"))
        except LinkError as exc:
            raise TransportError(f"handshake failed: {exc}") from None
        except (OSError, serial.SerialException) as exc:
            raise LinkDownError(f"the link closed ({exc})") from None
        self.last_valid = time.monotonic()

    def _request(self, msg: Message, accept: type, what: str, timeout: float | None = None,
                 sent: Sent | None = None, again: Message | None = None) -> tuple[Any, float, int]:
        """Send ``msg`` until a reply of type ``accept`` arrives (and passes ``_check``); ``sent``: its first
        attempt was written already (only its reply is read; the round trip counts from that write);
        ``again``: what a retry sends instead of ``msg`` (e.g. STEP_THETA for a STEP_THETA_DELTA, whose
        base the device may have left with the lost attempt)."""
        retries = 0
        while True:
            self._check_alive(what)
            self.stats.requests += 1
            wait = timeout if timeout is not None else min(self.timeout, self.reply_timeout(what.split()[0])
                                                           * 2.0 ** retries)  # a slow answer: wait longer
            t0 = time.perf_counter() if sent is None else sent.t0
            problem: str
            try:
                ahead, sent = sent, None  # (a retry sends the request again)
                reply = self.link.request(msg, timeout=wait) if ahead is None else self.link.receive(ahead.seq, wait)
                latency = time.perf_counter() - t0
                if isinstance(reply, accept) and self._check(msg, reply):
                    self.last_valid = time.monotonic()
                    return reply, latency, retries
                if isinstance(reply, Error) and reply.code in REFUSALS:
                    self.last_valid = time.monotonic()
                    text = f"{what}: the device refused it: {_describe(reply)}"
                    self.stats.errors.append(text)
                    raise DeviceRefusalError(text, int(reply.code))
                problem = _describe(reply)
            except LinkError as exc:
                problem = str(exc)
            except (OSError, serial.SerialException) as exc:
                self.stats.errors.append(f"{what}: serial error: {exc}")
                self._check_alive(what)
                raise LinkDownError(f"{what}: the link closed ({exc})") from None
            self.stats.errors.append(f"{what}: {problem}")
            self._check_alive(what)
            silent = time.monotonic() - self.last_valid
            if silent > self.budget.max_silence_s:
                raise LinkDownError(f"{what}: no valid frame from the device for {silent:.1f} s "
                               f"(budget {self.budget.max_silence_s:g} s, --max-silence); last problem: {problem}")
            if retries >= self.max_retries:
                raise TransportError(f"{what}: failed after {retries + 1} attempts: {problem}")
            retries += 1
            self._retry_after_resync(what)
            msg = again if again is not None else msg

    def _retry_after_resync(self, what: str) -> None:
        """Count a retry and resynchronise; a failed resync is noted (the retry then finds out), a
        dead link ends the request (:class:`LinkDownError`)."""
        self.stats.retries += 1
        try:
            self.resync()
        except LinkDownError:
            raise
        except TransportError as exc:
            self.stats.errors.append(f"{what}: resync: {exc}")

    @staticmethod
    def _check(msg: Message, reply: Message | DecodeError | FrameError) -> bool:
        if isinstance(msg, (Step, StepTheta, StepThetaDelta)):
            return isinstance(reply, Action) and reply.step == msg.step
        if isinstance(msg, Ping):
            return isinstance(reply, Pong) and reply.data == msg.data
        if isinstance(msg, Reset):
            return reply == Ack(MsgType.RESET)
        return True

    # --- requests ---------------------------------------------------------------------
    def step(self, x: npt.ArrayLike, p: npt.ArrayLike = ()) -> ActionResult:
        """One control step; raises :class:`TransportError` (and counts a lost step) if no
        valid ACTION arrives after all retries, :class:`LinkDownError` / :class:`DeviceRefusalError`
        when no retry can help."""
        k = self._step
        self._step = (self._step + 1) % (1 << 32)
        msg = Step(k, np.asarray(x, dtype=float).ravel(), np.asarray(p, dtype=float).ravel())
        try:
            a, latency, retries = self._request(msg, Action, f"STEP {k}")
        except TransportError:
            self.stats.lost_steps += 1
            raise
        if retries == 0:
            self.step_latencies = [*self.step_latencies[-(LATENCY_WINDOW - 1):], latency]
        return ActionResult(k, a.u, a.flags, a.solver_status, a.sqp_iterations, a.qp_iterations,
                            a.cost, latency, retries)

    def set_theta(self, problem_hash: bytes, theta_hash: bytes, theta: npt.ArrayLike, *,
                  refresh_info: bool = True) -> None:
        """Push θ (SET_THETA) between two steps; the device answers ACK or a refusal (ERROR).
        ``refresh_info``: ask for INFO again (it reports the new θ hash); a learner that pushes θ at
        every step skips that round trip."""
        theta_t = tuple(float(v) for v in np.asarray(theta, dtype=float).ravel())
        self._theta_base = None
        latency, retries = self._request(SetTheta(problem_hash, theta_hash, theta_t), Ack, "SET_THETA")[1:]
        self._applied(int.from_bytes(theta_hash[:4], "little"), theta_t)
        if retries == 0:
            self.theta_latencies = [*self.theta_latencies[-(LATENCY_WINDOW - 1):], latency]
        if refresh_info:
            self.hello()

    def step_with_theta(self, problem_hash: bytes, theta_hash: bytes, theta: npt.ArrayLike, x: npt.ArrayLike,
                        p: npt.ArrayLike = ()) -> ActionResult:
        """SET_THETA and the next STEP back to back (one write, both replies read): one round trip
        instead of two.  The ACTION is used only if the SET_THETA in front of it was acknowledged (the
        firmware handles frames in order, so the step then ran with the new θ); a refusal ends the run
        (:class:`DeviceRefusalError`, the action is discarded); anything else (a lost or corrupted
        reply) is counted as a retry, and θ and the step are sent again one after the other with the
        usual recovery."""
        k = self._step
        theta_t = tuple(float(v) for v in np.asarray(theta, dtype=float).ravel())
        push = SetTheta(problem_hash, theta_hash, theta_t)
        msg = Step(k, np.asarray(x, dtype=float).ravel(), np.asarray(p, dtype=float).ravel())
        self._check_alive("SET_THETA+STEP")
        self.stats.requests += 2
        wait = self.timeout
        if self.pair_latencies:
            wait = min(self.timeout, max(PAIR_MIN_TIMEOUT, STEP_FACTOR * float(np.median(self.pair_latencies)),
                                         2.0 * max(self.pair_latencies)))
        t0 = time.perf_counter()
        try:
            ack, action = self.link.request_pair(push, msg, timeout=wait, one_write=find_faulty(self.port) is None)
        except (OSError, serial.SerialException) as exc:
            self.stats.errors.append(f"SET_THETA+STEP {k}: serial error: {exc}")
            self._check_alive("SET_THETA+STEP")
            raise LinkDownError(f"SET_THETA+STEP {k}: the link closed ({exc})") from None
        latency = time.perf_counter() - t0
        if isinstance(ack, Error) and ack.code in REFUSALS:
            self.last_valid = time.monotonic()
            text = f"SET_THETA: the device refused it: {_describe(ack)}"
            self.stats.errors.append(text)
            raise DeviceRefusalError(text, int(ack.code))
        if ack == Ack(MsgType.SET_THETA) and action is not None and self._check(msg, action):
            assert isinstance(action, Action)
            self.last_valid = time.monotonic()
            self._step = (k + 1) % (1 << 32)
            self.pair_latencies = [*self.pair_latencies[-(LATENCY_WINDOW - 1):], latency]
            self._applied(int.from_bytes(theta_hash[:4], "little"), theta_t)
            return ActionResult(k, tuple(action.u), action.flags, action.solver_status, action.sqp_iterations,
                                action.qp_iterations, action.cost, latency, 0)
        problem = "no reply" if ack is None else _describe(ack) if ack != Ack(MsgType.SET_THETA) else \
            ("no ACTION" if action is None else _describe(action))
        self.stats.errors.append(f"SET_THETA+STEP {k}: {problem}; the action is not used, both sent again")
        self._retry_after_resync(f"SET_THETA+STEP {k}")
        self.set_theta(problem_hash, theta_hash, theta_t, refresh_info=False)
        return self.step(x, p)

    def _applied(self, tag: int, theta: npt.ArrayLike) -> None:
        """The device acknowledged θ named by ``tag``: the base of the next STEP_THETA_DELTA (its values as the
        device holds them, in its precision)."""
        dtype = np.float32 if self.precision == Precision.F32 else np.float64
        self._theta_base = (tag, np.asarray(theta, dtype=dtype).ravel().astype(float))

    def _step_theta_message(self, k: int, theta_tag: int, theta: npt.ArrayLike, x: npt.ArrayLike,
                            p: npt.ArrayLike) -> tuple[StepTheta | StepThetaDelta, StepTheta]:
        """The frame that carries θ and step ``k``, and its STEP_THETA form: a STEP_THETA_DELTA against the θ
        last applied where the device offers it and the frame is shorter (lossless: the device rebuilds the
        very values STEP_THETA would carry), else STEP_THETA."""
        th, xs, ps = (np.asarray(v, dtype=float).ravel() for v in (theta, x, p))
        full = StepTheta(k, theta_tag, xs, ps, th)
        base = self._theta_base
        if not self.theta_delta or base is None or not self.info().capabilities & Capability.THETA_DELTA \
                or base[1].shape != th.shape:
            return full, full
        delta = theta_delta(base[1], th, self.precision)
        if len(delta) + 4 >= th.size * self.precision:  # (4: base_tag) not shorter
            return full, full
        return StepThetaDelta(k, base[0], theta_tag, th.size, xs, ps, delta), full

    def send_step_theta(self, theta_tag: int, theta: npt.ArrayLike, x: npt.ArrayLike, p: npt.ArrayLike = ()
                        ) -> Sent:
        """Write the STEP_THETA (or STEP_THETA_DELTA) frame of the next step now and return it; :meth:`step_theta`
        with ``sent`` reads its reply later (the host can work while the frame crosses the link).  No other
        request may go in between."""
        msg = self._step_theta_message(self._step, theta_tag, theta, x, p)[0]
        self._check_alive("STEP_THETA")
        t0 = time.perf_counter()
        try:
            seq = self.link.send(msg)
        except (OSError, serial.SerialException) as exc:
            self.stats.errors.append(f"STEP_THETA {msg.step}: serial error: {exc}")
            self._check_alive("STEP_THETA")
            raise LinkDownError(f"STEP_THETA {msg.step}: the link closed ({exc})") from None
        return Sent(msg, seq, t0)

    def step_theta(self, theta_tag: int, theta: npt.ArrayLike, x: npt.ArrayLike, p: npt.ArrayLike = (),
                   sent: Sent | None = None) -> ActionResult:
        """A new θ and one step in one frame (STEP_THETA, capability ``STEP_THETA``): the device checks θ as
        SET_THETA does (a refusal raises :class:`DeviceRefusalError`, no step), applies it (a real-time
        iteration keeps its warm start, other solvers forget theirs) and steps.  The ACTION carrying this
        request's seq and step index was computed with this θ (θ and x travel in one CRC-checked frame), so a
        lost or corrupted reply is simply sent again with the usual recovery (the same answer from a solver
        that restarts at θ; a real-time iteration that ran the lost step iterates once more).  ``theta_tag`` names θ
        in the device's INFO afterwards (:func:`rlmpc.codegen.protocol.tagged_theta_hash`).  ``sent``: the
        frame of this request, written by :meth:`send_step_theta` (its reply is read; θ, x, p are the frame's).

        Where the device offers it, θ goes as differences to the θ it applied last (STEP_THETA_DELTA,
        :meth:`_step_theta_message`); a retry, and a refusal of that base (BAD_HASH: the device reset or
        missed a θ), send the whole θ in STEP_THETA."""
        k = self._step
        self._step = (self._step + 1) % (1 << 32)
        made, full = self._step_theta_message(k, theta_tag, theta, x, p)
        msg = made if sent is None else sent.msg
        if not isinstance(msg, (StepTheta, StepThetaDelta)) or msg.step != k:
            raise ValueError(f"step_theta: the frame sent ahead is not STEP_THETA {k}")
        what = f"STEP_THETA {k}"
        try:
            try:
                a, latency, retries = self._request(msg, Action, what, sent=sent, again=full)
            except DeviceRefusalError as exc:
                if not isinstance(msg, StepThetaDelta) or exc.code != ErrorCode.BAD_HASH:
                    raise
                self.stats.theta_delta_refusals += 1  # the device runs another θ than the base: all of θ
                self._theta_base = None
                a, latency, retries = self._request(full, Action, what)
                msg = full
        except DeviceRefusalError:
            self._step = k  # no step was made
            raise
        except TransportError:
            self.stats.lost_steps += 1
            self._theta_base = None  # (the device may or may not have applied θ)
            raise
        if retries == 0 and isinstance(msg, StepThetaDelta):
            self.stats.theta_deltas += 1
        self._applied(theta_tag, full.theta)
        if retries == 0:
            self.step_theta_latencies = [*self.step_theta_latencies[-(LATENCY_WINDOW - 1):], latency]
        return ActionResult(k, a.u, a.flags, a.solver_status, a.sqp_iterations, a.qp_iterations,
                            a.cost, latency, retries)

    def reset(self) -> None:
        self._request(Reset(), Ack, "RESET", self.timeout)
        self._step = 0

    def ping(self, data: bytes = b"rlmpc") -> float:
        """Round-trip time [s] of a PING."""
        return self._request(Ping(data), Pong, "PING")[1]

    def hello(self) -> Info:
        reply = self._request(Hello(), Info, "HELLO", self.timeout)[0]
        self._info = reply
        return reply

    def close(self) -> None:
        self.port.close()


def process_alive(process: Any, what: str = "the emulator") -> Callable[[], str | None]:
    """An ``alive`` callback for :class:`Device`: None while ``process`` (a Popen) runs."""
    def alive() -> str | None:
        code = process.poll()
        return None if code is None else f"{what} exited (code {code})"
    return alive


def _describe(reply: Message | DecodeError | FrameError) -> str:
    if isinstance(reply, Error):
        return f"ERROR code {reply.code} for request {reply.request} (detail {reply.detail})"
    if isinstance(reply, (DecodeError, FrameError)):
        return f"bad reply: {reply}"
    return f"unexpected reply {type(reply).__name__}"


__all__ = ["REFUSALS", "ActionResult", "Device", "DeviceRefusalError", "LinkBudget", "LinkDownError", "LinkStats",
           "RecordingPort", "Sent", "TransportError", "open_link", "process_alive"]
