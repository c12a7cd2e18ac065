"""The serial protocol: spec, generated header, Python codec and parser, C against Python, fuzzing."""

from __future__ import annotations

import dataclasses
import doctest
import itertools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from enum import IntEnum, IntFlag
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlmpc.codegen import protocol_header as cg
from rlmpc.codegen import protocol_spec as ps
from rlmpc.codegen.protocol import (
    MESSAGE_CLASSES,
    REAL_DTYPES,
    Ack,
    Action,
    DecodeError,
    DeviceLimits,
    Error,
    Exit,
    Frame,
    FrameError,
    FrameParser,
    Hello,
    Info,
    Message,
    ParseResult,
    Ping,
    Pong,
    Reset,
    SetTheta,
    Step,
    StepTheta,
    StepThetaDelta,
    apply_theta_delta,
    board_bytes,
    check_request,
    crc16,
    decode,
    decode_payload,
    encode,
    encode_frame,
    encode_payload,
    error_reply,
    hash_prefix,
    tagged_theta_hash,
    theta_delta,
    theta_tag,
)
from rlmpc.codegen.protocol_spec import MAX_FRAME, MAX_PAYLOAD, SPECS, SYNC, ErrorCode, MsgType, Precision

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "firmware_templates" / "protocol"
CHECK_C = Path(__file__).parent / "c" / "protocol_check.c"
WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-Wsign-conversion",
            "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wcast-qual"]
FLUSH = bytes(MAX_FRAME)  # enough non-sync bytes to end any partial frame
PRECISIONS = list(Precision)
INT_RANGES = {"u8": (0, 0xFF), "u16": (0, 0xFFFF), "u32": (0, 0xFFFF_FFFF),
              "i16": (-0x8000, 0x7FFF), "i32": (-0x8000_0000, 0x7FFF_FFFF)}

# --- strategies, derived from the spec so that every message and field is covered ----------


def reals(precision: Precision, nan: bool) -> st.SearchStrategy[float]:
    return st.floats(width=32 if precision == Precision.F32 else 64, allow_nan=nan, allow_infinity=nan)


def delta_messages(precision: Precision, nan: bool = False,
                   base: tuple[float, ...] | None = None) -> st.SearchStrategy[StepThetaDelta]:
    """STEP_THETA_DELTA with a well-formed ``delta``: θ against ``base`` (drawn if None), both drawn anywhere
    (every difference size, sign changes, NaN and inf when ``nan``)."""
    n = st.integers(0, 40) if base is None else st.just(len(base))

    def build(step: int, tags: tuple[int, int], x: tuple[float, ...], p: tuple[float, ...],
              pair: tuple[list[float], list[float]]) -> StepThetaDelta:
        return StepThetaDelta(step, tags[0], tags[1], len(pair[1]), x, p, theta_delta(pair[0], pair[1], precision))

    def nudged(values: list[float], steps: list[int]) -> list[float]:
        """values moved by a few units in the last place (bit patterns + steps, wrapping)."""
        u = f"<u{int(precision)}"
        bits = np.asarray(values, dtype=REAL_DTYPES[precision]).view(u).astype(object)
        moved = [(int(b) + d) % (1 << (8 * int(precision))) for b, d in zip(bits, steps, strict=True)]
        with np.errstate(invalid="ignore"):  # (a signalling NaN made quiet)
            return list(np.array(moved, dtype=u).view(REAL_DTYPES[precision]).astype(float))

    def pairs(k: int) -> st.SearchStrategy[tuple[list[float], list[float]]]:
        values = st.lists(reals(precision, nan), min_size=k, max_size=k)
        steps = st.lists(st.integers(-300, 300), min_size=k, max_size=k)
        b = st.just(list(base)) if base is not None else values
        return st.one_of(st.tuples(b, values),  # anywhere: up to 5 / 10 bytes a value
                         st.tuples(b, steps).map(lambda t: (t[0], nudged(t[0], t[1]))))  # 1-2 bytes a value

    coords = st.lists(reals(precision, nan), max_size=4).map(tuple)
    return st.builds(build, st.integers(0, 2**32 - 1), st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
                     coords, coords, n.flatmap(pairs))


def messages(cls: type[Message], precision: Precision, nan: bool = False) -> st.SearchStrategy[Message]:
    if cls is StepThetaDelta:
        return delta_messages(precision, nan)
    spec = SPECS[cls.TYPE]
    counts = {a.count for a in spec.arrays}
    kwargs: dict[str, st.SearchStrategy[object]] = {}
    for f in spec.fields:
        if f.name in counts:
            continue
        if f.kind == "bytes":
            kwargs[f.name] = st.binary(min_size=f.length, max_size=f.length)
        else:
            kwargs[f.name] = st.integers(*INT_RANGES[f.kind])
    room = MAX_PAYLOAD - spec.fixed_len
    for a in spec.arrays:
        most = room // (int(precision) * len(spec.arrays))
        kwargs[a.name] = st.lists(reals(precision, nan), max_size=most).map(tuple)
    if spec.tail:
        kwargs[spec.tail] = st.binary(max_size=room)
    return st.builds(cls, **kwargs)


