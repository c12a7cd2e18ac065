"""The serial protocol in Python: messages, payload codec, frames and a streaming frame parser.

Layouts come from :mod:`rlmpc.codegen.protocol_spec` (see ``docs/protocol.md``).  Encoding a malformed
message is a programming error (``ValueError``); everything received is checked and rejected with
a typed result (:class:`FrameError`, :class:`DecodeError`), never an exception.

>>> frame = encode(Ping(b"hi"), seq=7)
>>> parser = FrameParser()
>>> [r] = parser.feed(b"noise" + frame)
>>> r.type.name, r.seq, decode(r)
('PING', 7, Ping(data=b'hi'))
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from rlmpc.codegen.protocol_spec import (
    CRC_INIT,
    HASH_LEN,
    INT_KINDS,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    SPECS,
    SYNC,
    ErrorCode,
    MessageSpec,
    MsgType,
    Precision,
    spec_for,
)

REAL_DTYPES: dict[Precision, np.dtype[Any]] = {Precision.F32: np.dtype("<f4"), Precision.F64: np.dtype("<f8")}
Floats = tuple[float, ...]
# real arrays of the messages: any sequence or array in, always stored as a tuple of floats
Reals = Floats | Sequence[float] | npt.NDArray[Any]


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected, no final XOR)."""
    return binascii.crc_hqx(data, crc)


def hash_prefix(hexdigest: str) -> bytes:
    """The protocol's hash bytes (first :data:`HASH_LEN` bytes) of a SHA-256 hex digest."""
    return bytes.fromhex(hexdigest)[:HASH_LEN]


def theta_tag(hexdigest: str) -> int:
    """STEP_THETA's ``theta_tag`` of a θ hash (SHA-256 hex digest): its first 4 bytes, little-endian."""
    return int.from_bytes(bytes.fromhex(hexdigest)[:4], "little")


def tagged_theta_hash(tag: int) -> bytes:
    """What INFO reports as ``theta_hash`` after a STEP_THETA with ``tag``: the tag (LE), then zeros."""
    return tag.to_bytes(4, "little") + bytes(HASH_LEN - 4)


# --- messages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Message:
    """Base: array fields become tuples of floats, bytes fields become bytes."""

    TYPE: ClassVar[MsgType]

    def __post_init__(self) -> None:
        spec = SPECS[self.TYPE]
        for arr in spec.arrays:
            values = np.asarray(getattr(self, arr.name), dtype=float).ravel()
            object.__setattr__(self, arr.name, tuple(float(v) for v in values))
        for name in [f.name for f in spec.fields if f.kind == "bytes"] + ([spec.tail] if spec.tail else []):
            object.__setattr__(self, name, bytes(getattr(self, name)))


@dataclass(frozen=True)
class Hello(_Message):
    TYPE: ClassVar[MsgType] = MsgType.HELLO
    protocol_version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Step(_Message):
    TYPE: ClassVar[MsgType] = MsgType.STEP
    step: int
    x: Reals
    p: Reals = ()


@dataclass(frozen=True)
class SetTheta(_Message):
    TYPE: ClassVar[MsgType] = MsgType.SET_THETA
    problem_hash: bytes
    theta_hash: bytes
    theta: Reals


@dataclass(frozen=True)
class StepTheta(_Message):
    TYPE: ClassVar[MsgType] = MsgType.STEP_THETA
    step: int
    theta_tag: int
    x: Reals
    p: Reals = ()
    theta: Reals = ()


@dataclass(frozen=True)
class StepThetaDelta(_Message):
    """STEP_THETA with θ as differences to the θ in use (``base_tag``): ``delta`` holds ``n_theta`` varints
    (:func:`theta_delta`, :func:`apply_theta_delta`)."""

    TYPE: ClassVar[MsgType] = MsgType.STEP_THETA_DELTA
    step: int
    base_tag: int
    theta_tag: int
    n_theta: int
    x: Reals
    p: Reals = ()
    delta: bytes = b""


@dataclass(frozen=True)
class Reset(_Message):
    TYPE: ClassVar[MsgType] = MsgType.RESET


@dataclass(frozen=True)
class Ping(_Message):
    TYPE: ClassVar[MsgType] = MsgType.PING
    data: bytes = b""


