/* rlmpc serial protocol (see rlmpc_protocol.h and docs/protocol.md).  C99, no libc calls. */
#include "rlmpc_protocol.h"

#define REAL_SIZE ((uint16_t)RLMPC_PROTO_PRECISION)

enum { S_HUNT, S_SYNC1, S_TYPE, S_SEQ, S_LEN_LO, S_LEN_HI, S_PAYLOAD, S_CRC_LO, S_CRC_HI };

/* ---- CRC ---- */

/* CRC of each 4-bit value (poly 0x1021): two table steps per byte, 32 bytes of table */
static const uint16_t crc_nibble[16] = {
    0x0000u, 0x1021u, 0x2042u, 0x3063u, 0x4084u, 0x50A5u, 0x60C6u, 0x70E7u,
    0x8108u, 0x9129u, 0xA14Au, 0xB16Bu, 0xC18Cu, 0xD1ADu, 0xE1CEu, 0xF1EFu,
};

uint16_t rlmpc_crc16_update(uint16_t crc, uint8_t byte)
{
    crc = (uint16_t)((uint16_t)(crc << 4) ^ crc_nibble[((crc >> 12) ^ (byte >> 4)) & 0x0Fu]);
    crc = (uint16_t)((uint16_t)(crc << 4) ^ crc_nibble[((crc >> 12) ^ (byte & 0x0Fu)) & 0x0Fu]);
    return crc;
}

uint16_t rlmpc_crc16(const uint8_t *data, uint16_t len)
{
    uint16_t crc = RLMPC_PROTO_CRC_INIT, i;
    for (i = 0; i < len; ++i) crc = rlmpc_crc16_update(crc, data[i]);
    return crc;
}

/* ---- parser ---- */

void rlmpc_parser_init(rlmpc_parser *p)
{
    p->stats.frames = p->stats.bad_crc = p->stats.bad_length = p->stats.unknown_type = 0;
    p->stats.garbage = 0;
    rlmpc_parser_reset(p);
}

void rlmpc_parser_reset(rlmpc_parser *p)
{
    p->state = S_HUNT;
    p->type = p->seq = 0;
    p->len = p->pos = p->crc = p->crc_rx = 0;
}

int rlmpc_parser_idle(const rlmpc_parser *p) { return p->state == S_HUNT; }

static uint8_t reject(rlmpc_parser *p, rlmpc_event *ev, uint8_t code)
{
    if (code == RLMPC_ERR_BAD_CRC) ++p->stats.bad_crc;
    else if (code == RLMPC_ERR_UNKNOWN_TYPE) ++p->stats.unknown_type;
    else ++p->stats.bad_length;
    ev->kind = RLMPC_EVENT_ERROR;
    ev->error = code;
    return ev->kind;
}

/* CRC, type and the type's length range of a complete frame */
static uint8_t finish(rlmpc_parser *p, rlmpc_event *ev)
{
    if (p->crc_rx != p->crc) return reject(p, ev, RLMPC_ERR_BAD_CRC);
    if (!rlmpc_msg_known(p->type)) return reject(p, ev, RLMPC_ERR_UNKNOWN_TYPE);
    if (p->len < rlmpc_msg_min_len(p->type) || p->len > rlmpc_msg_max_len(p->type))
        return reject(p, ev, RLMPC_ERR_BAD_LENGTH);
    ++p->stats.frames;
    ev->kind = RLMPC_EVENT_FRAME;
    ev->payload = p->payload;
    return ev->kind;
}

