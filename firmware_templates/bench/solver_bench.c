/* Bare-metal benchmark of an MPC solver: instructions per control step.
 *
 * The generated bench_data.h holds the episodes (static const tables; sizes and the mode
 * in bench_config.h).  Each episode
 * starts with bench_reset(); then either
 *   - closed loop (BENCH_CLOSED_LOOP 1): from the episode's initial state, the plant
 *     x+ = A x + B u + c (float, BENCH_A/B/C) is driven by the solver's input, or
 *   - replay (BENCH_CLOSED_LOOP 0): the episode's states are solved in order.
 * board_cycles() brackets every bench_solve() call (under QEMU -icount shift=0 the
 * difference is the exact instruction count, resolution 40).
 *
 * Output (UART, one line each; floats as the 8 hex digits of their IEEE-754 bits):
 *   o <empty-measurement count>
 *   s <episode> <step> <count> <status> <iterations> <x[0..NX-1]> <u[0..NU-1]>
 *   e <steps>
 * then the program exits with code 0 (semihosting).  No printf: a few formatters below.
 */
#include <stddef.h>
#include <stdint.h>

#include "bench_data.h"
#include "bench_solver.h"
#include "board.h"

#define NX BENCH_NX
#define NU BENCH_NU

static void put(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0') n++;
    board_uart_write((const uint8_t *)s, n);
}

static void put_uint(uint32_t v)
{
    char buf[12];
    int i = 11;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    put(&buf[i]);
}

static void put_int(int v)
{
    if (v < 0) {
        put("-");
        put_uint(0u - (uint32_t)v);
    } else {
        put_uint((uint32_t)v);
    }
}

static void put_bits(float f)
{
    static const char digits[] = "0123456789abcdef";
    union {
        float f;
        uint32_t u;
    } c;
    char buf[10];
    int i;
    c.f = f;
    buf[0] = ' ';
    for (i = 0; i < 8; i++) buf[1 + i] = digits[(c.u >> (28 - 4 * i)) & 0xFu];
    buf[9] = '\0';
    put(buf);
}

#if BENCH_CLOSED_LOOP
static void plant_step(float x[NX], const float u[NU])
{
    float next[NX];
    int i, j;
    for (i = 0; i < NX; i++) {
        float s = BENCH_C[i];
        for (j = 0; j < NX; j++) s += BENCH_A[i * NX + j] * x[j];
        for (j = 0; j < NU; j++) s += BENCH_B[i * NU + j] * u[j];
        next[i] = s;
    }
    for (i = 0; i < NX; i++) x[i] = next[i];
}
#endif

int main(void)
{
    uint32_t t0, t1, row = 0, n_steps = 0;
    int episode, step, i;
    board_init();
    t0 = board_cycles();
    t1 = board_cycles();
    put("o ");
    put_uint(t1 - t0);
    put("\n");
    for (episode = 0; episode < BENCH_N_EPISODES; episode++) {
        float x[NX], u[NU];
        bench_reset();
        for (i = 0; i < NX; i++) x[i] = BENCH_STATES[row][i];
        for (step = 0; step < (int)BENCH_STEPS[episode]; step++) {
            int status, iterations = 0;
#if !BENCH_CLOSED_LOOP
            for (i = 0; i < NX; i++) x[i] = BENCH_STATES[row + (uint32_t)step][i];
#endif
            t0 = board_cycles();
            status = bench_solve(x, u, &iterations);
            t1 = board_cycles();
            put("s ");
            put_int(episode);
            put(" ");
            put_int(step);
            put(" ");
            put_uint(t1 - t0);
            put(" ");
            put_int(status);
            put(" ");
            put_int(iterations);
            for (i = 0; i < NX; i++) put_bits(x[i]);
            for (i = 0; i < NU; i++) put_bits(u[i]);
            put("\n");
            n_steps++;
#if BENCH_CLOSED_LOOP
            plant_step(x, u);
#endif
        }
        row += BENCH_CLOSED_LOOP ? 1u : BENCH_STEPS[episode];
    }
    put("e ");
    put_uint(n_steps);
    put("\n");
    return 0;
}
