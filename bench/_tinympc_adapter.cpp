/* bench_solver.h over TinyMPC's generated code (float tinytype, no iostream), for QEMU. */
#include <stddef.h>
#include <stdint.h>
#include <tinympc/admm.hpp>
#include <tinympc/tiny_data.hpp>
extern "C" {
#include "bench_solver.h"
void __libc_init_array(void);
void *_sbrk(ptrdiff_t incr);
}

#ifndef TINY_HEAP_BYTES
#define TINY_HEAP_BYTES (160 * 1024)
#endif
static unsigned char heap[TINY_HEAP_BYTES]; /* Eigen's dynamic matrices (sized by the benchmark) */
static size_t heap_used = 0;

extern "C" void *_sbrk(ptrdiff_t incr)
{
    if (incr < 0 || heap_used + (size_t)incr > sizeof heap) return (void *)-1;
    void *p = heap + heap_used;
    heap_used += (size_t)incr;
    return p;
}

static int constructed = 0;

extern "C" int bench_solve(const float x0[], float u0[], int *iterations)
{
    if (!constructed) { __libc_init_array(); constructed = 1; }
    TinyWorkspace *w = tiny_solver.work;
    for (int i = 0; i < w->nx; i++) w->x(i, 0) = x0[i];
    solve(&tiny_solver);
    for (int i = 0; i < w->nu; i++) u0[i] = w->znew(i, 0);
    *iterations = w->iter;
    return tiny_solver.solution->solved ? 1 : -4;
}

extern "C" void bench_reset(void) {}

/* __libc_init_array calls _init after the preinit array (crti.o is not linked: -nostartfiles) */
extern "C" void _init(void) {}