uint8_t rlmpc_parser_feed(rlmpc_parser *p, uint8_t byte, rlmpc_event *ev)
{
    ev->kind = RLMPC_EVENT_NONE;
    ev->error = 0;
    ev->type = p->type;
    ev->seq = p->seq;
    ev->len = p->len;
    ev->payload = 0;
    switch (p->state) {
    case S_HUNT:
        if (byte == RLMPC_PROTO_SYNC0) p->state = S_SYNC1;
        else ++p->stats.garbage;
        break;
    case S_SYNC1:
        if (byte == RLMPC_PROTO_SYNC1) {
            p->state = S_TYPE;
            p->crc = RLMPC_PROTO_CRC_INIT;
        } else if (byte == RLMPC_PROTO_SYNC0) {
            ++p->stats.garbage; /* the earlier sync0; this one may start a frame */
        } else {
            p->stats.garbage += 2u;
            p->state = S_HUNT;
        }
        break;
    case S_TYPE:
        p->type = byte;
        p->crc = rlmpc_crc16_update(p->crc, byte);
        p->state = S_SEQ;
        break;
    case S_SEQ:
        p->seq = byte;
        p->crc = rlmpc_crc16_update(p->crc, byte);
        p->state = S_LEN_LO;
        break;
    case S_LEN_LO:
        p->len = byte;
        p->crc = rlmpc_crc16_update(p->crc, byte);
        p->state = S_LEN_HI;
        break;
    case S_LEN_HI:
        p->len = (uint16_t)(p->len | (uint16_t)(byte << 8));
        p->crc = rlmpc_crc16_update(p->crc, byte);
        p->pos = 0;
        ev->type = p->type;
        ev->seq = p->seq;
        ev->len = p->len;
        if (p->len > RLMPC_PROTO_MAX_PAYLOAD) {
            p->state = S_HUNT;
            return reject(p, ev, RLMPC_ERR_BAD_LENGTH);
        }
        p->state = p->len ? S_PAYLOAD : S_CRC_LO;
        break;
    case S_PAYLOAD:
        p->payload[p->pos++] = byte; /* pos < len <= RLMPC_PROTO_MAX_PAYLOAD */
        p->crc = rlmpc_crc16_update(p->crc, byte);
        if (p->pos >= p->len) p->state = S_CRC_LO;
        break;
    case S_CRC_LO:
        p->crc_rx = byte;
        p->state = S_CRC_HI;
        break;
    case S_CRC_HI:
        p->crc_rx = (uint16_t)(p->crc_rx | (uint16_t)(byte << 8));
        p->state = S_HUNT;
        return finish(p, ev);
    default: /* corrupted state: start over */
        rlmpc_parser_reset(p);
        break;
    }
    return ev->kind;
}

/* ---- frames ---- */

uint16_t rlmpc_frame_finish(uint8_t *frame, uint8_t type, uint8_t seq, uint16_t len)
{
    uint16_t crc;
    if (len > RLMPC_PROTO_MAX_PAYLOAD) return 0;
    frame[0] = RLMPC_PROTO_SYNC0;
    frame[1] = RLMPC_PROTO_SYNC1;
    frame[2] = type;
    frame[3] = seq;
    rlmpc_put_u16(frame + 4, len);
    crc = rlmpc_crc16(frame + 2, (uint16_t)(len + 4u));
    rlmpc_put_u16(frame + RLMPC_PROTO_HEADER_LEN + len, crc);
    return (uint16_t)(len + RLMPC_PROTO_HEADER_LEN + RLMPC_PROTO_CRC_LEN);
}

uint16_t rlmpc_frame_encode(uint8_t *frame, uint8_t type, uint8_t seq, const uint8_t *payload, uint16_t len)
{
    if (len > RLMPC_PROTO_MAX_PAYLOAD) return 0;
    rlmpc_put_bytes(RLMPC_FRAME_PAYLOAD(frame), payload, len);
    return rlmpc_frame_finish(frame, type, seq, len);
}

/* ---- reals ---- */

void rlmpc_put_reals(uint8_t *buf, const rlmpc_proto_real *v, uint16_t n)
{
    uint16_t i;
#if RLMPC_PROTO_PRECISION == 4
    union { float f; uint32_t u; } c;
    for (i = 0; i < n; ++i) {
        c.f = v[i];
        rlmpc_put_u32(buf + 4u * i, c.u);
    }
#else
    union { double f; uint64_t u; } c;
    for (i = 0; i < n; ++i) {
        c.f = v[i];
        rlmpc_put_u32(buf + 8u * i, (uint32_t)(c.u & 0xFFFFFFFFu));
        rlmpc_put_u32(buf + 8u * i + 4u, (uint32_t)(c.u >> 32));
    }
#endif
}