def any_message(precision: Precision, nan: bool = False) -> st.SearchStrategy[Message]:
    return st.one_of([messages(cls, precision, nan) for cls in MESSAGE_CLASSES.values()])


no_sync = st.binary(max_size=40).map(lambda b: b.replace(bytes(SYNC[:1]), b"\x00"))
frames = st.tuples(any_message(Precision.F32), st.integers(0, 255)).map(lambda t: encode(t[0], t[1]))


def feed_all(parser: FrameParser, data: bytes, cuts: list[int]) -> list[ParseResult]:
    out: list[ParseResult] = []
    edges = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for a, b in itertools.pairwise(edges):
        out += parser.feed(data[a:b])
    return out


# --- spec, docs and generated header -------------------------------------------------------


def test_spec_is_consistent() -> None:
    assert len({m.type for m in ps.MESSAGES}) == len(ps.MESSAGES) == len(MsgType)
    assert set(MESSAGE_CLASSES) == set(MsgType)
    assert ps.MAX_FRAME == ps.HEADER_LEN + ps.MAX_PAYLOAD + ps.CRC_LEN and ps.MAX_PAYLOAD < 0x10000
    assert set(ps.ERROR_DOCS) == set(ErrorCode) and set(ps.STATUS_DOCS) == set(ps.StatusFlag)
    assert SYNC[0] not in {int(t) for t in MsgType}
    for spec in ps.MESSAGES:
        names = [f.name for f in spec.fields]
        assert len(set(names)) == len(names) and spec.max_len <= MAX_PAYLOAD
        for a in spec.arrays:
            assert spec.field(a.count).kind in ("u8", "u16")
        if spec.direction == "host->device" and spec.type | 0x80 in {int(t) for t in MsgType}:
            assert spec.reply.startswith(MsgType(spec.type | 0x80).name)


def test_dataclasses_follow_the_spec() -> None:
    for type_id, cls in MESSAGE_CLASSES.items():
        spec = SPECS[type_id]
        counts = {a.count for a in spec.arrays}
        expected = [f.name for f in spec.fields if f.name not in counts] + [a.name for a in spec.arrays]
        expected += [spec.tail] if spec.tail else []
        assert [f.name for f in fields(cls)] == expected, cls


def test_module_example() -> None:
    import rlmpc.codegen.protocol

    assert doctest.testmod(rlmpc.codegen.protocol).failed == 0


def test_crc_and_an_example_frame() -> None:
    assert crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE check value
    frame = encode(Ping(b"hi"), seq=3)
    assert frame.hex(" ") == "a5 5a 05 03 02 00 68 69 a7 31"  # the example of docs/protocol.md
    assert len(encode(Hello())) == ps.HEADER_LEN + 2 + ps.CRC_LEN
    assert hash_prefix("ab" * 32) == b"\xab" * ps.HASH_LEN
    assert theta_tag("0102030405" + "ab" * 27) == 0x04030201
    assert tagged_theta_hash(0x04030201) == bytes([1, 2, 3, 4]) + bytes(ps.HASH_LEN - 4)
    # STEP_THETA carries θ and the step in one frame without SET_THETA's two hashes: 36 bytes fewer
    # than SET_THETA + STEP for the LTI problem (nx = 2, 16 θ values, float32)
    pair = len(encode(SetTheta(bytes(16), bytes(16), [0.0] * 16))) + len(encode(Step(0, [0.0, 0.0])))
    assert (pair, len(encode(StepTheta(0, 0, [0.0, 0.0], (), [0.0] * 16)))) == (128, 92)
    assert board_bytes("mps2-an386").rstrip(b"\0") == b"mps2-an386"


def _section(doc: str, heading: str) -> dict[str, int]:
    """``| `NAME` | value |`` rows of the first table after ``heading`` in the doc."""
    table = re.search(r"(?:^\|.*\n)+", doc.split(heading, 1)[1], flags=re.MULTILINE)
    assert table is not None, heading
    rows = re.findall(r"^\| `(\w+)` \| (0x[0-9A-F]+|\d+) \|", table.group(0), flags=re.MULTILINE)
    return {name: int(value, 0) for name, value in rows}


