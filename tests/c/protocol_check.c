/* Host test program for firmware_templates/protocol (driven by tests/test_protocol.py).
 *
 * Reads commands from stdin, one per line, and prints what the C protocol code makes of them:
 *   E <TYPE> <seq> <tokens>   encode a message: prints the frame as hex (or FAIL)
 *   D <nx> <np> <ntheta> <problem_hash> <lb: ntheta reals or -> <ub: ntheta reals or ->
 *                             the device's limits for the request decoders
 *   P <hex>                   feed bytes to the parser (state kept between P lines); per event:
 *                               F <type> <seq> <payload hex>  then, for requests,
 *                               M <tokens> (decoded) or X <code> <detail> (rejected)
 *                               R <code> <type> <seq> <len>   then A <ERROR frame hex>
 *   S                         parser counters: S frames bad_crc bad_length unknown_type garbage
 * Tokens: the message's fixed fields in order (integers in decimal, bytes in hex, - if empty),
 * then its reals as the hex of their IEEE-754 bits, then raw tail bytes in hex (- if empty).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlmpc_protocol.h"

#define MAX_LINE (1 << 17)
#define MAX_REALS 256

static char line[MAX_LINE];
static uint8_t frame[RLMPC_PROTO_MAX_FRAME];
static rlmpc_parser parser;

static struct {
    uint8_t nx, np;
    uint16_t ntheta;
    uint8_t problem_hash[RLMPC_PROTO_HASH_LEN];
    int has_lb, has_ub, has_theta;
    rlmpc_proto_real lb[MAX_REALS], ub[MAX_REALS], theta[MAX_REALS]; /* theta: the theta in use */
    uint32_t theta_tag;
} dev;

static const char *next_token(void) { return strtok(NULL, " \t\r\n"); }

static long next_int(void)
{
    const char *t = next_token();
    return t ? strtol(t, NULL, 10) : 0;
}

/* hex token into out; returns the number of bytes ("-": 0) */
static uint16_t next_hex(uint8_t *out, size_t cap)
{
    const char *t = next_token();
    size_t n = 0;
    if (t == NULL || strcmp(t, "-") == 0) return 0;
    while (t[2 * n] && t[2 * n + 1] && n < cap) {
        char pair[3] = {t[2 * n], t[2 * n + 1], 0};
        out[n++] = (uint8_t)strtoul(pair, NULL, 16);
    }
    return (uint16_t)n;
}

static rlmpc_proto_real parse_real(const char *t)
{
#if RLMPC_PROTO_PRECISION == 4
    union { float f; uint32_t u; } c;
    c.u = t ? (uint32_t)strtoul(t, NULL, 16) : 0u;
#else
    union { double f; uint64_t u; } c;
    c.u = t ? (uint64_t)strtoull(t, NULL, 16) : 0u;
#endif
    return c.f;
}

static void next_reals(rlmpc_proto_real *v, long n)
{
    long i;
    for (i = 0; i < n && i < MAX_REALS; ++i) v[i] = parse_real(next_token());
}

/* ntheta bound values, or "-" (returns 0) */
static int next_bounds(rlmpc_proto_real *v, uint16_t n)
{
    const char *t = next_token();
    if (t == NULL || strcmp(t, "-") == 0 || n == 0) return 0;
    v[0] = parse_real(t);
    next_reals(v + 1, (long)n - 1);
    return 1;
}

static void print_hex(const uint8_t *b, size_t n)
{
    size_t i;
    if (n == 0) fputs(" -", stdout);
    else fputc(' ', stdout);
    for (i = 0; i < n; ++i) printf("%02x", b[i]);
}

static void print_reals(const rlmpc_proto_real *v, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
#if RLMPC_PROTO_PRECISION == 4
        union { float f; uint32_t u; } c;
        c.f = v[i];
        printf(" %08lx", (unsigned long)c.u);
#else
        union { double f; uint64_t u; } c;
        c.f = v[i];
        printf(" %08lx%08lx", (unsigned long)(c.u >> 32), (unsigned long)(c.u & 0xFFFFFFFFu));
#endif
    }
}