void rlmpc_get_reals(const uint8_t *buf, rlmpc_proto_real *v, uint16_t n)
{
    uint16_t i;
#if RLMPC_PROTO_PRECISION == 4
    union { float f; uint32_t u; } c;
    for (i = 0; i < n; ++i) {
        c.u = rlmpc_get_u32(buf + 4u * i);
        v[i] = c.f;
    }
#else
    union { double f; uint64_t u; } c;
    for (i = 0; i < n; ++i) {
        c.u = (uint64_t)rlmpc_get_u32(buf + 8u * i) | ((uint64_t)rlmpc_get_u32(buf + 8u * i + 4u) << 32);
        v[i] = c.f;
    }
#endif
}

/* payload length of a fixed part plus n reals, or 0 if above RLMPC_PROTO_MAX_PAYLOAD */
static uint16_t with_reals(uint16_t fixed, uint32_t n)
{
    uint32_t len = fixed + n * REAL_SIZE;
    return len > RLMPC_PROTO_MAX_PAYLOAD ? 0u : (uint16_t)len;
}

/* ---- device -> host ---- */

uint16_t rlmpc_encode_info(uint8_t *frame, uint8_t seq, const rlmpc_msg_info *m)
{
    rlmpc_pack_info(RLMPC_FRAME_PAYLOAD(frame), m);
    return rlmpc_frame_finish(frame, RLMPC_MSG_INFO, seq, RLMPC_INFO_FIXED_LEN);
}

uint16_t rlmpc_encode_action(uint8_t *frame, uint8_t seq, const rlmpc_msg_action *m, const rlmpc_proto_real *u)
{
    uint8_t *pl = RLMPC_FRAME_PAYLOAD(frame);
    uint16_t len = with_reals(RLMPC_ACTION_FIXED_LEN, m->n_u);
    if (len == 0) return 0;
    rlmpc_pack_action(pl, m);
    rlmpc_put_reals(pl + RLMPC_ACTION_FIXED_LEN, u, m->n_u);
    return rlmpc_frame_finish(frame, RLMPC_MSG_ACTION, seq, len);
}

uint16_t rlmpc_encode_pong(uint8_t *frame, uint8_t seq, const uint8_t *data, uint16_t len)
{
    return rlmpc_frame_encode(frame, RLMPC_MSG_PONG, seq, data, len);
}

uint16_t rlmpc_encode_ack(uint8_t *frame, uint8_t seq, uint8_t request)
{
    rlmpc_msg_ack m;
    m.request = request;
    rlmpc_pack_ack(RLMPC_FRAME_PAYLOAD(frame), &m);
    return rlmpc_frame_finish(frame, RLMPC_MSG_ACK, seq, RLMPC_ACK_FIXED_LEN);
}

uint16_t rlmpc_encode_error(uint8_t *frame, uint8_t seq, uint8_t code, uint8_t request, uint16_t detail)
{
    rlmpc_msg_error m;
    m.code = code;
    m.request = request;
    m.detail = detail;
    rlmpc_pack_error(RLMPC_FRAME_PAYLOAD(frame), &m);
    return rlmpc_frame_finish(frame, RLMPC_MSG_ERROR, seq, RLMPC_ERROR_FIXED_LEN);
}

uint16_t rlmpc_encode_event_error(uint8_t *frame, const rlmpc_event *ev)
{
    if (ev->kind != RLMPC_EVENT_ERROR) return 0;
    return rlmpc_encode_error(frame, ev->seq, ev->error, ev->type,
                              ev->error == RLMPC_ERR_BAD_LENGTH ? ev->len : 0u);
}

/* ---- host -> device ---- */

uint16_t rlmpc_encode_hello(uint8_t *frame, uint8_t seq, const rlmpc_msg_hello *m)
{
    rlmpc_pack_hello(RLMPC_FRAME_PAYLOAD(frame), m);
    return rlmpc_frame_finish(frame, RLMPC_MSG_HELLO, seq, RLMPC_HELLO_FIXED_LEN);
}

uint16_t rlmpc_encode_step(uint8_t *frame, uint8_t seq, const rlmpc_msg_step *m, const rlmpc_proto_real *x,
                           const rlmpc_proto_real *p)
{
    uint8_t *pl = RLMPC_FRAME_PAYLOAD(frame);
    uint16_t len = with_reals(RLMPC_STEP_FIXED_LEN, (uint32_t)m->n_x + m->n_p);
    if (len == 0) return 0;
    rlmpc_pack_step(pl, m);
    rlmpc_put_reals(pl + RLMPC_STEP_FIXED_LEN, x, m->n_x);
    if (m->n_p) rlmpc_put_reals(pl + RLMPC_STEP_FIXED_LEN + REAL_SIZE * m->n_x, p, m->n_p);
    return rlmpc_frame_finish(frame, RLMPC_MSG_STEP, seq, len);
}

