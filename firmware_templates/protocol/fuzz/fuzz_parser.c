/* libFuzzer harness for the C protocol parser, encoders and the device's request decoders.
 *
 * Input: 3 bytes of device dimensions (nx = b0 & 31, np = b1 & 15, ntheta = b2 & 63), then
 *   - if b2 & 0x80 is clear: a raw byte stream;
 *   - if it is set: records [type, seq, len_lo, len_hi, payload[len & 0x3FF]], each turned into a
 *     frame with a correct CRC (a header alone when len > MAX_PAYLOAD), so that mutations reach
 *     the length, dimension, hash and bound checks behind the CRC.
 * The stream is fed to a fresh parser byte by byte.  Checked on every event (abort on failure):
 *   - a frame has a known type, a length in its type's range and a payload inside the parser;
 *   - re-encoding a frame and parsing it again gives the same frame, completed by its last byte;
 *   - a request that decodes, or a device->host message unpacked with the generated functions,
 *     re-encodes to the very same bytes;
 *   - the ERROR answering a rejection is itself a well-formed frame;
 *   - SET_THETA and STEP_THETA as the firmware applies them: whole or not at all, the applied theta
 *     always within its bounds, OUT_OF_BOUNDS naming the first bad value, the same checks and codes
 *     for both (STEP_THETA: STEP's dimension checks first, no hash; the tag becomes the theta hash);
 *     STEP with or without p (STEP_PARAMS);
 *   - STEP_THETA_DELTA against the applied theta (none before the first): refused with BAD_HASH
 *     exactly when its base_tag is not the applied theta's tag (or nothing was applied), the
 *     rebuilt theta within its bounds, and the frame re-encoded from (applied, rebuilt theta) is
 *     the very same bytes (the varints are canonical: one encoding per theta);
 *   - the parser's counters add up to the events seen, and MAX_FRAME zeros after the stream
 *     leave it idle.
 * Build and run: run_fuzz.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rlmpc_protocol.h"

#define MAX_REALS 256
#define MAX_STREAM 16384

static rlmpc_parser parser, echo;
static uint8_t original[RLMPC_PROTO_MAX_FRAME], again[RLMPC_PROTO_MAX_FRAME], stream[MAX_STREAM];
static rlmpc_proto_real x[MAX_REALS], p[MAX_REALS], theta[MAX_REALS], lb[MAX_REALS], ub[MAX_REALS];
static const uint8_t problem_hash[RLMPC_PROTO_HASH_LEN] = {0};
/* the device's theta (a model of controller.c: applied only on success) */
static rlmpc_proto_real applied[MAX_REALS];
static uint8_t applied_hash[RLMPC_PROTO_HASH_LEN];
static unsigned long applied_count;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok) abort();
}

/* parse a whole frame with a fresh parser: it must complete exactly at its last byte */
static rlmpc_event reparse(const uint8_t *frame, uint16_t n)
{
    rlmpc_event ev;
    uint16_t i;
    check(n > 0);
    rlmpc_parser_init(&echo);
    for (i = 0; i < n; ++i) {
        uint8_t kind = rlmpc_parser_feed(&echo, frame[i], &ev);
        check(kind == RLMPC_EVENT_NONE || i + 1u == n);
    }
    return ev;
}

static void same_bytes(const uint8_t *a, uint16_t na, const uint8_t *b, uint16_t nb)
{
    check(na == nb && na > 0 && memcmp(a, b, na) == 0);
}

/* device->host messages: the generated unpack functions and the encoders are inverses */
static void decode_reply(const rlmpc_event *ev, uint16_t n)
{
    uint16_t m2 = 0;
    switch (ev->type) {
    case RLMPC_MSG_INFO: {
        rlmpc_msg_info m;
        rlmpc_unpack_info(ev->payload, &m);
        m2 = rlmpc_encode_info(again, ev->seq, &m);
        break;
    }
    case RLMPC_MSG_ACTION: {
        rlmpc_msg_action m;
        rlmpc_unpack_action(ev->payload, &m);
        if (ev->len != RLMPC_ACTION_FIXED_LEN + (uint32_t)m.n_u * RLMPC_PROTO_PRECISION) return;
        rlmpc_get_reals(ev->payload + RLMPC_ACTION_FIXED_LEN, x, m.n_u);
        m2 = rlmpc_encode_action(again, ev->seq, &m, x);
        break;
    }
    case RLMPC_MSG_ACK: {
        rlmpc_msg_ack m;
        rlmpc_unpack_ack(ev->payload, &m);
        m2 = rlmpc_encode_ack(again, ev->seq, m.request);
        break;
    }
    case RLMPC_MSG_ERROR: {
        rlmpc_msg_error m;
        rlmpc_unpack_error(ev->payload, &m);
        m2 = rlmpc_encode_error(again, ev->seq, m.code, m.request, m.detail);
        break;
    }
    case RLMPC_MSG_PONG:
        m2 = rlmpc_encode_pong(again, ev->seq, ev->payload, ev->len);
        break;
    default:
        abort(); /* every known type is handled */
    }
    same_bytes(original, n, again, m2);
}