def test_docs_tables_match_the_spec() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert "a5 5a 05 03 02 00 68 69 a7 31" in doc
    sections: list[tuple[str, type[IntEnum] | type[IntFlag]]] = [
        ("## Messages", MsgType), ("## Error codes", ErrorCode), ("Status flags", ps.StatusFlag),
        ("| capability |", ps.Capability), ("| cost unit |", ps.CostUnit)]
    for heading, enum in sections:
        assert _section(doc, heading) == {str(m.name): m.value for m in enum}, heading
    for spec in ps.MESSAGES:  # every field of every layout is named in the docs
        for f in spec.fields:
            assert f"`{f.name}`" in doc, (spec.name, f.name)
    assert f"at most **{MAX_PAYLOAD}**" in doc and f"Protocol version: **{ps.PROTOCOL_VERSION}**" in doc
    assert f"INFO ({SPECS[MsgType.INFO].fixed_len} bytes)" in doc
    assert f"ACTION ({SPECS[MsgType.ACTION].fixed_len} bytes" in doc


def test_generated_header_is_deterministic_and_checked(tmp_path: Path) -> None:
    path = cg.generate(tmp_path)
    assert path.read_text(encoding="utf-8") == cg.render() and cg.is_current(path)
    assert cg.main([str(tmp_path), "--check"]) == 0
    path.write_text(cg.render().replace("RLMPC_MSG_STEP 0x02u", "RLMPC_MSG_STEP 0x12u"), encoding="utf-8")
    assert not cg.is_current(path) and cg.main([str(tmp_path), "--check"]) == 1
    assert cg.main([str(tmp_path)]) == 0 and cg.is_current(path)
    text = path.read_text(encoding="utf-8")
    for spec in ps.MESSAGES:
        assert f"#define RLMPC_MSG_{spec.name} 0x{spec.type:02X}u" in text
        assert f"#define RLMPC_{spec.name}_FIXED_LEN {spec.fixed_len}u" in text
    assert text.isascii()


# --- Python codec --------------------------------------------------------------------------


@pytest.mark.parametrize("precision", PRECISIONS)
@given(data=st.data())
def test_every_message_round_trips(precision: Precision, data: st.DataObject) -> None:
    msg = data.draw(any_message(precision))
    seq = data.draw(st.integers(0, 255))
    frame = encode(msg, seq, precision)
    [result] = FrameParser().feed(frame)
    assert result == Frame(msg.TYPE, seq, encode_payload(msg, precision))
    assert decode(result, precision) == msg


@pytest.mark.parametrize("precision", PRECISIONS)
@given(data=st.data())
def test_bytes_round_trip_with_nan_and_inf(precision: Precision, data: st.DataObject) -> None:
    msg = data.draw(any_message(precision, nan=True))
    payload = encode_payload(msg, precision)
    again = decode_payload(msg.TYPE, payload, precision)
    assert not isinstance(again, DecodeError)
    assert encode_payload(again, precision) == payload