uint16_t rlmpc_encode_set_theta(uint8_t *frame, uint8_t seq, const rlmpc_msg_set_theta *m,
                                const rlmpc_proto_real *theta)
{
    uint8_t *pl = RLMPC_FRAME_PAYLOAD(frame);
    uint16_t len = with_reals(RLMPC_SET_THETA_FIXED_LEN, m->n_theta);
    if (len == 0) return 0;
    rlmpc_pack_set_theta(pl, m);
    rlmpc_put_reals(pl + RLMPC_SET_THETA_FIXED_LEN, theta, m->n_theta);
    return rlmpc_frame_finish(frame, RLMPC_MSG_SET_THETA, seq, len);
}

uint16_t rlmpc_encode_step_theta(uint8_t *frame, uint8_t seq, const rlmpc_msg_step_theta *m,
                                 const rlmpc_proto_real *x, const rlmpc_proto_real *p,
                                 const rlmpc_proto_real *theta)
{
    uint8_t *pl = RLMPC_FRAME_PAYLOAD(frame);
    uint16_t len = with_reals(RLMPC_STEP_THETA_FIXED_LEN, (uint32_t)m->n_x + m->n_p + m->n_theta);
    uint32_t off = RLMPC_STEP_THETA_FIXED_LEN;
    if (len == 0) return 0;
    rlmpc_pack_step_theta(pl, m);
    rlmpc_put_reals(pl + off, x, m->n_x);
    off += REAL_SIZE * (uint32_t)m->n_x;
    if (m->n_p) rlmpc_put_reals(pl + off, p, m->n_p);
    off += REAL_SIZE * (uint32_t)m->n_p;
    rlmpc_put_reals(pl + off, theta, m->n_theta);
    return rlmpc_frame_finish(frame, RLMPC_MSG_STEP_THETA, seq, len);
}

/* ---- theta as differences of bit patterns (STEP_THETA_DELTA) ---- */

#if RLMPC_PROTO_PRECISION == 4
typedef uint32_t proto_bits;
#else
typedef uint64_t proto_bits;
#endif
#define BITS_WIDTH (8u * RLMPC_PROTO_PRECISION)
#define VARINT_MAX ((BITS_WIDTH + 6u) / 7u) /* 5 (float32) or 10 (float64) bytes */

static proto_bits real_bits(rlmpc_proto_real v)
{
    union { rlmpc_proto_real f; proto_bits u; } c;
    c.f = v;
    return c.u;
}

static rlmpc_proto_real bits_real(proto_bits u)
{
    union { rlmpc_proto_real f; proto_bits u; } c;
    c.u = u;
    return c.f;
}

/* one varint at buf[*pos .. len): 1 and its zigzag value in *z, or 0 if cut short, too long or not
 * canonical (a final 0x00 after another byte, value bits at or above 2^BITS_WIDTH) */
static int read_varint(const uint8_t *buf, uint16_t len, uint16_t *pos, proto_bits *z)
{
    unsigned used = 0, shift = 0;
    proto_bits v = 0;
    for (;;) {
        uint8_t byte;
        if (*pos >= len || used == VARINT_MAX) return 0;
        byte = buf[(*pos)++];
        used++;
        if (used > 1u && byte == 0u) return 0;
        if (used == VARINT_MAX && ((proto_bits)(byte & 0x7Fu) >> (BITS_WIDTH - shift)) != 0u) return 0;
        v |= (proto_bits)(byte & 0x7Fu) << shift;
        shift += 7u;
        if ((byte & 0x80u) == 0u) break;
    }
    *z = v;
    return 1;
}