@dataclass(frozen=True)
class Exit(_Message):
    TYPE: ClassVar[MsgType] = MsgType.EXIT
    code: int = 0


@dataclass(frozen=True)
class Info(_Message):
    TYPE: ClassVar[MsgType] = MsgType.INFO
    protocol_version: int
    fw_major: int
    fw_minor: int
    fw_patch: int
    precision: int
    capabilities: int
    cost_unit: int
    nx: int
    nu: int
    np: int
    ntheta: int
    board: bytes
    manifest_hash: bytes
    problem_hash: bytes
    theta_hash: bytes

    @property
    def board_name(self) -> str:
        return self.board.rstrip(b"\0").decode("ascii", errors="replace")


@dataclass(frozen=True)
class Action(_Message):
    TYPE: ClassVar[MsgType] = MsgType.ACTION
    step: int
    flags: int
    solver_status: int
    sqp_iterations: int
    qp_iterations: int
    cost: int
    u: Reals


@dataclass(frozen=True)
class Pong(_Message):
    TYPE: ClassVar[MsgType] = MsgType.PONG
    data: bytes = b""


@dataclass(frozen=True)
class Ack(_Message):
    TYPE: ClassVar[MsgType] = MsgType.ACK
    request: int


@dataclass(frozen=True)
class Error(_Message):
    TYPE: ClassVar[MsgType] = MsgType.ERROR
    code: int
    request: int
    detail: int = 0


Message = (Hello | Step | SetTheta | StepTheta | StepThetaDelta | Reset | Ping | Exit | Info | Action | Pong | Ack
           | Error)
MESSAGE_CLASSES: dict[MsgType, type[Message]] = {
    cls.TYPE: cls for cls in (Hello, Step, SetTheta, StepTheta, StepThetaDelta, Reset, Ping, Exit, Info, Action, Pong,
                              Ack, Error)}


def board_bytes(name: str) -> bytes:
    """A board name as INFO's NUL-padded field."""
    raw = name.encode("ascii")
    size = SPECS[MsgType.INFO].field("board").length
    if len(raw) > size:
        raise ValueError(f"board name {name!r}: longer than {size} bytes")
    return raw.ljust(size, b"\0")


# --- θ as differences (STEP_THETA_DELTA) ---------------------------------------------------

_UINT_DTYPES: dict[Precision, np.dtype[Any]] = {Precision.F32: np.dtype("<u4"), Precision.F64: np.dtype("<u8")}


def _bits(values: Reals, precision: Precision) -> list[int]:
    """The IEEE-754 bit patterns of ``values`` rounded to ``precision``, as unsigned integers."""
    p = Precision(precision)
    with np.errstate(over="ignore"):  # (beyond float32: inf, as STEP_THETA would send it)
        return [int(b) for b in np.asarray(values, dtype=REAL_DTYPES[p]).ravel().view(_UINT_DTYPES[p])]


def theta_delta(base: Reals, theta: Reals, precision: Precision = Precision.F32) -> bytes:
    """STEP_THETA_DELTA's ``delta``: θ (rounded to ``precision``) against ``base`` (values in ``precision``), per
    value the difference of the bit patterns, zigzag-mapped, as a varint (``protocol_spec``).  Lossless: the
    device rebuilds exactly the values a STEP_THETA frame would carry."""
    width = 8 * Precision(precision)
    mask = (1 << width) - 1
    out = bytearray()
    for b0, b1 in zip(_bits(base, precision), _bits(theta, precision), strict=True):
        d = (b1 - b0) & mask
        if d >> (width - 1):  # negative
            d -= 1 << width
        z = ((d << 1) ^ (d >> (width - 1))) & mask
        while z >= 0x80:
            out.append((z & 0x7F) | 0x80)
            z >>= 7
        out.append(z)
    return bytes(out)