static uint16_t encode(const char *name, uint8_t seq)
{
    static rlmpc_proto_real a[MAX_REALS], b[MAX_REALS];
    static uint8_t data[RLMPC_PROTO_MAX_FRAME];
    if (strcmp(name, "HELLO") == 0) {
        rlmpc_msg_hello m;
        m.protocol_version = (uint16_t)next_int();
        return rlmpc_encode_hello(frame, seq, &m);
    }
    if (strcmp(name, "STEP") == 0) {
        rlmpc_msg_step m;
        m.step = (uint32_t)strtoul(next_token(), NULL, 10);
        m.n_x = (uint8_t)next_int();
        m.n_p = (uint8_t)next_int();
        next_reals(a, m.n_x);
        next_reals(b, m.n_p);
        return rlmpc_encode_step(frame, seq, &m, a, b);
    }
    if (strcmp(name, "SET_THETA") == 0) {
        rlmpc_msg_set_theta m;
        next_hex(m.problem_hash, sizeof m.problem_hash);
        next_hex(m.theta_hash, sizeof m.theta_hash);
        m.n_theta = (uint16_t)next_int();
        next_reals(a, m.n_theta);
        return rlmpc_encode_set_theta(frame, seq, &m, a);
    }
    if (strcmp(name, "STEP_THETA") == 0) {
        static rlmpc_proto_real c[MAX_REALS];
        rlmpc_msg_step_theta m;
        m.step = (uint32_t)strtoul(next_token(), NULL, 10);
        m.theta_tag = (uint32_t)strtoul(next_token(), NULL, 10);
        m.n_x = (uint8_t)next_int();
        m.n_p = (uint8_t)next_int();
        m.n_theta = (uint16_t)next_int();
        next_reals(a, m.n_x);
        next_reals(b, m.n_p);
        next_reals(c, m.n_theta);
        return rlmpc_encode_step_theta(frame, seq, &m, a, b, c);
    }
    if (strcmp(name, "STEP_THETA_DELTA") == 0) {
        /* the differences as hex varints (Python's bytes): encoded again against a zero base, i.e. with
         * theta's bit patterns equal to the differences, which covers every difference */
        static rlmpc_proto_real zero[MAX_REALS], c[MAX_REALS];
        rlmpc_msg_step_theta_delta m;
        uint16_t n, pos = 0, i;
        m.step = (uint32_t)strtoul(next_token(), NULL, 10);
        m.base_tag = (uint32_t)strtoul(next_token(), NULL, 10);
        m.theta_tag = (uint32_t)strtoul(next_token(), NULL, 10);
        m.n_x = (uint8_t)next_int();
        m.n_p = (uint8_t)next_int();
        m.n_theta = (uint16_t)next_int();
        next_reals(a, m.n_x);
        next_reals(b, m.n_p);
        n = next_hex(data, sizeof data);
        for (i = 0; i < m.n_theta && i < MAX_REALS; ++i) {
#if RLMPC_PROTO_PRECISION == 4
            union { float f; uint32_t u; } v;
#else
            union { double f; uint64_t u; } v;
#endif
            unsigned shift = 0;
            v.u = 0;
            while (pos < n) {
                uint8_t byte = data[pos++];
                v.u |= (uint64_t)(byte & 0x7Fu) << shift;
                shift += 7u;
                if ((byte & 0x80u) == 0u) break;
            }
            v.u = (v.u >> 1) ^ (0u - (v.u & 1u)); /* zigzag back */
            zero[i] = 0;
            c[i] = v.f;
        }
        return rlmpc_encode_step_theta_delta(frame, seq, &m, a, b, zero, c);
    }
    if (strcmp(name, "RESET") == 0) return rlmpc_encode_reset(frame, seq);
    if (strcmp(name, "PING") == 0 || strcmp(name, "PONG") == 0) {
        uint16_t n = next_hex(data, sizeof data);
        return name[1] == 'I' ? rlmpc_encode_ping(frame, seq, data, n) : rlmpc_encode_pong(frame, seq, data, n);
    }
    if (strcmp(name, "EXIT") == 0) {
        rlmpc_msg_exit m;
        m.code = (uint8_t)next_int();
        return rlmpc_encode_exit(frame, seq, &m);
    }
    if (strcmp(name, "INFO") == 0) {
        rlmpc_msg_info m;
        m.protocol_version = (uint16_t)next_int();
        m.fw_major = (uint8_t)next_int();
        m.fw_minor = (uint8_t)next_int();
        m.fw_patch = (uint8_t)next_int();
        m.precision = (uint8_t)next_int();
        m.capabilities = (uint8_t)next_int();
        m.cost_unit = (uint8_t)next_int();
        m.nx = (uint8_t)next_int();
        m.nu = (uint8_t)next_int();
        m.np = (uint8_t)next_int();
        m.ntheta = (uint16_t)next_int();
        next_hex(m.board, sizeof m.board);
        next_hex(m.manifest_hash, sizeof m.manifest_hash);
        next_hex(m.problem_hash, sizeof m.problem_hash);
        next_hex(m.theta_hash, sizeof m.theta_hash);
        return rlmpc_encode_info(frame, seq, &m);
    }
    if (strcmp(name, "ACTION") == 0) {
        rlmpc_msg_action m;
        m.step = (uint32_t)strtoul(next_token(), NULL, 10);
        m.flags = (uint16_t)next_int();
        m.solver_status = (int16_t)next_int();
        m.sqp_iterations = (uint16_t)next_int();
        m.qp_iterations = (uint16_t)next_int();
        m.cost = (uint32_t)strtoul(next_token(), NULL, 10);
        m.n_u = (uint8_t)next_int();
        next_reals(a, m.n_u);
        return rlmpc_encode_action(frame, seq, &m, a);
    }
    if (strcmp(name, "ACK") == 0) return rlmpc_encode_ack(frame, seq, (uint8_t)next_int());
    if (strcmp(name, "ERROR") == 0) {
        uint8_t code = (uint8_t)next_int(), request = (uint8_t)next_int();
        return rlmpc_encode_error(frame, seq, code, request, (uint16_t)next_int());
    }
    return 0;
}