uint16_t rlmpc_encode_step_theta_delta(uint8_t *frame, uint8_t seq, const rlmpc_msg_step_theta_delta *m,
                                       const rlmpc_proto_real *x, const rlmpc_proto_real *p,
                                       const rlmpc_proto_real *base, const rlmpc_proto_real *theta)
{
    uint8_t *pl = RLMPC_FRAME_PAYLOAD(frame);
    uint16_t len = with_reals(RLMPC_STEP_THETA_DELTA_FIXED_LEN, (uint32_t)m->n_x + m->n_p), i;
    uint32_t off = len;
    if (len == 0) return 0;
    for (i = 0; i < m->n_theta; ++i) {
        proto_bits d = real_bits(theta[i]) - real_bits(base[i]);                   /* modulo 2^BITS_WIDTH */
        proto_bits z = (d << 1) ^ ((d >> (BITS_WIDTH - 1u)) ? ~(proto_bits)0 : 0u); /* zigzag */
        do {
            if (off >= RLMPC_PROTO_MAX_PAYLOAD) return 0;
            pl[off++] = (uint8_t)((z & 0x7Fu) | (z > 0x7Fu ? 0x80u : 0u));
            z >>= 7;
        } while (z != 0u);
    }
    rlmpc_pack_step_theta_delta(pl, m);
    rlmpc_put_reals(pl + RLMPC_STEP_THETA_DELTA_FIXED_LEN, x, m->n_x);
    if (m->n_p) rlmpc_put_reals(pl + RLMPC_STEP_THETA_DELTA_FIXED_LEN + REAL_SIZE * m->n_x, p, m->n_p);
    return rlmpc_frame_finish(frame, RLMPC_MSG_STEP_THETA_DELTA, seq, (uint16_t)off);
}

uint16_t rlmpc_encode_reset(uint8_t *frame, uint8_t seq)
{
    return rlmpc_frame_finish(frame, RLMPC_MSG_RESET, seq, 0);
}

uint16_t rlmpc_encode_ping(uint8_t *frame, uint8_t seq, const uint8_t *data, uint16_t len)
{
    return rlmpc_frame_encode(frame, RLMPC_MSG_PING, seq, data, len);
}

uint16_t rlmpc_encode_exit(uint8_t *frame, uint8_t seq, const rlmpc_msg_exit *m)
{
    rlmpc_pack_exit(RLMPC_FRAME_PAYLOAD(frame), m);
    return rlmpc_frame_finish(frame, RLMPC_MSG_EXIT, seq, RLMPC_EXIT_FIXED_LEN);
}

/* ---- device: request decoders ---- */

static uint8_t fail(uint16_t *detail, uint8_t code, uint16_t value)
{
    if (detail) *detail = value;
    return code;
}

/* type and fixed length of a request; 0 if fine */
static uint8_t check_frame(const rlmpc_event *ev, uint8_t type, uint16_t fixed, uint16_t *detail)
{
    if (detail) *detail = 0;
    if (ev->kind != RLMPC_EVENT_FRAME || ev->type != type) return fail(detail, RLMPC_ERR_UNEXPECTED_TYPE, 0);
    if (ev->len < fixed) return fail(detail, RLMPC_ERR_BAD_LENGTH, ev->len);
    return 0;
}

static int is_finite(rlmpc_proto_real v)
{
    rlmpc_proto_real d = v - v; /* 0 if finite, NaN for inf and NaN */
    return d == d;
}

uint8_t rlmpc_decode_hello(const rlmpc_event *ev, rlmpc_msg_hello *m, uint16_t *detail)
{
    uint8_t err = check_frame(ev, RLMPC_MSG_HELLO, RLMPC_HELLO_FIXED_LEN, detail);
    if (err) return err;
    if (ev->len != RLMPC_HELLO_FIXED_LEN) return fail(detail, RLMPC_ERR_BAD_LENGTH, ev->len);
    rlmpc_unpack_hello(ev->payload, m);
    if (m->protocol_version != RLMPC_PROTO_VERSION)
        return fail(detail, RLMPC_ERR_BAD_VERSION, RLMPC_PROTO_VERSION);
    return 0;
}

