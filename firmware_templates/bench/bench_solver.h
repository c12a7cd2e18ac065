/* The solver under test behind one small interface, so that one benchmark program
 * measures every solver the same way.  Adapters: bench_rlmpc.c (generated rlmpc solver,
 * linear or RTI) and bench_osqp.c (OSQP's generated code). */
#ifndef BENCH_SOLVER_H
#define BENCH_SOLVER_H

/* One control step from state x0: the input u0, the solver's iteration count; returns the
 * solver's status (> 0: solved). */
int bench_solve(const float x0[], float u0[], int *iterations);

/* Forget warm starts (start of an episode). */
void bench_reset(void);

#endif /* BENCH_SOLVER_H */
