"""The serial protocol between the HIL runner and the controller firmware: the one source of truth.

Message type ids, payload layouts, error codes, flag bits and constants live here only.
:mod:`rlmpc.codegen.protocol` encodes and decodes from these tables, and :mod:`rlmpc.codegen.protocol_header`
generates the C header ``rlmpc_protocol_gen.h`` from them, so C and Python cannot drift.
``docs/protocol.md`` explains the protocol; a test checks its tables against this module.

Every payload is a fixed part (the ``fields`` of a :class:`MessageSpec`, little-endian, packed)
followed by its real arrays (each as long as a count field of the fixed part, in the device's
precision), or by raw bytes (``tail``) for PING and PONG.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Literal

SYNC = (0xA5, 0x5A)  # the two bytes that start every frame
PROTOCOL_VERSION = 1
HEADER_LEN = 6  # sync0, sync1, type, seq, length (u16)
CRC_LEN = 2
MAX_PAYLOAD = 512
MAX_FRAME = HEADER_LEN + MAX_PAYLOAD + CRC_LEN
# STEP_THETA_DELTA: θ_i's bit pattern (as an unsigned integer of 8 × precision bits) is the θ in use's plus
# d_i modulo 2^bits, d_i a signed integer sent zigzag-mapped ((d << 1) ^ (d >> (bits - 1))) as an unsigned
# LEB128 varint: 7 bits a byte, least significant first, bit 7 set on every byte but the last; canonical
# (no final 0x00 byte after another byte, no value bits at or above 2^bits), so at most 5 bytes in float32,
# 10 in float64.
HASH_LEN = 16  # hashes are the first 16 bytes (128 bits) of a SHA-256 digest
BOARD_LEN = 16  # board name: ASCII, NUL-padded
CRC_NAME = "CRC-16/CCITT-FALSE"
CRC_POLY, CRC_INIT = 0x1021, 0xFFFF  # not reflected, no final XOR; check("123456789") = 0x29B1

IntKind = Literal["u8", "u16", "u32", "i16", "i32"]
Kind = Literal["u8", "u16", "u32", "i16", "i32", "bytes"]
# kind -> (size in bytes, struct code, C type)
INT_KINDS: dict[str, tuple[int, str, str]] = {
    "u8": (1, "B", "uint8_t"), "u16": (2, "H", "uint16_t"), "u32": (4, "I", "uint32_t"),
    "i16": (2, "h", "int16_t"), "i32": (4, "i", "int32_t"),
}
Direction = Literal["host->device", "device->host"]


class MsgType(IntEnum):
    """Message type ids (frame byte 2). A reply to a request R has the id R | 0x80 where one exists."""

    HELLO = 0x01
    STEP = 0x02
    SET_THETA = 0x03
    RESET = 0x04
    PING = 0x05
    EXIT = 0x06
    STEP_THETA = 0x07
    STEP_THETA_DELTA = 0x08
    INFO = 0x81
    ACTION = 0x82
    PONG = 0x85
    ACK = 0xA0
    ERROR = 0xEE


class ErrorCode(IntEnum):
    """``ERROR.code``; also the codes of parser and decoder rejections."""

    BAD_CRC = 1
    BAD_LENGTH = 2
    UNKNOWN_TYPE = 3
    UNEXPECTED_TYPE = 4
    BAD_DIMENSION = 5
    BAD_VERSION = 6
    BAD_HASH = 7
    OUT_OF_BOUNDS = 8
    UNSUPPORTED = 9


ERROR_DOCS: dict[ErrorCode, str] = {
    ErrorCode.BAD_CRC: "the frame's CRC does not match (detail: 0)",
    ErrorCode.BAD_LENGTH: "length field above MAX_PAYLOAD, outside the type's range, or not what the "
                          "counts imply (detail: the length received)",
    ErrorCode.UNKNOWN_TYPE: "no message has this type id (request: the id; detail: 0)",
    ErrorCode.UNEXPECTED_TYPE: "a known type sent in the wrong direction (detail: 0)",
    ErrorCode.BAD_DIMENSION: "an array count differs from the device's dimension "
                             "(detail: the expected count)",
    ErrorCode.BAD_VERSION: "HELLO's protocol version differs (detail: the device's version)",
    ErrorCode.BAD_HASH: "SET_THETA's problem hash is not the device's, or STEP_THETA_DELTA's base_tag does not "
                        "name the θ in use (detail: 0)",
    ErrorCode.OUT_OF_BOUNDS: "a θ value is outside its bounds or not finite (detail: its index)",
    ErrorCode.UNSUPPORTED: "the firmware does not implement this request (detail: 0)",
}


class StatusFlag(IntFlag):
    """Bits of ``ACTION.flags``."""

    SOLVER_OK = 1 << 0
    FALLBACK = 1 << 1
    OVERRUN = 1 << 2
    SOFT_VIOLATION = 1 << 3
    INEXACT = 1 << 4
    MAX_ITER = 1 << 5
    INVALID_INPUT = 1 << 6


STATUS_DOCS: dict[StatusFlag, str] = {
    StatusFlag.SOLVER_OK: "the solver succeeded: u is the MPC input",
    StatusFlag.FALLBACK: "u is the fallback, not a solution: see *Fallback* below",
    StatusFlag.OVERRUN: "the step took longer than the firmware's budget: u is the fallback",
    StatusFlag.SOFT_VIOLATION: "solved, but a soft constraint is violated in the plan",
    StatusFlag.INEXACT: "solved to reduced accuracy",
    StatusFlag.MAX_ITER: "the iteration limit was reached",
    StatusFlag.INVALID_INPUT: "x or p is not finite: the solver was not called",
}


class Capability(IntFlag):
    """Bits of ``INFO.capabilities``."""

    SET_THETA = 1 << 0
    EXIT = 1 << 1
    STEP_PARAMS = 1 << 2
    STEP_THETA = 1 << 3
    THETA_DELTA = 1 << 4


CAPABILITY_DOCS: dict[Capability, str] = {
    Capability.SET_THETA: "SET_THETA is implemented (otherwise: ERROR UNSUPPORTED)",
    Capability.EXIT: "EXIT ends the firmware (emulators)",
    Capability.STEP_PARAMS: "STEP may carry p (np > 0)",
    Capability.STEP_THETA: "STEP_THETA is implemented (a new θ and a step in one frame)",
    Capability.THETA_DELTA: "STEP_THETA_DELTA is implemented (STEP_THETA with θ as differences to the θ in use)",
}


class Precision(IntEnum):
    """``INFO.precision``: bytes per real number of the device (IEEE-754, little-endian)."""

    F32 = 4
    F64 = 8


class CostUnit(IntEnum):
    """``INFO.cost_unit``: the unit of ``ACTION.cost``."""

    NONE = 0
    CYCLES = 1
    INSTRUCTIONS = 2
    MICROSECONDS = 3


@dataclass(frozen=True)
class Field:
    """One field of a payload's fixed part."""

    name: str
    kind: Kind
    doc: str
    length: int = 0  # bytes fields only

    @property
    def size(self) -> int:
        return self.length if self.kind == "bytes" else INT_KINDS[self.kind][0]