uint8_t rlmpc_decode_step(const rlmpc_event *ev, uint8_t nx, uint8_t np, rlmpc_msg_step *m,
                          rlmpc_proto_real *x, rlmpc_proto_real *p, uint16_t *detail)
{
    uint8_t err = check_frame(ev, RLMPC_MSG_STEP, RLMPC_STEP_FIXED_LEN, detail);
    if (err) return err;
    rlmpc_unpack_step(ev->payload, m);
    if (ev->len != RLMPC_STEP_FIXED_LEN + ((uint32_t)m->n_x + m->n_p) * REAL_SIZE)
        return fail(detail, RLMPC_ERR_BAD_LENGTH, ev->len);
    if (m->n_x != nx) return fail(detail, RLMPC_ERR_BAD_DIMENSION, nx);
    if (m->n_p != 0 && m->n_p != np) return fail(detail, RLMPC_ERR_BAD_DIMENSION, np);
    rlmpc_get_reals(ev->payload + RLMPC_STEP_FIXED_LEN, x, m->n_x);
    if (m->n_p) rlmpc_get_reals(ev->payload + RLMPC_STEP_FIXED_LEN + REAL_SIZE * m->n_x, p, m->n_p);
    return 0;
}

/* the first value of theta[0 .. n) not finite or outside [lb, ub] (lb, ub may be 0), or n */
static uint16_t first_bad_theta(const rlmpc_proto_real *theta, uint16_t n, const rlmpc_proto_real *lb,
                                const rlmpc_proto_real *ub)
{
    uint16_t i;
    for (i = 0; i < n; ++i) {
        if (!is_finite(theta[i]) || (lb && !(theta[i] >= lb[i])) || (ub && !(theta[i] <= ub[i]))) return i;
    }
    return n;
}

uint8_t rlmpc_decode_set_theta(const rlmpc_event *ev, uint16_t ntheta,
                               const uint8_t problem_hash[RLMPC_PROTO_HASH_LEN], const rlmpc_proto_real *lb,
                               const rlmpc_proto_real *ub, rlmpc_msg_set_theta *m, rlmpc_proto_real *theta,
                               uint16_t *detail)
{
    uint16_t i;
    uint8_t err = check_frame(ev, RLMPC_MSG_SET_THETA, RLMPC_SET_THETA_FIXED_LEN, detail);
    if (err) return err;
    rlmpc_unpack_set_theta(ev->payload, m);
    if (ev->len != RLMPC_SET_THETA_FIXED_LEN + (uint32_t)m->n_theta * REAL_SIZE)
        return fail(detail, RLMPC_ERR_BAD_LENGTH, ev->len);
    if (m->n_theta != ntheta) return fail(detail, RLMPC_ERR_BAD_DIMENSION, ntheta);
    for (i = 0; i < RLMPC_PROTO_HASH_LEN; ++i)
        if (m->problem_hash[i] != problem_hash[i]) return fail(detail, RLMPC_ERR_BAD_HASH, 0);
    rlmpc_get_reals(ev->payload + RLMPC_SET_THETA_FIXED_LEN, theta, ntheta);
    i = first_bad_theta(theta, ntheta, lb, ub);
    if (i < ntheta) return fail(detail, RLMPC_ERR_OUT_OF_BOUNDS, i);
    return 0;
}

uint8_t rlmpc_decode_step_theta(const rlmpc_event *ev, uint8_t nx, uint8_t np, uint16_t ntheta,
                                const rlmpc_proto_real *lb, const rlmpc_proto_real *ub, rlmpc_msg_step_theta *m,
                                rlmpc_proto_real *x, rlmpc_proto_real *p, rlmpc_proto_real *theta, uint16_t *detail)
{
    uint16_t bad;
    uint32_t off = RLMPC_STEP_THETA_FIXED_LEN;
    uint8_t err = check_frame(ev, RLMPC_MSG_STEP_THETA, RLMPC_STEP_THETA_FIXED_LEN, detail);
    if (err) return err;
    rlmpc_unpack_step_theta(ev->payload, m);
    if (ev->len != RLMPC_STEP_THETA_FIXED_LEN + ((uint32_t)m->n_x + m->n_p + m->n_theta) * REAL_SIZE)
        return fail(detail, RLMPC_ERR_BAD_LENGTH, ev->len);
    if (m->n_x != nx) return fail(detail, RLMPC_ERR_BAD_DIMENSION, nx);
    if (m->n_p != 0 && m->n_p != np) return fail(detail, RLMPC_ERR_BAD_DIMENSION, np);
    if (m->n_theta != ntheta) return fail(detail, RLMPC_ERR_BAD_DIMENSION, ntheta);
    rlmpc_get_reals(ev->payload + off, x, m->n_x);
    off += REAL_SIZE * (uint32_t)m->n_x;
    if (m->n_p) rlmpc_get_reals(ev->payload + off, p, m->n_p);
    off += REAL_SIZE * (uint32_t)m->n_p;
    rlmpc_get_reals(ev->payload + off, theta, ntheta);
    bad = first_bad_theta(theta, ntheta, lb, ub);
    if (bad < ntheta) return fail(detail, RLMPC_ERR_OUT_OF_BOUNDS, bad);
    return 0;
}