static void decode_request(const rlmpc_event *ev, uint16_t n, uint8_t nx, uint8_t np, uint16_t ntheta)
{
    uint16_t detail = 0, m2;
    switch (ev->type) {
    case RLMPC_MSG_HELLO: {
        rlmpc_msg_hello m;
        uint8_t err = rlmpc_decode_hello(ev, &m, &detail);
        check(err == 0 || (err == RLMPC_ERR_BAD_VERSION && detail == RLMPC_PROTO_VERSION));
        if (err == 0) same_bytes(original, n, again, rlmpc_encode_hello(again, ev->seq, &m));
        break;
    }
    case RLMPC_MSG_STEP: {
        rlmpc_msg_step m;
        uint8_t err = rlmpc_decode_step(ev, nx, np, &m, x, p, &detail);
        check(err == 0 || err == RLMPC_ERR_BAD_LENGTH || err == RLMPC_ERR_BAD_DIMENSION);
        if (err == RLMPC_ERR_BAD_DIMENSION) check(detail == (m.n_x != nx ? nx : np));
        if (err == 0) {
            /* STEP_PARAMS: p has np values or none (keep the device's p) */
            check(m.n_x == nx && (m.n_p == 0 || m.n_p == np));
            check(ev->len == RLMPC_STEP_FIXED_LEN + (uint32_t)(m.n_x + m.n_p) * RLMPC_PROTO_PRECISION);
            same_bytes(original, n, again, rlmpc_encode_step(again, ev->seq, &m, x, p));
        }
        break;
    }
    case RLMPC_MSG_SET_THETA: {
        /* the firmware's path (controller.c answer_set_theta): decode into a staging buffer, apply
         * it whole on success only; the applied theta is always finite and within its bounds, and
         * a refusal names the first bad value */
        rlmpc_msg_set_theta m;
        uint16_t i;
        uint8_t err = rlmpc_decode_set_theta(ev, ntheta, problem_hash, lb, ub, &m, theta, &detail);
        check(err == 0 || err == RLMPC_ERR_BAD_LENGTH || err == RLMPC_ERR_BAD_DIMENSION ||
              err == RLMPC_ERR_BAD_HASH || (err == RLMPC_ERR_OUT_OF_BOUNDS && detail < ntheta));
        if (err == RLMPC_ERR_OUT_OF_BOUNDS) {
            for (i = 0; i < detail; ++i) check(theta[i] >= lb[i] && theta[i] <= ub[i]);
            check(!(theta[detail] >= lb[detail] && theta[detail] <= ub[detail]));
        }
        if (err == 0) {
            same_bytes(original, n, again, rlmpc_encode_set_theta(again, ev->seq, &m, theta));
            check(m.n_theta == ntheta && memcmp(m.problem_hash, problem_hash, RLMPC_PROTO_HASH_LEN) == 0);
            for (i = 0; i < ntheta; ++i) {
                check(theta[i] >= lb[i] && theta[i] <= ub[i]);
                applied[i] = theta[i];
            }
            memcpy(applied_hash, m.theta_hash, RLMPC_PROTO_HASH_LEN);
            ++applied_count;
        }
        /* a refusal leaves the applied theta as it was */
        for (i = 0; i < ntheta; ++i) check(applied[i] >= lb[i] && applied[i] <= ub[i]);
        break;
    }
    case RLMPC_MSG_STEP_THETA: {
        /* the firmware's path (controller.c answer_step_theta): STEP's checks, then SET_THETA's
         * without the hash; applied whole on success only, then the step */
        rlmpc_msg_step_theta m;
        uint16_t i;
        uint8_t err = rlmpc_decode_step_theta(ev, nx, np, ntheta, lb, ub, &m, x, p, theta, &detail);
        check(err == 0 || err == RLMPC_ERR_BAD_LENGTH || err == RLMPC_ERR_BAD_DIMENSION ||
              (err == RLMPC_ERR_OUT_OF_BOUNDS && detail < ntheta));
        if (err == RLMPC_ERR_BAD_DIMENSION)
            check(detail == (m.n_x != nx ? nx : (m.n_p != 0 && m.n_p != np) ? np : ntheta));
        if (err == RLMPC_ERR_OUT_OF_BOUNDS) {
            check(m.n_x == nx && (m.n_p == 0 || m.n_p == np) && m.n_theta == ntheta);
            for (i = 0; i < detail; ++i) check(theta[i] >= lb[i] && theta[i] <= ub[i]);
            check(!(theta[detail] >= lb[detail] && theta[detail] <= ub[detail]));
        }
        if (err == 0) {
            check(m.n_x == nx && (m.n_p == 0 || m.n_p == np) && m.n_theta == ntheta);
            check(ev->len == RLMPC_STEP_THETA_FIXED_LEN +
                                 (uint32_t)(m.n_x + m.n_p + m.n_theta) * RLMPC_PROTO_PRECISION);
            same_bytes(original, n, again, rlmpc_encode_step_theta(again, ev->seq, &m, x, p, theta));
            for (i = 0; i < ntheta; ++i) {
                check(theta[i] >= lb[i] && theta[i] <= ub[i]);
                applied[i] = theta[i];
            }
            for (i = 0; i < RLMPC_PROTO_HASH_LEN; ++i) applied_hash[i] = i < 4u ? (uint8_t)(m.theta_tag >> (8u * i)) : 0u;
            ++applied_count;
        }
        for (i = 0; i < ntheta; ++i) check(applied[i] >= lb[i] && applied[i] <= ub[i]);
        break;
    }
    case RLMPC_MSG_STEP_THETA_DELTA: {
        /* the firmware's path (controller.c answer_step_theta_delta): against the applied theta */
        rlmpc_msg_step_theta_delta m;
        uint16_t i;
        uint32_t tag = (uint32_t)applied_hash[0] | ((uint32_t)applied_hash[1] << 8) |
                       ((uint32_t)applied_hash[2] << 16) | ((uint32_t)applied_hash[3] << 24);
        uint8_t err = rlmpc_decode_step_theta_delta(ev, nx, np, ntheta, tag, applied_count ? applied : NULL, lb, ub,
                                                    &m, x, p, theta, &detail);
        check(err == 0 || err == RLMPC_ERR_BAD_LENGTH || err == RLMPC_ERR_BAD_DIMENSION ||
              err == RLMPC_ERR_BAD_HASH || (err == RLMPC_ERR_OUT_OF_BOUNDS && detail < ntheta));
        if (err == RLMPC_ERR_BAD_LENGTH) check(detail == ev->len);
        if (err == RLMPC_ERR_BAD_DIMENSION)
            check(detail == (m.n_x != nx ? nx : (m.n_p != 0 && m.n_p != np) ? np : ntheta));
        if (err == RLMPC_ERR_BAD_HASH)
            check(m.n_x == nx && (m.n_p == 0 || m.n_p == np) && m.n_theta == ntheta &&
                  (applied_count == 0 || m.base_tag != tag));
        if (err == RLMPC_ERR_OUT_OF_BOUNDS) {
            check(m.base_tag == tag && applied_count > 0);
            for (i = 0; i < detail; ++i) check(theta[i] >= lb[i] && theta[i] <= ub[i]);
            check(!(theta[detail] >= lb[detail] && theta[detail] <= ub[detail]));
        }
        if (err == 0) {
            check(m.n_x == nx && (m.n_p == 0 || m.n_p == np) && m.n_theta == ntheta && m.base_tag == tag);
            same_bytes(original, n, again, rlmpc_encode_step_theta_delta(again, ev->seq, &m, x, p, applied, theta));
            for (i = 0; i < ntheta; ++i) {
                check(theta[i] >= lb[i] && theta[i] <= ub[i]);
                applied[i] = theta[i];
            }
            for (i = 0; i < RLMPC_PROTO_HASH_LEN; ++i) applied_hash[i] = i < 4u ? (uint8_t)(m.theta_tag >> (8u * i)) : 0u;
            ++applied_count;
        }
        for (i = 0; i < ntheta; ++i) check(applied[i] >= lb[i] && applied[i] <= ub[i]);
        break;
    }
    case RLMPC_MSG_EXIT: {
        rlmpc_msg_exit m;
        check(rlmpc_decode_exit(ev, &m, &detail) == 0);
        same_bytes(original, n, again, rlmpc_encode_exit(again, ev->seq, &m));
        break;
    }
    case RLMPC_MSG_RESET:
        same_bytes(original, n, again, rlmpc_encode_reset(again, ev->seq));
        break;
    case RLMPC_MSG_PING:
        same_bytes(original, n, again, rlmpc_encode_ping(again, ev->seq, ev->payload, ev->len));
        m2 = rlmpc_encode_pong(again, ev->seq, ev->payload, ev->len);
        check(m2 == n && again[2] == RLMPC_MSG_PONG &&
              memcmp(RLMPC_FRAME_PAYLOAD(original), RLMPC_FRAME_PAYLOAD(again), ev->len) == 0);
        break;
    default: /* a device->host type sent to the device */
        check(!rlmpc_msg_to_device(ev->type));
        check(rlmpc_decode_hello(ev, 0, &detail) == RLMPC_ERR_UNEXPECTED_TYPE);
        decode_reply(ev, n);
        break;
    }
}