@given(before=no_sync, between=st.lists(st.tuples(frames, no_sync), max_size=6),
       cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_garbage_around_frames_is_skipped(before: bytes, between: list[tuple[bytes, bytes]],
                                          cuts: list[int]) -> None:
    stream = before + b"".join(f + g for f, g in between)
    parser = FrameParser()
    results = feed_all(parser, stream, cuts)
    assert [encode_frame(r.type, r.seq, r.payload) for r in results if isinstance(r, Frame)] == \
        [f for f, _ in between]
    assert len(results) == len(between)
    assert parser.stats.garbage == len(stream) - sum(len(f) for f, _ in between)


@given(garbage=st.binary(max_size=600), frame=frames, cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_resynchronises_after_any_garbage(garbage: bytes, frame: bytes, cuts: list[int]) -> None:
    parser = FrameParser()
    results = feed_all(parser, garbage + FLUSH + frame, cuts)
    assert results and isinstance(results[-1], Frame)
    assert encode_frame(results[-1].type, results[-1].seq, results[-1].payload) == frame
    assert parser.idle and parser.buffered <= MAX_PAYLOAD


@given(frame=frames, data=st.data())
def test_truncated_frame_yields_nothing_and_reset_recovers(frame: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(1, len(frame) - 1))
    parser = FrameParser()
    assert parser.feed(frame[:cut]) == []
    assert not parser.idle
    parser.reset()
    assert [type(r) for r in parser.feed(frame)] == [Frame]


@given(frame=frames, data=st.data())
def test_bit_flips_are_detected(frame: bytes, data: st.DataObject) -> None:
    bit = data.draw(st.integers(16, 8 * len(frame) - 1))  # anywhere after the sync pair
    corrupted = bytearray(frame)
    corrupted[bit // 8] ^= 1 << (bit % 8)
    results = FrameParser().feed(bytes(corrupted) + FLUSH)
    assert results and isinstance(results[0], FrameError)
    assert results[0].code in (ErrorCode.BAD_CRC, ErrorCode.BAD_LENGTH)


@given(stream=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 10_000), max_size=20))
def test_any_chunking_gives_the_same_results(stream: bytes, cuts: list[int]) -> None:
    whole = FrameParser()
    expected = whole.feed(stream)
    chunked = FrameParser()
    assert feed_all(chunked, stream, cuts) == expected
    assert chunked.stats == whole.stats and chunked.buffered <= MAX_PAYLOAD


@given(type_id=st.integers(0, 255), payload=st.binary(max_size=MAX_PAYLOAD),
       precision=st.sampled_from(PRECISIONS))
def test_decoding_random_payloads_never_raises(type_id: int, payload: bytes, precision: Precision) -> None:
    result = decode_payload(type_id, payload, precision)
    if isinstance(result, DecodeError):
        assert result.code in (ErrorCode.UNKNOWN_TYPE, ErrorCode.BAD_LENGTH)
    else:
        assert encode_payload(result, precision) == payload or np.isnan(
            np.frombuffer(payload[SPECS[result.TYPE].fixed_len:], dtype=REAL_DTYPES[precision])).any()


def test_parser_rules() -> None:
    hello = encode(Hello(), seq=1)
    parser = FrameParser()
    # sync0 repeated before the real pair; garbage counted
    assert parser.feed(b"\x01\xa5\xa5" + hello) == [Frame(MsgType.HELLO, 1, hello[6:-2])]
    assert parser.stats.garbage == 3
    # a length above MAX_PAYLOAD is rejected at the header, then the hunt resumes
    too_long = bytes([*SYNC, 0x02, 9]) + (MAX_PAYLOAD + 1).to_bytes(2, "little")
    assert parser.feed(too_long + hello) == [FrameError(ErrorCode.BAD_LENGTH, 2, 9, MAX_PAYLOAD + 1),
                                             Frame(MsgType.HELLO, 1, hello[6:-2])]
    # unknown types and lengths outside the type's range are rejected after the CRC
    assert parser.feed(encode_frame(0x7F, 2, b"abc")) == [FrameError(ErrorCode.UNKNOWN_TYPE, 0x7F, 2, 3)]
    assert parser.feed(encode_frame(MsgType.HELLO, 3, b"abc")) == [
        FrameError(ErrorCode.BAD_LENGTH, MsgType.HELLO, 3, 3)]
    assert parser.feed(encode_frame(MsgType.STEP, 4, b"abc")) == [
        FrameError(ErrorCode.BAD_LENGTH, MsgType.STEP, 4, 3)]
    assert parser.stats.frames == 2 and parser.stats.bad_length == 3 and parser.stats.unknown_type == 1
    # a STEP whose counts do not match its length
    assert decode_payload(MsgType.STEP, encode_payload(Step(1, [1.0, 2.0]))[:-4]) == DecodeError(
        ErrorCode.BAD_LENGTH, 6 + 4)
    assert error_reply(FrameError(ErrorCode.BAD_LENGTH, 2, 9, 600)) == Error(ErrorCode.BAD_LENGTH, 2, 600)
    assert error_reply(FrameError(ErrorCode.BAD_CRC, 2, 9, 6)) == Error(ErrorCode.BAD_CRC, 2, 0)


def test_encoding_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        encode(Ping(bytes(MAX_PAYLOAD + 1)))
    with pytest.raises(ValueError, match="16 bytes"):
        encode(SetTheta(b"short", bytes(16), [1.0]))
    with pytest.raises(ValueError, match="ACK"):
        encode(Ack(300))
    with pytest.raises(ValueError, match="exceeds"):
        encode(Step(1, np.zeros(127)), precision=Precision.F64)


LIMITS = DeviceLimits(nx=4, np=2, ntheta=3, problem_hash=bytes(range(16)), theta_lb=(-1.0, -1.0, -1.0),
                      theta_ub=(1.0, 2.0, 3.0), theta_tag=77, theta=(0.5, 1.5, -0.25))


def test_device_checks() -> None:
    assert check_request(Hello(), LIMITS) is None
    assert check_request(Hello(2), LIMITS) == DecodeError(ErrorCode.BAD_VERSION, ps.PROTOCOL_VERSION)
    assert check_request(Step(0, [0, 0, 0, 0]), LIMITS) is None
    assert check_request(Step(0, [0, 0, 0]), LIMITS) == DecodeError(ErrorCode.BAD_DIMENSION, 4)
    assert check_request(Step(0, [0, 0, 0, 0], [1]), LIMITS) == DecodeError(ErrorCode.BAD_DIMENSION, 2)
    good = SetTheta(LIMITS.problem_hash, bytes(16), [0.0, 2.0, 3.0])
    assert check_request(good, LIMITS) is None
    assert check_request(SetTheta(bytes(16), bytes(16), [0, 0, 0]), LIMITS) == DecodeError(ErrorCode.BAD_HASH)
    for theta, index in (([0, 2.5, 0], 1), ([0, 0, float("nan")], 2), ([-1.5, 0, 0], 0)):
        bad = SetTheta(LIMITS.problem_hash, bytes(16), theta)
        assert check_request(bad, LIMITS) == DecodeError(ErrorCode.OUT_OF_BOUNDS, index)
        # STEP_THETA: the same θ checks with the same codes (no hash: the problem was checked at HELLO)
        assert check_request(StepTheta(0, 7, [0, 0, 0, 0], (), theta), LIMITS) == \
            DecodeError(ErrorCode.OUT_OF_BOUNDS, index)
    assert check_request(StepTheta(0, 7, [0, 0, 0, 0], (), [0.0, 2.0, 3.0]), LIMITS) is None
    assert check_request(StepTheta(0, 7, [0, 0, 0, 0], [1, 2], [0.0, 2.0, 3.0]), LIMITS) is None
    assert check_request(StepTheta(0, 7, [0, 0, 0], (), [0, 0, 0]), LIMITS) == DecodeError(ErrorCode.BAD_DIMENSION, 4)
    assert check_request(StepTheta(0, 7, [0, 0, 0, 0], [1], [0, 0, 0]), LIMITS) == \
        DecodeError(ErrorCode.BAD_DIMENSION, 2)
    assert check_request(StepTheta(0, 7, [0, 0, 0, 0], (), [0, 0]), LIMITS) == DecodeError(ErrorCode.BAD_DIMENSION, 3)


@pytest.mark.parametrize("precision", PRECISIONS)
@given(data=st.data())
def test_theta_delta_rebuilds_theta_exactly(precision: Precision, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 20))
    base = data.draw(st.lists(reals(precision, False), min_size=n, max_size=n))
    theta = data.draw(st.one_of(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=n, max_size=n),
                                st.just([b * (1 + 1e-4) - 1e-9 for b in base])))
    delta = theta_delta(base, theta, precision)
    rebuilt = apply_theta_delta(base, delta, precision)
    assert rebuilt is not None and _bits(rebuilt, precision) == _bits(theta, precision)  # what STEP_THETA carries
    assert len(delta) <= n * (5 if precision == Precision.F32 else 10)


