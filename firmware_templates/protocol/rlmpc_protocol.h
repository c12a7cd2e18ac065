/* rlmpc serial protocol: CRC, frames, byte-at-a-time parser, message encoders and the
 * device's request decoders.  Specification: docs/protocol.md; ids and layouts come from the
 * generated header rlmpc_protocol_gen.h (python -m rlmpc.codegen.protocol_header OUT_DIR).
 *
 * Pure C99 without libc calls or malloc: for bare metal and for the host.  Reals are float
 * (RLMPC_PROTO_PRECISION 4, the default) or double (8): the device's precision, which it
 * reports in INFO.precision.  Do not compile with -ffast-math (the finiteness checks need NaN).
 *
 * Frame buffers passed to the encoders must hold RLMPC_PROTO_MAX_FRAME bytes; an encoder
 * returns the frame's length, or 0 (nothing sent) if the message does not fit.
 */
#ifndef RLMPC_PROTOCOL_H
#define RLMPC_PROTOCOL_H

#include <stdint.h>

#include "rlmpc_protocol_gen.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef RLMPC_PROTO_PRECISION
#define RLMPC_PROTO_PRECISION 4
#endif
#if RLMPC_PROTO_PRECISION == 4
typedef float rlmpc_proto_real;
#elif RLMPC_PROTO_PRECISION == 8
typedef double rlmpc_proto_real;
#else
#error "RLMPC_PROTO_PRECISION must be 4 (float) or 8 (double)"
#endif

/* ---- CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected, no final XOR) ---- */
uint16_t rlmpc_crc16_update(uint16_t crc, uint8_t byte);
uint16_t rlmpc_crc16(const uint8_t *data, uint16_t len);

/* ---- parser ---- */
#define RLMPC_EVENT_NONE 0u  /* nothing completed by this byte */
#define RLMPC_EVENT_FRAME 1u /* a good frame: type, seq, len, payload */
#define RLMPC_EVENT_ERROR 2u /* a rejected frame: error (BAD_CRC, BAD_LENGTH, UNKNOWN_TYPE), type, seq, len */

typedef struct {
    uint8_t kind;           /* RLMPC_EVENT_* */
    uint8_t error;          /* RLMPC_ERR_* for RLMPC_EVENT_ERROR, else 0 */
    uint8_t type;           /* header fields as received */
    uint8_t seq;
    uint16_t len;
    const uint8_t *payload; /* FRAME: len bytes inside the parser, valid until the next feed */
} rlmpc_event;

typedef struct {
    uint32_t frames, bad_crc, bad_length, unknown_type;
    uint32_t garbage; /* bytes skipped while hunting for the sync pair */
} rlmpc_parser_stats;

typedef struct {
    uint8_t state, type, seq;
    uint16_t len, pos, crc, crc_rx;
    rlmpc_parser_stats stats;
    uint8_t payload[RLMPC_PROTO_MAX_PAYLOAD];
} rlmpc_parser;

/* Start hunting, counters at zero. */
void rlmpc_parser_init(rlmpc_parser *p);
/* Drop a partial frame (e.g. after a receive timeout); the counters stay. */
void rlmpc_parser_reset(rlmpc_parser *p);
/* 1 when no partial frame is held. */
int rlmpc_parser_idle(const rlmpc_parser *p);
/* Consume one byte: O(1), never blocks.  Fills *ev and returns ev->kind.  After a rejected
 * frame the hunt for the sync pair resumes at the next byte. */
uint8_t rlmpc_parser_feed(rlmpc_parser *p, uint8_t byte, rlmpc_event *ev);

/* ---- frames ---- */
/* Where a payload goes inside a frame buffer. */
#define RLMPC_FRAME_PAYLOAD(frame) ((frame) + RLMPC_PROTO_HEADER_LEN)
/* Add sync, header and CRC around the len payload bytes already at RLMPC_FRAME_PAYLOAD(frame). */
uint16_t rlmpc_frame_finish(uint8_t *frame, uint8_t type, uint8_t seq, uint16_t len);
/* Copy payload into frame and finish it. */
uint16_t rlmpc_frame_encode(uint8_t *frame, uint8_t type, uint8_t seq, const uint8_t *payload, uint16_t len);

/* ---- reals: n values of RLMPC_PROTO_PRECISION bytes each, IEEE-754 little-endian ---- */
void rlmpc_put_reals(uint8_t *buf, const rlmpc_proto_real *v, uint16_t n);
void rlmpc_get_reals(const uint8_t *buf, rlmpc_proto_real *v, uint16_t n);

/* ---- device -> host ---- */
uint16_t rlmpc_encode_info(uint8_t *frame, uint8_t seq, const rlmpc_msg_info *m);
/* u holds m->n_u values */
uint16_t rlmpc_encode_action(uint8_t *frame, uint8_t seq, const rlmpc_msg_action *m, const rlmpc_proto_real *u);
uint16_t rlmpc_encode_pong(uint8_t *frame, uint8_t seq, const uint8_t *data, uint16_t len);
uint16_t rlmpc_encode_ack(uint8_t *frame, uint8_t seq, uint8_t request);
uint16_t rlmpc_encode_error(uint8_t *frame, uint8_t seq, uint8_t code, uint8_t request, uint16_t detail);
/* The ERROR answering a parser rejection (detail: the length for BAD_LENGTH, else 0). */
uint16_t rlmpc_encode_event_error(uint8_t *frame, const rlmpc_event *ev);

