/* bench_solver.h for a generated rlmpc solver (float32): rlmpc_solver.h, or rlmpc_rti.h
 * when compiled with -DBENCH_RTI. */
#include "bench_solver.h"
#ifdef BENCH_RTI
#include "rlmpc_rti.h"
#else
#include "rlmpc_solver.h"
#endif

#if !RLMPC_SINGLE_PRECISION
#error "the benchmark expects a float32 solver"
#endif

int bench_solve(const float x0[], float u0[], int *iterations)
{
    rlmpc_solver_info info;
    int status = rlmpc_solve(x0, u0, &info);
    *iterations = info.iterations;
    return status;
}

void bench_reset(void)
{
    rlmpc_reset();
}