def test_theta_delta_sizes_and_malformed_varints() -> None:
    up = lambda k: [float(np.array([0x3F80_0000 + k], dtype="<u4").view("<f4")[0])]  # noqa: E731 (1.0 + k ulps)
    assert [len(theta_delta([1.0], up(k))) for k in (0, 63, -64, 64, 8191, 8192, 10**6, 2**31 - 1)] == \
        [1, 1, 1, 2, 2, 3, 3, 5]
    assert theta_delta([1.0], [-1.0]) == bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F])  # sign flip: d = −2^31, z = 2^32 − 1
    assert theta_delta([0.0], [0.0], Precision.F64) == b"\0"
    for bad in (b"\x80\x00", b"\x81", b"\xff\xff\xff\xff\x1f", b"\xff\xff\xff\xff\xff\x01", b"\x01\x01", b""):
        assert apply_theta_delta([1.0], bad) is None, bad
        payload = encode_payload(StepThetaDelta(0, 0, 0, 1, [0.0], (), bad))
        assert decode_payload(MsgType.STEP_THETA_DELTA, payload) == DecodeError(ErrorCode.BAD_LENGTH, len(payload))
    assert apply_theta_delta([1.0], b"\xff\xff\xff\xff\x0f") is not None  # the largest 5-byte value