/* records [type, seq, len_lo, len_hi, payload] -> frames with correct CRCs; returns the stream length */
static size_t frames_from_records(const uint8_t *data, size_t size)
{
    size_t k = 0, out = 0;
    while (k + 4 <= size && out + RLMPC_PROTO_MAX_FRAME <= MAX_STREAM) {
        uint16_t len = (uint16_t)((data[k + 2] | (data[k + 3] << 8)) & 0x3FF);
        if (len > RLMPC_PROTO_MAX_PAYLOAD) { /* header only: rejected for its length */
            stream[out++] = RLMPC_PROTO_SYNC0;
            stream[out++] = RLMPC_PROTO_SYNC1;
            memcpy(stream + out, data + k, 4);
            out += 4;
            k += 4;
            continue;
        }
        if (len > size - k - 4) len = (uint16_t)(size - k - 4);
        out += rlmpc_frame_encode(stream + out, data[k], data[k + 1], data + k + 4, len);
        k += 4u + len;
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t nx, np;
    uint16_t ntheta, i;
    uint32_t events_ok = 0, events_err = 0;
    size_t k, n_bytes;
    const uint8_t *bytes;
    rlmpc_event ev;
    if (size < 3) return 0;
    nx = data[0] & 31u;
    np = data[1] & 15u;
    ntheta = data[2] & 63u;
    for (i = 0; i < ntheta; ++i) {
        lb[i] = (rlmpc_proto_real)(-1.0 - i);
        ub[i] = (rlmpc_proto_real)(1.0 + i);
        applied[i] = 0; /* the exported theta, within its bounds */
    }
    if (data[2] & 0x80u) {
        n_bytes = frames_from_records(data + 3, size - 3);
        bytes = stream;
    } else {
        n_bytes = size - 3;
        bytes = data + 3;
    }
    rlmpc_parser_init(&parser);
    /* the stream, then MAX_FRAME zeros: they must end any partial frame */
    for (k = 0; k < n_bytes + RLMPC_PROTO_MAX_FRAME; ++k) {
        uint8_t kind = rlmpc_parser_feed(&parser, k < n_bytes ? bytes[k] : 0u, &ev);
        check(kind == ev.kind && kind <= RLMPC_EVENT_ERROR);
        if (kind == RLMPC_EVENT_FRAME) {
            uint16_t n;
            rlmpc_event ev2;
            ++events_ok;
            check(rlmpc_msg_known(ev.type) && ev.len >= rlmpc_msg_min_len(ev.type) &&
                  ev.len <= rlmpc_msg_max_len(ev.type) && ev.payload == parser.payload);
            n = rlmpc_frame_encode(original, ev.type, ev.seq, ev.payload, ev.len);
            check(n == ev.len + RLMPC_PROTO_HEADER_LEN + RLMPC_PROTO_CRC_LEN);
            ev2 = reparse(original, n);
            check(ev2.kind == RLMPC_EVENT_FRAME && ev2.type == ev.type && ev2.seq == ev.seq &&
                  ev2.len == ev.len && memcmp(ev2.payload, ev.payload, ev.len) == 0);
            decode_request(&ev, n, nx, np, ntheta);
        } else if (kind == RLMPC_EVENT_ERROR) {
            uint16_t n;
            rlmpc_event ev2;
            ++events_err;
            check(ev.error == RLMPC_ERR_BAD_CRC || ev.error == RLMPC_ERR_BAD_LENGTH ||
                  ev.error == RLMPC_ERR_UNKNOWN_TYPE);
            n = rlmpc_encode_event_error(original, &ev);
            ev2 = reparse(original, n);
            check(ev2.kind == RLMPC_EVENT_FRAME && ev2.type == RLMPC_MSG_ERROR && ev2.seq == ev.seq &&
                  ev2.payload[0] == ev.error && ev2.payload[1] == ev.type);
        }
    }
    check(rlmpc_parser_idle(&parser));
    check(parser.stats.frames == events_ok &&
          parser.stats.bad_crc + parser.stats.bad_length + parser.stats.unknown_type == events_err);
    return 0;
}
