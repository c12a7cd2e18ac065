/* bench_solver.h for a generated rlmpc solver (float32): rlmpc_solver.h, or rlmpc_rti.h
 * when compiled with -DBENCH_RTI (and -DBENCH_STARTUP_ITERATIONS=K). */
#include "bench_solver.h"
#ifdef BENCH_RTI
#include "rlmpc_rti.h"
#else
#include "rlmpc_solver.h"
#endif

#if !RLMPC_SINGLE_PRECISION
#error "the benchmark expects a float32 solver"
#endif

#ifdef BENCH_RTI
#ifndef BENCH_STARTUP_ITERATIONS
#error "an RTI benchmark needs -DBENCH_STARTUP_ITERATIONS (as the firmware's first step)"
#endif
static int cold = 1;
static float plan_x[(RLMPC_HORIZON + 1) * RLMPC_NX], plan_u[RLMPC_HORIZON * RLMPC_NU];
#endif

/* One control step as the firmware takes it (app/controller.c): an RTI solver's first step after
 * a reset iterates BENCH_STARTUP_ITERATIONS times, each linearised at the plan of the one before */
int bench_solve(const float x0[], float u0[], int *iterations)
{
    rlmpc_solver_info info;
    int status = rlmpc_solve(x0, u0, &info);
    *iterations = info.iterations;
#ifdef BENCH_RTI
    if (cold) {
        int k;
        for (k = 1; k < BENCH_STARTUP_ITERATIONS && status > 0; k++) {
            rlmpc_get_plan(plan_x, plan_u);
            rlmpc_set_guess(plan_x, plan_u);
            status = rlmpc_solve(x0, u0, &info);
            *iterations += info.iterations;
        }
        cold = 0;
    }
#endif
    return status;
}

void bench_reset(void)
{
    rlmpc_reset();
#ifdef BENCH_RTI
    cold = 1;
#endif
}