def _varints(delta: bytes, n: int, precision: Precision) -> list[int] | None:
    """The n zigzag-mapped values in ``delta``, or None unless they fill it exactly and canonically."""
    width = 8 * Precision(precision)
    most = -(-width // 7)
    values, i = [], 0
    for _ in range(n):
        z = shift = used = 0
        while True:
            if i >= len(delta) or used == most:
                return None
            byte = delta[i]
            i += 1
            used += 1
            if used > 1 and byte == 0:  # a final 0x00 after another byte: not canonical
                return None
            z |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if z >> width:
            return None
        values.append(z)
    return values if i == len(delta) else None


def apply_theta_delta(base: Reals, delta: bytes,
                      precision: Precision = Precision.F32) -> npt.NDArray[np.float64] | None:
    """θ rebuilt from the θ in use (``base``, values in ``precision``) and STEP_THETA_DELTA's ``delta``, as the
    device does (integer arithmetic on the bit patterns); None if ``delta`` is malformed."""
    p = Precision(precision)
    bits = _bits(base, p)
    zs = _varints(delta, len(bits), p)
    if zs is None:
        return None
    width = 8 * p
    mask = (1 << width) - 1
    new = [(b + ((z >> 1) ^ -(z & 1))) & mask for b, z in zip(bits, zs, strict=True)]
    return np.array(new, dtype=_UINT_DTYPES[p]).view(REAL_DTYPES[p]).astype(float)


# --- payload codec -------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodeError:
    """A payload that does not fit its type's layout (``code``, ``detail`` as in ERROR)."""

    code: ErrorCode
    detail: int = 0


@cache
def _fixed_struct(spec: MessageSpec) -> struct.Struct:
    codes = [f"{f.length}s" if f.kind == "bytes" else INT_KINDS[f.kind][1] for f in spec.fields]
    return struct.Struct("<" + "".join(codes))


def _counts(spec: MessageSpec) -> set[str]:
    return {a.count for a in spec.arrays}


def encode_payload(msg: Message, precision: Precision = Precision.F32) -> bytes:
    """The payload bytes of a message, reals in ``precision`` (``ValueError`` if it cannot be sent)."""
    spec = SPECS[msg.TYPE]
    arrays = {a.count: np.asarray(getattr(msg, a.name), dtype=REAL_DTYPES[Precision(precision)])
              for a in spec.arrays}
    values: list[Any] = []
    for f in spec.fields:
        value: Any = len(arrays[f.name]) if f.name in arrays else getattr(msg, f.name)
        if f.kind == "bytes" and len(value) != f.length:
            raise ValueError(f"{spec.name}.{f.name}: expected {f.length} bytes, got {len(value)}")
        values.append(value)
    try:
        fixed = _fixed_struct(spec).pack(*values)
    except struct.error as exc:
        raise ValueError(f"{spec.name}: {exc}") from None
    payload = fixed + b"".join(a.tobytes() for a in arrays.values())
    if spec.tail:
        payload += getattr(msg, spec.tail)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"{spec.name}: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return payload


def decode_payload(type_id: int, payload: bytes,
                   precision: Precision = Precision.F32) -> Message | DecodeError:
    """The message in a payload, or why it does not fit the layout (counts are not checked against
    any device dimension: compare them with :class:`Info`)."""
    spec = spec_for(type_id)
    if spec is None:
        return DecodeError(ErrorCode.UNKNOWN_TYPE)
    n = len(payload)
    if not spec.min_len <= n <= spec.max_len:
        return DecodeError(ErrorCode.BAD_LENGTH, n)
    raw = dict(zip([f.name for f in spec.fields], _fixed_struct(spec).unpack_from(payload), strict=True))
    dtype = REAL_DTYPES[Precision(precision)]
    reals = spec.fixed_len + sum(raw[a.count] for a in spec.arrays) * dtype.itemsize
    if spec.arrays and (n < reals if spec.tail else n != reals):
        return DecodeError(ErrorCode.BAD_LENGTH, n)
    if spec.type == MsgType.STEP_THETA_DELTA and _varints(payload[reals:], raw["n_theta"], precision) is None:
        return DecodeError(ErrorCode.BAD_LENGTH, n)
    kwargs = {k: v for k, v in raw.items() if k not in _counts(spec)}
    offset = spec.fixed_len
    for a in spec.arrays:
        count = raw[a.count]
        kwargs[a.name] = np.frombuffer(payload, dtype=dtype, count=count, offset=offset)
        offset += count * dtype.itemsize
    if spec.tail:
        kwargs[spec.tail] = payload[offset:]
    return MESSAGE_CLASSES[spec.type](**kwargs)


# --- frames --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """A frame with a good CRC, a known type and a length in that type's range."""

    type: MsgType
    seq: int
    payload: bytes


@dataclass(frozen=True)
class FrameError:
    """A rejected frame: BAD_CRC, BAD_LENGTH or UNKNOWN_TYPE, with its header as received."""

    code: ErrorCode
    type: int
    seq: int
    length: int


ParseResult = Frame | FrameError


def encode_frame(type_id: int, seq: int, payload: bytes) -> bytes:
    """Sync, header, payload and CRC."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    header = struct.pack("<BBH", type_id, seq, len(payload))
    crc = crc16(header + payload)
    return bytes(SYNC) + header + payload + struct.pack("<H", crc)


def encode(msg: Message, seq: int = 0, precision: Precision = Precision.F32) -> bytes:
    """The frame of a message."""
    return encode_frame(msg.TYPE, seq, encode_payload(msg, precision))


def decode(frame: Frame, precision: Precision = Precision.F32) -> Message | DecodeError:
    """The message of a parsed frame."""
    return decode_payload(frame.type, frame.payload, precision)


@dataclass
class ParserStats:
    """Counters since the parser was made (``garbage``: bytes skipped while hunting for sync)."""

    frames: int = 0
    bad_crc: int = 0
    bad_length: int = 0
    unknown_type: int = 0
    garbage: int = 0


_HUNT, _SYNC1, _TYPE, _SEQ, _LEN_LO, _LEN_HI, _PAYLOAD, _CRC_LO, _CRC_HI = range(9)
_SYNC0_BYTE = bytes(SYNC[:1])


class FrameParser:
    """Streaming frame parser: feed any chunks, get the frames and rejections they complete.

    Same state machine as the C parser (``rlmpc_parser_feed``): hunt for the sync pair, read
    the header, reject a length above MAX_PAYLOAD at once, read payload and CRC, then check
    CRC, type and the type's length range.  After any rejection the hunt resumes at the next
    byte.  Memory is bounded by one payload; it never blocks.
    """

    def __init__(self) -> None:
        self.stats = ParserStats()
        self._state = _HUNT
        self._type = self._seq = self._len = self._crc = 0
        self._buf = bytearray()

    def reset(self) -> None:
        """Drop a partial frame (e.g. after a receive timeout); the counters stay."""
        self._state = _HUNT
        self._buf = bytearray()

    @property
    def idle(self) -> bool:
        """True when no partial frame is held."""
        return self._state == _HUNT

    @property
    def buffered(self) -> int:
        """Payload bytes held (of the frame in progress or the last one): at most MAX_PAYLOAD."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[ParseResult]:
        """Consume ``data`` and return what it completed, in order."""
        data = bytes(data)
        out: list[ParseResult] = []
        i, n = 0, len(data)
        while i < n:
            state = self._state
            if state == _HUNT:  # fast path: skip to the next sync byte
                j = data.find(_SYNC0_BYTE, i)
                stop = n if j < 0 else j
                self.stats.garbage += stop - i
                i = stop
                if j >= 0:
                    self._state, i = _SYNC1, j + 1
                continue
            if state == _PAYLOAD:  # fast path: copy as much payload as available
                take = min(self._len - len(self._buf), n - i)
                self._buf += data[i:i + take]
                i += take
                if len(self._buf) == self._len:
                    self._state = _CRC_LO
                continue
            self._step(data[i], out)
            i += 1
        return out

    def _step(self, b: int, out: list[ParseResult]) -> None:
        state = self._state
        if state == _SYNC1:
            if b == SYNC[1]:
                self._state = _TYPE
            elif b == SYNC[0]:
                self.stats.garbage += 1
            else:
                self.stats.garbage += 2
                self._state = _HUNT
        elif state == _TYPE:
            self._type, self._state = b, _SEQ
        elif state == _SEQ:
            self._seq, self._state = b, _LEN_LO
        elif state == _LEN_LO:
            self._len, self._state = b, _LEN_HI
        elif state == _LEN_HI:
            self._len |= b << 8
            self._buf = bytearray()
            if self._len > MAX_PAYLOAD:
                self.stats.bad_length += 1
                out.append(FrameError(ErrorCode.BAD_LENGTH, self._type, self._seq, self._len))
                self._state = _HUNT
            else:
                self._state = _PAYLOAD if self._len else _CRC_LO
        elif state == _CRC_LO:
            self._crc, self._state = b, _CRC_HI
        else:  # _CRC_HI
            self._crc |= b << 8
            self._state = _HUNT
            out.append(self._finish())

    def _finish(self) -> ParseResult:
        header = struct.pack("<BBH", self._type, self._seq, self._len)
        spec = spec_for(self._type)
        if crc16(header + self._buf) != self._crc:
            self.stats.bad_crc += 1
            code = ErrorCode.BAD_CRC
        elif spec is None:
            self.stats.unknown_type += 1
            code = ErrorCode.UNKNOWN_TYPE
        elif not spec.min_len <= self._len <= spec.max_len:
            self.stats.bad_length += 1
            code = ErrorCode.BAD_LENGTH
        else:
            self.stats.frames += 1
            return Frame(spec.type, self._seq, bytes(self._buf))
        return FrameError(code, self._type, self._seq, self._len)


# --- the device's side -----------------------------------------------------------------------


def error_reply(rejected: FrameError) -> Error:
    """The ERROR a device answers a parser rejection with (sent with the rejected frame's seq)."""
    detail = rejected.length if rejected.code == ErrorCode.BAD_LENGTH else 0
    return Error(rejected.code, rejected.type, detail)


@dataclass(frozen=True)
class DeviceLimits:
    """What a device checks requests against: its dimensions, problem hash and θ bounds."""

    nx: int
    np: int = 0
    ntheta: int = 0
    problem_hash: bytes = bytes(HASH_LEN)
    theta_lb: Floats | None = None
    theta_ub: Floats | None = None
    precision: Precision = Precision.F32
    theta_tag: int | None = None  # the tag of the θ in use (first 4 bytes of INFO.theta_hash, LE)
    theta: Floats | None = None  # the θ in use, if the device keeps it for STEP_THETA_DELTA (else None)


def check_request(msg: Message, limits: DeviceLimits) -> DecodeError | None:
    """Why a device rejects a decoded request (as ``rlmpc_decode_*`` in C), or None."""
    if isinstance(msg, Hello) and msg.protocol_version != PROTOCOL_VERSION:
        return DecodeError(ErrorCode.BAD_VERSION, PROTOCOL_VERSION)
    if isinstance(msg, (Step, StepTheta, StepThetaDelta)):
        if len(msg.x) != limits.nx:
            return DecodeError(ErrorCode.BAD_DIMENSION, limits.nx)
        if msg.p and len(msg.p) != limits.np:
            return DecodeError(ErrorCode.BAD_DIMENSION, limits.np)
    if isinstance(msg, StepThetaDelta):
        if msg.n_theta != limits.ntheta:
            return DecodeError(ErrorCode.BAD_DIMENSION, limits.ntheta)
        if limits.theta is None or msg.base_tag != limits.theta_tag:
            return DecodeError(ErrorCode.BAD_HASH)
        theta = apply_theta_delta(limits.theta, msg.delta, limits.precision)
        if theta is None:  # (decode_payload rejects it first)
            return DecodeError(ErrorCode.BAD_LENGTH, len(encode_payload(msg, limits.precision)))
        return _check_theta(StepTheta(msg.step, msg.theta_tag, msg.x, msg.p, theta), limits)
    if isinstance(msg, (SetTheta, StepTheta)):
        return _check_theta(msg, limits)
    return None


def _check_theta(msg: SetTheta | StepTheta, limits: DeviceLimits) -> DecodeError | None:
    """SET_THETA's checks (STEP_THETA's without the problem hash: checked at HELLO)."""
    if len(msg.theta) != limits.ntheta:
        return DecodeError(ErrorCode.BAD_DIMENSION, limits.ntheta)
    if isinstance(msg, SetTheta) and msg.problem_hash != limits.problem_hash:
        return DecodeError(ErrorCode.BAD_HASH)
    dtype = REAL_DTYPES[limits.precision]  # compare in the device's precision, as it does
    theta = np.asarray(msg.theta, dtype=dtype)
    lb = np.asarray(-np.inf if limits.theta_lb is None else limits.theta_lb, dtype=dtype)
    ub = np.asarray(np.inf if limits.theta_ub is None else limits.theta_ub, dtype=dtype)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(theta) & (theta >= lb) & (theta <= ub))
    return DecodeError(ErrorCode.OUT_OF_BOUNDS, int(np.argmax(bad))) if bad.any() else None