def test_device_checks_of_theta_delta() -> None:
    x = [0.0, 0.0, 0.0, 0.0]
    good = StepThetaDelta(0, 77, 9, 3, x, (), theta_delta(LIMITS.theta, [0.25, 2.0, 3.0]))
    assert check_request(good, LIMITS) is None
    assert check_request(dataclasses.replace(good, base_tag=76), LIMITS) == DecodeError(ErrorCode.BAD_HASH)
    assert check_request(good, dataclasses.replace(LIMITS, theta=None)) == DecodeError(ErrorCode.BAD_HASH)
    assert check_request(dataclasses.replace(good, x=[0.0]), LIMITS) == DecodeError(ErrorCode.BAD_DIMENSION, 4)
    short = StepThetaDelta(0, 77, 9, 2, x, (), theta_delta(LIMITS.theta[:2], [0.0, 0.0]))
    assert check_request(short, LIMITS) == DecodeError(ErrorCode.BAD_DIMENSION, 3)
    for theta, index in (([0, 2.5, 0], 1), ([0, 0, float("inf")], 2), ([-1.5, 0, 0], 0)):
        bad = StepThetaDelta(0, 77, 9, 3, x, (), theta_delta(LIMITS.theta, theta))
        assert check_request(bad, LIMITS) == DecodeError(ErrorCode.OUT_OF_BOUNDS, index)
    # the LTI problem's frame: 64 bytes less whatever θ's differences take
    lti = np.linspace(0.1, 1.0, 16)
    frame = encode(StepThetaDelta(0, 0, 0, 16, [0.0, 0.0], (), theta_delta(lti, lti * (1 + 1e-5))))
    assert len(encode(StepTheta(0, 0, [0.0, 0.0], (), lti))) == 92 and len(frame) == 32 + 2 * 16


# --- C against Python ----------------------------------------------------------------------