uint8_t rlmpc_decode_step_theta_delta(const rlmpc_event *ev, uint8_t nx, uint8_t np, uint16_t ntheta,
                                      uint32_t base_tag, const rlmpc_proto_real *base, const rlmpc_proto_real *lb,
                                      const rlmpc_proto_real *ub, rlmpc_msg_step_theta_delta *m,
                                      rlmpc_proto_real *x, rlmpc_proto_real *p, rlmpc_proto_real *theta,
                                      uint16_t *detail)
{
    uint16_t i, pos, bad;
    uint32_t reals;
    proto_bits z;
    uint8_t err = check_frame(ev, RLMPC_MSG_STEP_THETA_DELTA, RLMPC_STEP_THETA_DELTA_FIXED_LEN, detail);
    if (err) return err;
    rlmpc_unpack_step_theta_delta(ev->payload, m);
    reals = RLMPC_STEP_THETA_DELTA_FIXED_LEN + ((uint32_t)m->n_x + m->n_p) * REAL_SIZE;
    if (ev->len < reals) return fail(detail, RLMPC_ERR_BAD_LENGTH, ev->len);
    pos = (uint16_t)reals; /* the varints must fill the rest exactly */
    for (i = 0; i < m->n_theta; ++i)
        if (!read_varint(ev->payload, ev->len, &pos, &z)) return fail(detail, RLMPC_ERR_BAD_LENGTH, ev->len);
    if (pos != ev->len) return fail(detail, RLMPC_ERR_BAD_LENGTH, ev->len);
    if (m->n_x != nx) return fail(detail, RLMPC_ERR_BAD_DIMENSION, nx);
    if (m->n_p != 0 && m->n_p != np) return fail(detail, RLMPC_ERR_BAD_DIMENSION, np);
    if (m->n_theta != ntheta) return fail(detail, RLMPC_ERR_BAD_DIMENSION, ntheta);
    if (base == 0 || m->base_tag != base_tag) return fail(detail, RLMPC_ERR_BAD_HASH, 0);
    rlmpc_get_reals(ev->payload + RLMPC_STEP_THETA_DELTA_FIXED_LEN, x, m->n_x);
    if (m->n_p) rlmpc_get_reals(ev->payload + RLMPC_STEP_THETA_DELTA_FIXED_LEN + REAL_SIZE * m->n_x, p, m->n_p);
    pos = (uint16_t)reals;
    for (i = 0; i < ntheta; ++i) {
        (void)read_varint(ev->payload, ev->len, &pos, &z);
        /* integer arithmetic on the bit patterns: exact, no rounding, no fused multiply-add */
        theta[i] = bits_real(real_bits(base[i]) + ((z >> 1) ^ ((z & 1u) ? ~(proto_bits)0 : 0u)));
    }
    bad = first_bad_theta(theta, ntheta, lb, ub);
    if (bad < ntheta) return fail(detail, RLMPC_ERR_OUT_OF_BOUNDS, bad);
    return 0;
}

uint8_t rlmpc_decode_exit(const rlmpc_event *ev, rlmpc_msg_exit *m, uint16_t *detail)
{
    uint8_t err = check_frame(ev, RLMPC_MSG_EXIT, RLMPC_EXIT_FIXED_LEN, detail);
    if (err) return err;
    if (ev->len != RLMPC_EXIT_FIXED_LEN) return fail(detail, RLMPC_ERR_BAD_LENGTH, ev->len);
    rlmpc_unpack_exit(ev->payload, m);
    return 0;
}