/* the device's decoding of a request frame: M line or X line */
static void decode_request(const rlmpc_event *ev)
{
    static rlmpc_proto_real a[MAX_REALS], b[MAX_REALS];
    uint16_t detail = 0;
    uint8_t err = 0;
    switch (ev->type) {
    case RLMPC_MSG_HELLO: {
        rlmpc_msg_hello m;
        err = rlmpc_decode_hello(ev, &m, &detail);
        if (!err) printf("M %u", (unsigned)m.protocol_version);
        break;
    }
    case RLMPC_MSG_STEP: {
        rlmpc_msg_step m;
        err = rlmpc_decode_step(ev, dev.nx, dev.np, &m, a, b, &detail);
        if (!err) {
            printf("M %lu %u %u", (unsigned long)m.step, (unsigned)m.n_x, (unsigned)m.n_p);
            print_reals(a, m.n_x);
            print_reals(b, m.n_p);
        }
        break;
    }
    case RLMPC_MSG_SET_THETA: {
        rlmpc_msg_set_theta m;
        err = rlmpc_decode_set_theta(ev, dev.ntheta, dev.problem_hash, dev.has_lb ? dev.lb : NULL,
                                     dev.has_ub ? dev.ub : NULL, &m, a, &detail);
        if (!err) {
            fputc('M', stdout);
            print_hex(m.problem_hash, sizeof m.problem_hash);
            print_hex(m.theta_hash, sizeof m.theta_hash);
            printf(" %u", (unsigned)m.n_theta);
            print_reals(a, m.n_theta);
        }
        break;
    }
    case RLMPC_MSG_STEP_THETA: {
        static rlmpc_proto_real c[MAX_REALS];
        rlmpc_msg_step_theta m;
        err = rlmpc_decode_step_theta(ev, dev.nx, dev.np, dev.ntheta, dev.has_lb ? dev.lb : NULL,
                                      dev.has_ub ? dev.ub : NULL, &m, a, b, c, &detail);
        if (!err) {
            printf("M %lu %lu %u %u %u", (unsigned long)m.step, (unsigned long)m.theta_tag, (unsigned)m.n_x,
                   (unsigned)m.n_p, (unsigned)m.n_theta);
            print_reals(a, m.n_x);
            print_reals(b, m.n_p);
            print_reals(c, m.n_theta);
        }
        break;
    }
    case RLMPC_MSG_STEP_THETA_DELTA: {
        static rlmpc_proto_real c[MAX_REALS];
        rlmpc_msg_step_theta_delta m;
        err = rlmpc_decode_step_theta_delta(ev, dev.nx, dev.np, dev.ntheta, dev.theta_tag,
                                            dev.has_theta ? dev.theta : NULL, dev.has_lb ? dev.lb : NULL,
                                            dev.has_ub ? dev.ub : NULL, &m, a, b, c, &detail);
        if (!err) {
            printf("M %lu %lu %lu %u %u %u", (unsigned long)m.step, (unsigned long)m.base_tag,
                   (unsigned long)m.theta_tag, (unsigned)m.n_x, (unsigned)m.n_p, (unsigned)m.n_theta);
            print_reals(a, m.n_x);
            print_reals(b, m.n_p);
            print_reals(c, m.n_theta);
        }
        break;
    }
    case RLMPC_MSG_RESET:
        fputc('M', stdout);
        break;
    case RLMPC_MSG_PING:
        fputc('M', stdout);
        print_hex(ev->payload, ev->len);
        break;
    case RLMPC_MSG_EXIT: {
        rlmpc_msg_exit m;
        err = rlmpc_decode_exit(ev, &m, &detail);
        if (!err) printf("M %u", (unsigned)m.code);
        break;
    }
    default:
        return;
    }
    if (err) printf("X %u %u", (unsigned)err, (unsigned)detail);
    fputc('\n', stdout);
}

