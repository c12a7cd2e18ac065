/* bench_solver.h without a solver (u0 = 0): the size and measurement baseline of the
 * benchmark program itself (board support, harness, tables). */
#include "bench_config.h"
#include "bench_solver.h"

int bench_solve(const float x0[], float u0[], int *iterations)
{
    int i;
    (void)x0;
    for (i = 0; i < BENCH_NU; i++) u0[i] = 0.0f;
    *iterations = 0;
    return 1;
}

void bench_reset(void)
{
}
