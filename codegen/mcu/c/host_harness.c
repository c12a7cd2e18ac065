/* Host test harness of a generated rlmpc solver: one command per line on stdin.
 *   s x0[0] ... x0[NX-1]   solve (RTI: one step); prints "status iterations n_active u0[0] ... u0[NU-1]"
 *   p                      prints the plan of the last successful solve: x then u
 *   r                      forget the warm start (RTI: and the guess); prints "ok"
 *   g x[(N+1)*NX] u[N*NU]  (RTI solver, -DRLMPC_HARNESS_RTI) linearise the next solve here; prints "ok"
 *   q                      quit
 */
#include <stdio.h>
#ifdef RLMPC_HARNESS_RTI
#include "rlmpc_rti.h"
#else
#include "rlmpc_solver.h"
#endif

#define NXP ((RLMPC_HORIZON + 1) * RLMPC_NX)
#define NUP (RLMPC_HORIZON * RLMPC_NU)

static int read_reals(rlmpc_real *out, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        double v;
        if (scanf("%lf", &v) != 1) return 0;
        out[i] = (rlmpc_real)v;
    }
    return 1;
}

int main(void)
{
    char cmd[8];
    static rlmpc_real x[NXP], u[NUP];
    while (scanf("%7s", cmd) == 1) {
        int i;
        if (cmd[0] == 'r') {
            rlmpc_reset();
            printf("ok\n");
#ifdef RLMPC_HARNESS_RTI
        } else if (cmd[0] == 'g') {
            if (!read_reals(x, NXP) || !read_reals(u, NUP)) return 2;
            rlmpc_set_guess(x, u);
            printf("ok\n");
#endif
        } else if (cmd[0] == 's') {
            rlmpc_real x0[RLMPC_NX], u0[RLMPC_NU];
            rlmpc_solver_info info;
            if (!read_reals(x0, RLMPC_NX)) return 2;
            rlmpc_solve(x0, u0, &info);
            printf("%d %d %d", info.status, info.iterations, info.n_active);
            for (i = 0; i < RLMPC_NU; i++) printf(" %.17g", (double)u0[i]);
            printf("\n");
        } else if (cmd[0] == 'p') {
            rlmpc_get_plan(x, u);
            for (i = 0; i < NXP; i++) printf("%.17g ", (double)x[i]);
            for (i = 0; i < NUP; i++) printf("%.17g ", (double)u[i]);
            printf("\n");
        } else {
            return cmd[0] == 'q' ? 0 : 2;
        }
        fflush(stdout);
    }
    return 0;
}