static void feed(void)
{
    static uint8_t bytes[MAX_LINE / 2];
    uint16_t i;
    size_t n = 0;
    const char *t = next_token();
    rlmpc_event ev;
    while (t && t[2 * n] && t[2 * n + 1] && n < sizeof bytes) {
        char pair[3] = {t[2 * n], t[2 * n + 1], 0};
        bytes[n++] = (uint8_t)strtoul(pair, NULL, 16);
    }
    for (i = 0; i < n; ++i) {
        uint8_t kind = rlmpc_parser_feed(&parser, bytes[i], &ev);
        if (kind == RLMPC_EVENT_FRAME) {
            printf("F %u %u", (unsigned)ev.type, (unsigned)ev.seq);
            print_hex(ev.payload, ev.len);
            fputc('\n', stdout);
            if (rlmpc_msg_to_device(ev.type)) decode_request(&ev);
        } else if (kind == RLMPC_EVENT_ERROR) {
            printf("R %u %u %u %u\nA", (unsigned)ev.error, (unsigned)ev.type, (unsigned)ev.seq, (unsigned)ev.len);
            print_hex(frame, rlmpc_encode_event_error(frame, &ev));
            fputc('\n', stdout);
        }
    }
}

static void set_device(void)
{
    dev.nx = (uint8_t)next_int();
    dev.np = (uint8_t)next_int();
    dev.ntheta = (uint16_t)next_int();
    next_hex(dev.problem_hash, sizeof dev.problem_hash);
    dev.has_lb = next_bounds(dev.lb, dev.ntheta);
    dev.has_ub = next_bounds(dev.ub, dev.ntheta);
    dev.theta_tag = (uint32_t)next_int();  /* the theta in use: its tag and values ("-": unknown) */
    dev.has_theta = next_bounds(dev.theta, dev.ntheta);
}

int main(void)
{
    rlmpc_parser_init(&parser);
    while (fgets(line, sizeof line, stdin)) {
        const char *cmd = strtok(line, " \t\r\n");
        if (cmd == NULL) continue;
        if (strcmp(cmd, "E") == 0) {
            const char *name = next_token();
            uint8_t seq = (uint8_t)next_int();
            uint16_t n = name ? encode(name, seq) : 0;
            if (n == 0) puts("FAIL");
            else {
                fputc('H', stdout);
                print_hex(frame, n);
                fputc('\n', stdout);
            }
        } else if (strcmp(cmd, "D") == 0) {
            set_device();
        } else if (strcmp(cmd, "P") == 0) {
            feed();
        } else if (strcmp(cmd, "S") == 0) {
            printf("S %lu %lu %lu %lu %lu\n", (unsigned long)parser.stats.frames,
                   (unsigned long)parser.stats.bad_crc, (unsigned long)parser.stats.bad_length,
                   (unsigned long)parser.stats.unknown_type, (unsigned long)parser.stats.garbage);
        }
    }
    return 0;
}
