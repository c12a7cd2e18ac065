"""Fault injection on a serial link: bit flips, dropped bytes, delays and device resets.

:class:`FaultyPort` wraps the port a :class:`rlmpc.hil.transport.Device` uses (same interface:
``write``, ``read``, ``flush``, ``in_waiting``, ``close``, ... and ``log`` of a wrapped
:class:`rlmpc.hil.transport.RecordingPort`) and, with a seeded :class:`numpy.random.Generator`,

* flips one bit of a byte with probability ``flip_rate`` per byte,
* drops a byte with probability ``drop_rate`` per byte,
* delays a chunk by ``delay_s`` with probability ``delay_rate`` per chunk,

in the directions of ``directions`` (``"tx"``: host → device, ``"rx"``: device → host), only
while the number of step frames (STEP, STEP_THETA, STEP_THETA_DELTA) written is in ``[start_step, stop_step)`` (so the
and the initial RESET of :func:`rlmpc.hil.runner.run_hil` stay clean unless asked otherwise).
``reset_at`` lists STEP counts after whose frame the device is reset by ``reset_device``: a
callable that resets or restarts the device and returns a new raw port (its link changed,
e.g. a restarted emulator) or None (the same port stays valid).  The in-flight STEP then gets
no reply and the :class:`~rlmpc.hil.transport.Device` must resync (a new HELLO handshake) and retry.

Everything injected is counted in :attr:`FaultyPort.counts` (:class:`FaultCounts`), together
with the HELLO frames written (handshakes).  :func:`attach_fault_counts` copies the counts into
a :class:`~rlmpc.hil.runner.HilRun`'s ``link`` so that :func:`rlmpc.hil.report.write_report` writes them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rlmpc.codegen.protocol_spec import SYNC, MsgType

ResetHook = Callable[[], Any]


@dataclass(frozen=True)
class FaultConfig:
    """What to inject (rates are probabilities in [0, 1]; see the module doc)."""

    seed: int = 0
    flip_rate: float = 0.0  # per byte
    drop_rate: float = 0.0  # per byte
    delay_rate: float = 0.0  # per chunk
    delay_s: float = 0.02
    directions: tuple[str, ...] = ("tx", "rx")
    start_step: int = 1  # inject from the start_step-th STEP written (1: the first)
    stop_step: int | None = None  # … up to, not including, this STEP count
    reset_at: tuple[int, ...] = ()  # STEP counts after which the device is reset

    def __post_init__(self) -> None:
        for name in ("flip_rate", "drop_rate", "delay_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {v}")
        bad = set(self.directions) - {"tx", "rx"}
        if bad:
            raise ValueError(f"directions: expected 'tx' and/or 'rx', got {sorted(bad)}")
        object.__setattr__(self, "directions", tuple(self.directions))
        object.__setattr__(self, "reset_at", tuple(int(k) for k in self.reset_at))


@dataclass
class FaultCounts:
    """What was injected, and the traffic it was injected into."""

    bit_flips: int = 0
    dropped_bytes: int = 0
    delays: int = 0
    delay_s: float = 0.0
    resets: int = 0
    steps_written: int = 0
    hellos_written: int = 0  # handshakes (the first one and every resync)
    bytes_tx: int = 0  # bytes the host tried to send
    bytes_rx: int = 0  # bytes the device sent (before drops)
    flips_by_direction: dict[str, int] = field(default_factory=lambda: {"tx": 0, "rx": 0})
    drops_by_direction: dict[str, int] = field(default_factory=lambda: {"tx": 0, "rx": 0})
    errors: list[str] = field(default_factory=list)

    @property
    def injected(self) -> int:
        return self.bit_flips + self.dropped_bytes + self.delays + self.resets

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "injected": self.injected}


def _frame_type(data: bytes) -> int | None:
    """The type byte of a frame written in one chunk (FirmwareLink writes whole frames)."""
    if len(data) > 2 and data[0] == SYNC[0] and data[1] == SYNC[1]:
        return data[2]
    return None


class FaultyPort:
    """A port proxy that injects the faults of ``config`` (see the module doc)."""

    def __init__(self, port: Any, config: FaultConfig | None = None, *,
                 reset_device: ResetHook | None = None) -> None:
        self.port = port
        self.config = config or FaultConfig()
        self.reset_device = reset_device
        self.counts = FaultCounts()
        self.rng = np.random.default_rng(self.config.seed)
        if self.config.reset_at and reset_device is None:
            raise ValueError("reset_at: needs a reset_device callback")

    # --- injection --------------------------------------------------------------------
    @property
    def active(self) -> bool:
        c, n = self.config, self.counts.steps_written
        return n >= c.start_step and (c.stop_step is None or n < c.stop_step)

    def _mangle(self, data: bytes, direction: str) -> bytes:
        c = self.config
        if not data or direction not in c.directions or not self.active:
            return data
        n = len(data)
        if c.delay_rate > 0 and self.rng.random() < c.delay_rate:
            self.counts.delays += 1
            self.counts.delay_s += c.delay_s
            time.sleep(c.delay_s)
        buf = np.frombuffer(data, dtype=np.uint8).copy()
        if c.flip_rate > 0:
            flips = self.rng.random(n) < c.flip_rate
            k = int(flips.sum())
            if k:
                buf[flips] ^= (1 << self.rng.integers(0, 8, size=k)).astype(np.uint8)
                self.counts.bit_flips += k
                self.counts.flips_by_direction[direction] += k
        if c.drop_rate > 0:
            keep = self.rng.random(n) >= c.drop_rate
            k = n - int(keep.sum())
            if k:
                buf = buf[keep]
                self.counts.dropped_bytes += k
                self.counts.drops_by_direction[direction] += k
        return buf.tobytes()

    def _reset(self) -> None:
        assert self.reset_device is not None
        self.counts.resets += 1
        try:
            new = self.reset_device()
        except Exception as exc:  # a failed reset is a fault too: counted, the run goes on
            self.counts.errors.append(f"reset {self.counts.resets}: {exc}")
            return
        if new is not None:
            self.swap_port(new)

    def swap_port(self, new: Any) -> None:
        """Replace the raw port (after the device restarted on a new link).  A wrapped
        :class:`~rlmpc.hil.transport.RecordingPort` keeps its log: only its inner port changes."""
        target = self.port
        inner_holder = target if hasattr(target, "log") and hasattr(target, "port") else self
        old = inner_holder.port
        inner_holder.port = new
        if old is not new:
            with contextlib.suppress(Exception):  # the old link may be gone already
                old.close()

    # --- port interface ---------------------------------------------------------------
    def write(self, data: bytes) -> int | None:
        data = bytes(data)
        ftype = _frame_type(data)
        is_step = ftype in STEP_TYPES
        if is_step:
            self.counts.steps_written += 1
        elif ftype == MsgType.HELLO:
            self.counts.hellos_written += 1
        self.counts.bytes_tx += len(data)
        out = self._mangle(data, "tx")
        written = self.port.write(out) if out else 0
        if is_step and self.counts.steps_written in self.config.reset_at:
            with contextlib.suppress(Exception):
                self.port.flush()
            self._reset()
        return len(data) if written is not None else None

    def read(self, size: int = 1) -> bytes:
        data: bytes = self.port.read(size)
        if data:
            self.counts.bytes_rx += len(data)
            data = self._mangle(data, "rx")
        return data

    def __getattr__(self, name: str) -> Any:  # flush, in_waiting, reset_input_buffer, close, log, ...
        return getattr(self.port, name)


STEP_TYPES = (MsgType.STEP, MsgType.STEP_THETA, MsgType.STEP_THETA_DELTA)  # the frames counted as steps

SPEC_KEYS = {"flip": "flip_rate", "drop": "drop_rate", "delay": "delay_rate", "delay_s": "delay_s",
             "seed": "seed", "dir": "directions", "start": "start_step", "stop": "stop_step", "reset": "reset_at"}
SPEC_HELP = ("comma-separated KEY=VALUE: flip=P (bit flips per byte), drop=P (dropped bytes per byte), "
             "delay=P (delayed chunks), delay_s=S (default 0.02), reset=K[+K…] (reset the device after the "
             "K-th STEP), dir=tx|rx|both, start=K, stop=K, seed=N; e.g. 'drop=0.001,flip=1e-4,seed=3'")


def parse_fault_spec(text: str) -> FaultConfig:
    """A :class:`FaultConfig` from ``rlmpc hil --faults SPEC`` (see :data:`SPEC_HELP`); one-line ValueError."""
    values: dict[str, Any] = {}
    for item in (t.strip() for t in text.split(",")):
        key, eq, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not eq or key not in SPEC_KEYS:
            raise ValueError(f"--faults: {item!r}: expected KEY=VALUE with KEY one of {', '.join(SPEC_KEYS)}")
        name = SPEC_KEYS[key]
        try:
            if name == "directions":
                if raw not in ("tx", "rx", "both"):
                    raise ValueError
                values[name] = ("tx", "rx") if raw == "both" else (raw,)
            elif name == "reset_at":
                values[name] = tuple(int(v) for v in raw.split("+"))
                if any(v < 1 for v in values[name]):
                    raise ValueError
            elif name in ("seed", "start_step", "stop_step"):
                values[name] = int(raw)
                if values[name] < 0:
                    raise ValueError
            else:
                values[name] = float(raw)
                if not values[name] >= 0 or values[name] == float("inf"):
                    raise ValueError
        except ValueError:
            raise ValueError(f"--faults: {key}: expected {_expected(name)}, got {raw!r}") from None
    try:
        return FaultConfig(**values)
    except ValueError as exc:
        raise ValueError(f"--faults: {exc}") from None


def _expected(name: str) -> str:
    return {"directions": "tx, rx or both", "reset_at": "step counts >= 1 joined by +",
            "seed": "an integer >= 0", "start_step": "an integer >= 0", "stop_step": "an integer >= 0",
            "delay_s": "a non-negative number of seconds"}.get(name, "a probability in [0, 1]")


def find_faulty(port: Any) -> FaultyPort | None:
    """The :class:`FaultyPort` in a chain of port wrappers (``.port`` attributes), if any."""
    seen = 0
    while port is not None and seen < 8:
        if isinstance(port, FaultyPort):
            return port
        port = getattr(port, "__dict__", {}).get("port")
        seen += 1
    return None


def attach_fault_counts(run: Any, port: Any) -> Any:
    """Copy the injected counts of the :class:`FaultyPort` behind ``port`` into ``run.link["faults"]``
    (written by :func:`rlmpc.hil.report.write_report` in ``hil.json``); returns ``run``."""
    faulty = find_faulty(port)
    if faulty is not None:
        run.link["faults"] = faulty.counts.as_dict()
        run.link["faults"]["config"] = asdict(faulty.config)
    return run


def emulator_restarter(program: Any, board: str, holder: dict[str, Any]) -> ResetHook:
    """A ``reset_device`` hook that stops the emulator in ``holder["emu"]`` (hard: a power cycle,
    no EXIT frame), starts ``program`` on ``board`` again and returns the new raw port.
    ``holder["emu"]`` is updated so that the caller stops the latest emulator."""
    import serial

    from rlmpc.codegen.firmware import start_emulator

    def restart() -> Any:
        holder["emu"].stop()
        emu = start_emulator(program, board)
        holder["emu"] = emu
        return serial.serial_for_url(emu.serial_url, baudrate=115200, timeout=0.01, write_timeout=2.0)

    return restart


__all__ = ["SPEC_HELP", "FaultConfig", "FaultCounts", "FaultyPort", "attach_fault_counts", "emulator_restarter",
           "find_faulty", "parse_fault_spec"]