@dataclass(frozen=True)
class RealArray:
    """Real numbers after the fixed part; ``count`` names the field holding their number."""

    name: str
    count: str
    doc: str


@dataclass(frozen=True)
class MessageSpec:
    """Layout and meaning of one message type."""

    type: MsgType
    direction: Direction
    doc: str
    reply: str = ""
    fields: tuple[Field, ...] = ()
    arrays: tuple[RealArray, ...] = ()
    tail: str = ""  # name of trailing raw bytes (PING, PONG), "" if none

    @property
    def name(self) -> str:
        return self.type.name

    @property
    def fixed_len(self) -> int:
        return sum(f.size for f in self.fields)

    @property
    def min_len(self) -> int:
        return self.fixed_len

    @property
    def max_len(self) -> int:
        return MAX_PAYLOAD if self.arrays or self.tail else self.fixed_len

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


def _u8(name: str, doc: str) -> Field:
    return Field(name, "u8", doc)


def _hash(name: str, doc: str) -> Field:
    return Field(name, "bytes", doc, HASH_LEN)


MESSAGES: tuple[MessageSpec, ...] = (
    MessageSpec(MsgType.HELLO, "host->device", "handshake; the device answers with its description",
                "INFO or ERROR(BAD_VERSION)",
                fields=(Field("protocol_version", "u16", "the host's PROTOCOL_VERSION"),)),
    MessageSpec(MsgType.STEP, "host->device", "one control step from state x (and optionally parameters p)",
                "ACTION or ERROR",
                fields=(Field("step", "u32", "host's step index, echoed in ACTION"),
                        _u8("n_x", "number of x values: must be nx"),
                        _u8("n_p", "number of p values: 0 (keep the device's p) or np")),
                arrays=(RealArray("x", "n_x", "state"), RealArray("p", "n_p", "parameters"))),
    MessageSpec(MsgType.SET_THETA, "host->device",
                "replace θ at run time (checked, applied whole or not at all)",
                "ACK or ERROR",
                fields=(_hash("problem_hash", "must equal the device's problem hash"),
                        _hash("theta_hash", "hash of the new θ, reported by INFO afterwards"),
                        Field("n_theta", "u16", "number of θ values: must be ntheta")),
                arrays=(RealArray("theta", "n_theta", "θ, flat, in the order of the θ file"),)),
    MessageSpec(MsgType.RESET, "host->device", "forget the solver's warm start and internal state", "ACK"),
    MessageSpec(MsgType.PING, "host->device", "link check; data is echoed", "PONG", tail="data"),
    MessageSpec(MsgType.EXIT, "host->device", "emulators: acknowledge, then end the firmware with code",
                "ACK or ERROR(UNSUPPORTED)", fields=(_u8("code", "exit status of the firmware"),)),
    MessageSpec(MsgType.STEP_THETA, "host->device",
                "a new θ, then one control step with it: SET_THETA's checks without the hashes, then STEP",
                "ACTION or ERROR",
                fields=(Field("step", "u32", "host's step index, echoed in ACTION"),
                        Field("theta_tag", "u32", "names θ: INFO.theta_hash becomes the tag (LE) + 12 zero bytes"),
                        _u8("n_x", "number of x values: must be nx"),
                        _u8("n_p", "number of p values: 0 (keep the device's p) or np"),
                        Field("n_theta", "u16", "number of θ values: must be ntheta")),
                arrays=(RealArray("x", "n_x", "state"), RealArray("p", "n_p", "parameters"),
                        RealArray("theta", "n_theta", "θ, flat, in the order of the θ file"))),
    MessageSpec(MsgType.STEP_THETA_DELTA, "host->device",
                "STEP_THETA with θ sent as the differences of its IEEE-754 bit patterns to the θ in use",
                "ACTION or ERROR",
                fields=(Field("step", "u32", "host's step index, echoed in ACTION"),
                        Field("base_tag", "u32", "must name the θ in use: the first 4 bytes (LE) of INFO.theta_hash"),
                        Field("theta_tag", "u32", "names the new θ: INFO.theta_hash becomes the tag (LE) + 12 zeros"),
                        _u8("n_x", "number of x values: must be nx"),
                        _u8("n_p", "number of p values: 0 (keep the device's p) or np"),
                        Field("n_theta", "u16", "number of θ differences: must be ntheta")),
                arrays=(RealArray("x", "n_x", "state"), RealArray("p", "n_p", "parameters")),
                tail="delta"),
    MessageSpec(MsgType.INFO, "device->host", "what the device runs",
                fields=(Field("protocol_version", "u16", "the device's PROTOCOL_VERSION"),
                        _u8("fw_major", "firmware version"), _u8("fw_minor", "firmware version"),
                        _u8("fw_patch", "firmware version"),
                        _u8("precision", "bytes per real: 4 (float32) or 8 (float64)"),
                        _u8("capabilities", "Capability bits"),
                        _u8("cost_unit", "CostUnit of ACTION.cost"),
                        _u8("nx", "state dimension"), _u8("nu", "input dimension"),
                        _u8("np", "parameter dimension"),
                        Field("ntheta", "u16", "number of θ values (0: no runtime θ)"),
                        Field("board", "bytes", "board name, ASCII, NUL-padded", BOARD_LEN),
                        _hash("manifest_hash", "SHA-256 prefix of the bundle's manifest.json"),
                        _hash("problem_hash", "SHA-256 prefix of the problem hash"),
                        _hash("theta_hash", "SHA-256 prefix of the θ hash in use"))),
    MessageSpec(MsgType.ACTION, "device->host", "the answer to STEP",
                fields=(Field("step", "u32", "STEP.step echoed"),
                        Field("flags", "u16", "StatusFlag bits"),
                        Field("solver_status", "i16", "the solver's own exit code"),
                        Field("sqp_iterations", "u16", "SQP iterations of this step"),
                        Field("qp_iterations", "u16", "QP iterations of this step (all SQP iterations)"),
                        Field("cost", "u32", "cost of the step in INFO.cost_unit (saturates)"),
                        _u8("n_u", "number of u values: nu")),
                arrays=(RealArray("u", "n_u", "input to apply"),)),
    MessageSpec(MsgType.PONG, "device->host", "the answer to PING", tail="data"),
    MessageSpec(MsgType.ACK, "device->host", "a request succeeded",
                fields=(_u8("request", "type id of the acknowledged request"),)),
    MessageSpec(MsgType.ERROR, "device->host", "a request or frame was rejected",
                fields=(_u8("code", "ErrorCode"), _u8("request", "type id of the rejected frame"),
                        Field("detail", "u16", "depends on the code (see ErrorCode)"))),
)

SPECS: dict[MsgType, MessageSpec] = {m.type: m for m in MESSAGES}


def spec_for(type_id: int) -> MessageSpec | None:
    """The spec of a type id, or None for an unknown id."""
    try:
        return SPECS[MsgType(type_id)]
    except ValueError:
        return None