def _compile(out: Path, sources: list[Path], precision: Precision, include: Path) -> Path:
    cmd = ["gcc", "-O2", *WARNINGS, f"-DRLMPC_PROTO_PRECISION={int(precision)}", f"-I{include}",
           f"-I{PROTO_DIR}", *map(str, sources), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def checkers(tmp_path_factory: pytest.TempPathFactory) -> dict[Precision, Path]:
    assert shutil.which("gcc") is not None, "gcc missing: run make setup"
    build = tmp_path_factory.mktemp("protocol")
    cg.generate(build)
    sources = [CHECK_C, *cg.c_sources()]
    return {p: _compile(build / f"check_f{8 * int(p)}", sources, p, build) for p in Precision}


def _run(exe: Path, commands: list[str]) -> list[str]:
    proc = subprocess.run([str(exe)], input="\n".join(commands) + "\n", capture_output=True, text=True,
                          check=True, timeout=30)
    return proc.stdout.splitlines()


def _bits(values: object, precision: Precision) -> list[str]:
    with np.errstate(over="ignore"):  # (beyond float32: inf, as sent)
        arr = np.asarray(values, dtype=REAL_DTYPES[precision])
    return [f"{int(v):0{2 * int(precision)}x}" for v in arr.view(f"<u{int(precision)}")]


def tokens(msg: Message, precision: Precision) -> list[str]:
    """A message as protocol_check.c reads and prints it."""
    spec = SPECS[msg.TYPE]
    arrays = {a.count: getattr(msg, a.name) for a in spec.arrays}
    out = []
    for f in spec.fields:
        if f.name in arrays:
            out.append(str(len(arrays[f.name])))
        else:
            value = getattr(msg, f.name)
            out.append((value.hex() or "-") if f.kind == "bytes" else str(int(value)))
    for values in arrays.values():
        out += _bits(values, precision)
    if spec.tail:
        out.append(getattr(msg, spec.tail).hex() or "-")
    return out


def expected_lines(results: list[ParseResult], limits: DeviceLimits, precision: Precision) -> list[str]:
    """What protocol_check.c must print for these parser results."""
    lines = []
    for r in results:
        if isinstance(r, FrameError):
            lines += [f"R {int(r.code)} {r.type} {r.seq} {r.length}",
                      f"A {encode(error_reply(r), r.seq, precision).hex()}"]
            continue
        lines.append(f"F {int(r.type)} {r.seq} {r.payload.hex() or '-'}")
        if SPECS[r.type].direction == "host->device":
            msg = decode(r, precision)
            device = dataclasses.replace(limits, precision=precision)  # (a float64 device rebuilds θ in float64)
            err = msg if isinstance(msg, DecodeError) else check_request(msg, device)
            if err is not None:
                lines.append(f"X {int(err.code)} {err.detail}")
            elif isinstance(msg, StepThetaDelta):  # the device prints the θ it rebuilt
                assert limits.theta is not None
                rebuilt = apply_theta_delta(limits.theta, msg.delta, precision)
                lines.append(" ".join(["M", *tokens(msg, precision)[:-1], *_bits(rebuilt, precision)]))
            else:
                assert not isinstance(msg, DecodeError)
                lines.append(" ".join(["M", *tokens(msg, precision)]))
    return lines


def device_command(limits: DeviceLimits, precision: Precision) -> str:
    def bounds(values: tuple[float, ...] | None) -> list[str]:
        return _bits(values, precision) if values is not None else ["-"]

    return " ".join(["D", str(limits.nx), str(limits.np), str(limits.ntheta), limits.problem_hash.hex(),
                     *bounds(limits.theta_lb), *bounds(limits.theta_ub), str(limits.theta_tag or 0),
                     *bounds(limits.theta)])


def _fixed_messages(precision: Precision) -> list[Message]:
    h = bytes(range(16))
    return [Hello(), Hello(7), Step(1, [0.5, -1.0, 2.0, 1e-3]), Step(2**32 - 1, [1, 2, 3, 4], [5, 6]),
            Step(3, [1.0]), SetTheta(h, bytes(16), [0.5, 1.5, 2.5]), SetTheta(h, h, [0.5, 9.0, 2.5]),
            SetTheta(bytes(16), h, [0, 0, 0]), StepTheta(5, 0xDEADBEEF, [0.5, -1.0, 2.0, 1e-3], (), [0.5, 1.5, 2.5]),
            StepTheta(2**32 - 1, 0, [1, 2, 3, 4], [5, 6], [0.5, 9.0, 2.5]), StepTheta(6, 1, [1.0], (), [0, 0]),
            StepThetaDelta(7, 77, 78, 3, [0.5, -1.0, 2.0, 1e-3], (), theta_delta(LIMITS.theta, [0.5001, 1.4, -0.3],
                                                                                   precision)),
            StepThetaDelta(8, 76, 79, 3, [0.5, -1.0, 2.0, 1e-3], (), theta_delta(LIMITS.theta, [0.5, 1.5, 0.25],
                                                                                   precision)),
            Reset(), Ping(), Ping(bytes(range(256))), Exit(3),
            Info(1, 0, 2, 1, int(precision), 7, 2, 4, 1, 2, 3, board_bytes("mps2-an386"), h, h[::-1], h),
            Action(9, 0x41, -100, 3, 27, 123_456, [0.25, -4.0]), Pong(b"xy"), Ack(MsgType.RESET),
            Error(ErrorCode.OUT_OF_BOUNDS, MsgType.SET_THETA, 2)]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_c_encodes_like_python(checkers: dict[Precision, Path], precision: Precision) -> None:
    msgs = _fixed_messages(precision)
    lines = _run(checkers[precision], [" ".join(["E", m.TYPE.name, str(i), *tokens(m, precision)])
                                       for i, m in enumerate(msgs)])
    assert lines == [f"H {encode(m, i, precision).hex()}" for i, m in enumerate(msgs)]


@pytest.mark.parametrize("precision", PRECISIONS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_c_encodes_random_messages_like_python(checkers: dict[Precision, Path], precision: Precision,
                                               data: st.DataObject) -> None:
    msgs = data.draw(st.lists(any_message(precision, nan=True), min_size=1, max_size=12))
    lines = _run(checkers[precision], [" ".join(["E", m.TYPE.name, str(i), *tokens(m, precision)])
                                       for i, m in enumerate(msgs)])
    assert lines == [f"H {encode(m, i, precision).hex()}" for i, m in enumerate(msgs)]


def _stream_item(precision: Precision) -> st.SearchStrategy[bytes]:
    """Frames (good, corrupted, truncated, unknown type, bad length) and garbage."""
    seqs = st.integers(0, 255)
    device_shaped = st.one_of(
        st.builds(Step, st.integers(0, 2**32 - 1), st.lists(reals(precision, True), min_size=4, max_size=4),
                  st.sampled_from([(), (1.0, 2.0), (1.0,)])),
        st.builds(SetTheta, st.sampled_from([LIMITS.problem_hash, bytes(16)]),
                  st.binary(min_size=16, max_size=16),
                  st.lists(st.floats(-2, 4, width=32), min_size=2, max_size=4)),
        st.builds(StepTheta, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                  st.lists(reals(precision, True), min_size=3, max_size=4), st.sampled_from([(), (1.0, 2.0), (1.0,)]),
                  st.lists(st.floats(-2, 4, width=32), min_size=2, max_size=4)),
        delta_messages(precision, True, LIMITS.theta),
        delta_messages(precision, True, LIMITS.theta).map(
            lambda m: dataclasses.replace(m, base_tag=77, x=(0.5, -1.0, 2.0, 1e-3), p=m.p[:2] if len(m.p) > 1 else ())),
        st.builds(StepThetaDelta, st.integers(0, 9), st.sampled_from([77, 78]), st.integers(0, 9),
                  st.integers(0, 5), st.just((0.0,) * 4), st.just(()), st.binary(max_size=20)))
    good = st.builds(lambda m, s: encode(m, s, precision), st.one_of(any_message(precision), device_shaped),
                     seqs)
    flipped = st.builds(lambda f, i: f[:i % len(f)] + bytes([f[i % len(f)] ^ 0x10]) + f[i % len(f) + 1:],
                        good, st.integers(2, 10_000))
    truncated = st.builds(lambda f, i: f[:i % len(f)], good, st.integers(0, 10_000))
    unknown = st.builds(encode_frame, st.integers(0, 255).filter(lambda t: ps.spec_for(t) is None), seqs,
                        st.binary(max_size=20))
    wrong_len = st.builds(encode_frame, st.sampled_from([MsgType.HELLO, MsgType.ACK, MsgType.INFO]), seqs,
                          st.binary(max_size=8))
    too_long = st.builds(lambda s, n: bytes([*SYNC, 2, s]) + n.to_bytes(2, "little"), seqs,
                         st.integers(MAX_PAYLOAD + 1, 0xFFFF))
    return st.one_of(good, good, flipped, truncated, unknown, wrong_len, too_long, st.binary(max_size=30))


def _parse_commands(stream: bytes, cuts: list[int]) -> list[str]:
    edges = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    return [f"P {stream[a:b].hex()}" for a, b in itertools.pairwise(edges) if b > a]


@pytest.mark.parametrize("precision", PRECISIONS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_c_parser_agrees_with_python(checkers: dict[Precision, Path], precision: Precision,
                                     data: st.DataObject) -> None:
    items = data.draw(st.lists(_stream_item(precision), min_size=1, max_size=12))
    stream = b"".join(items) + FLUSH
    cuts = data.draw(st.lists(st.integers(0, 100_000), max_size=6))
    parser = FrameParser()
    results = parser.feed(stream)
    s = parser.stats
    expected = [*expected_lines(results, LIMITS, precision),
                f"S {s.frames} {s.bad_crc} {s.bad_length} {s.unknown_type} {s.garbage}"]
    commands = [device_command(LIMITS, precision), *_parse_commands(stream, cuts), "S"]
    lines = _run(checkers[precision], commands)
    assert lines == expected


def test_c_parser_fixed_stream(checkers: dict[Precision, Path]) -> None:
    precision = Precision.F32
    good = [encode(m, i, precision) for i, m in enumerate(_fixed_messages(precision))]
    bad_crc = bytearray(good[2])
    bad_crc[-1] ^= 1
    stream = b"\x00\xa5\xa5" + b"junk".join(good) + bytes(bad_crc) + encode_frame(0x42, 1, b"") + FLUSH
    results = FrameParser().feed(stream)
    assert sum(isinstance(r, Frame) for r in results) == len(good)
    lines = _run(checkers[precision], [device_command(LIMITS, precision), f"P {stream.hex()}"])
    assert lines == expected_lines(results, LIMITS, precision)
    for rejection in ("X 5 4", "X 7 0", "X 8 1", "X 6 1"):  # the device's checks ran
        assert rejection in lines
    # STEP_THETA_DELTA against the θ in use (tag 77) rebuilt by the device; against tag 76 refused
    assert any(line.startswith("M 7 77 78 4 0 3") for line in lines) and lines.count("X 7 0") == 2


# --- bare metal and fuzzing ----------------------------------------------------------------


def test_library_builds_for_cortex_m4_without_libc(tmp_path: Path) -> None:
    assert shutil.which("arm-none-eabi-gcc") is not None, "arm-none-eabi-gcc missing: run make setup"
    cg.generate(tmp_path)
    obj = tmp_path / "rlmpc_protocol.o"
    cmd = ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-mthumb", "-Os",
           "-ffunction-sections", *WARNINGS, f"-I{tmp_path}", f"-I{PROTO_DIR}", "-c",
           str(cg.c_sources()[0]), "-o", str(obj)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    undefined = subprocess.run(["arm-none-eabi-nm", "-u", str(obj)], capture_output=True, text=True,
                               check=True).stdout.split()
    assert [s for s in undefined if s != "U"] == []  # no libc, no libgcc, no malloc, no printf


def _libfuzzer_available() -> bool:
    return shutil.which("clang") is not None and subprocess.run(
        ["clang", "-fsanitize=fuzzer", "-x", "c", "-", "-o", "/dev/null"],
        input="int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; "
              "return 0; }", capture_output=True, text=True, check=False).returncode == 0


def test_short_fuzz_run(tmp_path: Path) -> None:
    # installed by make setup (Debian clang and its libclang-rt-N-dev): missing is a failure, not a skip
    assert _libfuzzer_available(), "clang with libFuzzer missing: run make setup"
    proc = subprocess.run(["bash", str(PROTO_DIR / "fuzz" / "run_fuzz.sh"), "20000", str(tmp_path)],
                          capture_output=True, text=True, check=False, timeout=120,
                          env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 20000 runs" in proc.stderr