/* ---- host -> device (host programs, tests, fuzzing) ---- */
uint16_t rlmpc_encode_hello(uint8_t *frame, uint8_t seq, const rlmpc_msg_hello *m);
/* x holds m->n_x values, p m->n_p (may be 0 when n_p is 0) */
uint16_t rlmpc_encode_step(uint8_t *frame, uint8_t seq, const rlmpc_msg_step *m, const rlmpc_proto_real *x,
                           const rlmpc_proto_real *p);
uint16_t rlmpc_encode_set_theta(uint8_t *frame, uint8_t seq, const rlmpc_msg_set_theta *m,
                                const rlmpc_proto_real *theta);
/* x holds m->n_x values, p m->n_p (may be 0 when n_p is 0), theta m->n_theta */
uint16_t rlmpc_encode_step_theta(uint8_t *frame, uint8_t seq, const rlmpc_msg_step_theta *m,
                                 const rlmpc_proto_real *x, const rlmpc_proto_real *p,
                                 const rlmpc_proto_real *theta);
/* theta as differences to base (the theta in use on the device), both m->n_theta values: per value the
 * difference of the IEEE-754 bit patterns, zigzag-mapped, as a varint (docs/protocol.md); 0 if too long */
uint16_t rlmpc_encode_step_theta_delta(uint8_t *frame, uint8_t seq, const rlmpc_msg_step_theta_delta *m,
                                       const rlmpc_proto_real *x, const rlmpc_proto_real *p,
                                       const rlmpc_proto_real *base, const rlmpc_proto_real *theta);
uint16_t rlmpc_encode_reset(uint8_t *frame, uint8_t seq);
uint16_t rlmpc_encode_ping(uint8_t *frame, uint8_t seq, const uint8_t *data, uint16_t len);
uint16_t rlmpc_encode_exit(uint8_t *frame, uint8_t seq, const rlmpc_msg_exit *m);

/* ---- device: decode and check a request frame ----
 * Each returns 0, or the RLMPC_ERR_* code to answer with and sets *detail (may be 0) to
 * ERROR.detail.  Checks, in this order: type (UNEXPECTED_TYPE), length against the counts
 * (BAD_LENGTH), then the message's own checks. */
/* BAD_VERSION if protocol_version is not RLMPC_PROTO_VERSION */
uint8_t rlmpc_decode_hello(const rlmpc_event *ev, rlmpc_msg_hello *m, uint16_t *detail);
/* BAD_DIMENSION unless n_x == nx and n_p is 0 or np; x gets nx values, p np values when n_p > 0 */
uint8_t rlmpc_decode_step(const rlmpc_event *ev, uint8_t nx, uint8_t np, rlmpc_msg_step *m,
                          rlmpc_proto_real *x, rlmpc_proto_real *p, uint16_t *detail);
/* BAD_DIMENSION unless n_theta == ntheta, BAD_HASH unless problem_hash matches, OUT_OF_BOUNDS
 * (detail: index) for the first value outside [lb, ub] or not finite (lb, ub may be 0: no
 * bounds).  theta is written even on failure: decode into a staging buffer, apply on 0. */
uint8_t rlmpc_decode_set_theta(const rlmpc_event *ev, uint16_t ntheta,
                               const uint8_t problem_hash[RLMPC_PROTO_HASH_LEN], const rlmpc_proto_real *lb,
                               const rlmpc_proto_real *ub, rlmpc_msg_set_theta *m, rlmpc_proto_real *theta,
                               uint16_t *detail);
/* STEP's checks (BAD_DIMENSION nx, then np), then n_theta == ntheta (BAD_DIMENSION) and the theta
 * values as SET_THETA's (OUT_OF_BOUNDS, detail: index); no hash (the problem hash was checked at
 * HELLO).  x, p and theta are written even on failure: decode into staging buffers. */
uint8_t rlmpc_decode_step_theta(const rlmpc_event *ev, uint8_t nx, uint8_t np, uint16_t ntheta,
                                const rlmpc_proto_real *lb, const rlmpc_proto_real *ub, rlmpc_msg_step_theta *m,
                                rlmpc_proto_real *x, rlmpc_proto_real *p, rlmpc_proto_real *theta,
                                uint16_t *detail);
/* STEP_THETA's checks with theta as differences: BAD_LENGTH unless n_theta varints fill the rest of the
 * payload exactly and canonically, BAD_DIMENSION (nx, np, ntheta), BAD_HASH unless base_tag equals the
 * tag of the theta in use (base: its values, 0 if the device does not know them), then theta = base +
 * the differences (integer arithmetic on the bit patterns) and SET_THETA's value checks (OUT_OF_BOUNDS,
 * detail: index).  x, p and theta are written even on failure: decode into staging buffers. */
uint8_t rlmpc_decode_step_theta_delta(const rlmpc_event *ev, uint8_t nx, uint8_t np, uint16_t ntheta,
                                      uint32_t base_tag, const rlmpc_proto_real *base, const rlmpc_proto_real *lb,
                                      const rlmpc_proto_real *ub, rlmpc_msg_step_theta_delta *m,
                                      rlmpc_proto_real *x, rlmpc_proto_real *p, rlmpc_proto_real *theta,
                                      uint16_t *detail);
uint8_t rlmpc_decode_exit(const rlmpc_event *ev, rlmpc_msg_exit *m, uint16_t *detail);

#ifdef __cplusplus
}
#endif

#endif /* RLMPC_PROTOCOL_H */
