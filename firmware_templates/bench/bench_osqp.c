/* bench_solver.h for OSQP's generated code (embedded mode 1, float): the QP's constant
 * bounds come from the generated osqp_bench_data.h; the first BENCH_OSQP_NX0 rows fix the
 * initial state (l = u = x0), so a step updates those bounds and solves (warm-started
 * from the previous solution, OSQP's default).  Returns OSQP_SOLVED (1) or
 * OSQP_SOLVED_INACCURATE (2), or minus OSQP's status (e.g. -7: iteration limit). */
#include "bench_solver.h"
#include "osqp.h"
#include "osqp_bench_data.h"

static OSQPFloat lower[BENCH_OSQP_M], upper[BENCH_OSQP_M];
static OSQPFloat zeros_x[BENCH_OSQP_N], zeros_y[BENCH_OSQP_M];
static int loaded;

int bench_solve(const float x0[], float u0[], int *iterations)
{
    int i;
    OSQPInt status;
    if (!loaded) {
        for (i = 0; i < BENCH_OSQP_M; i++) {
            lower[i] = BENCH_OSQP_L[i];
            upper[i] = BENCH_OSQP_U[i];
        }
        loaded = 1;
    }
    for (i = 0; i < BENCH_OSQP_NX0; i++) lower[i] = upper[i] = (OSQPFloat)x0[i];
    status = osqp_update_data_vec(&BENCH_OSQP_SOLVER, OSQP_NULL, lower, upper);
    if (status != 0) {
        *iterations = 0;
        return -1000 - (int)status;
    }
    (void)osqp_solve(&BENCH_OSQP_SOLVER);
    for (i = 0; i < BENCH_OSQP_NU; i++) u0[i] = (float)BENCH_OSQP_SOLVER.solution->x[BENCH_OSQP_U0_INDEX + i];
    *iterations = (int)BENCH_OSQP_SOLVER.info->iter;
    status = BENCH_OSQP_SOLVER.info->status_val; /* OSQP's codes are all positive */
    return (status == OSQP_SOLVED || status == OSQP_SOLVED_INACCURATE) ? (int)status : -(int)status;
}

void bench_reset(void)
{
    (void)osqp_warm_start(&BENCH_OSQP_SOLVER, zeros_x, zeros_y);
}
