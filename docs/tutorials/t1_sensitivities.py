# %% [markdown]
# # Tutorial 1: define your MPC and check its sensitivities
#
# One definition in CasADi symbols gives the acados solvers for V, Q and π and the CasADi
# functions of their sensitivities ([Theory](../theory.md)). Here we define a small MPC of a
# cart on a track (a double integrator with an unknown mass and a soft position limit), solve it,
# and compare ∇θV, ∇θQ and ∇θπ with central finite differences of the solver itself.

# %%
import casadi as cs
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from rlmpc import MPC, ParametricMPC

mpc = ParametricMPC("tutorial_cart", nx=2, nu=1, horizon=15, discount=0.95)
x, u = mpc.x, mpc.u
mass = mpc.learnable("mass", 1.2, lb=0.2, ub=5.0)             # θ: a model parameter ...
q = mpc.learnable("q", [1.0, 0.2], lb=1e-3, ub=1e2)           # ... and cost weights
r = mpc.learnable("r", 0.1, lb=1e-3, ub=10.0)
dt = 0.1
mpc.discrete_dynamics(cs.vertcat(x[0] + dt * x[1], x[1] + dt * u[0] / mass), dt=dt)
mpc.stage_cost(cs.sum1(q * x**2) + r * u[0] ** 2)             # discounted by γ^k
mpc.terminal_cost(5.0 * cs.sumsqr(x))
mpc.input_bounds(-2.0, 2.0)
mpc.state_constraint("position", x[0], lb=-1.0, ub=1.0, soft=True,
                     linear_penalty=10.0, quadratic_penalty=100.0)

solver = MPC(mpc)   # generates and compiles the acados code once (cached by a hash of the problem)
print("θ:", solver.theta_dict())

# %% [markdown]
# ## V, Q and π at one state
#
# `value(s)` solves for V(s) (its first input is π(s)); `q_value(s, a)` fixes the first input.

# %%
s = np.array([0.8, -0.5])
v = solver.value(s)
q_sol = solver.q_value(s, [0.5])
print(f"V(s) = {v.value:.5f}   π(s) = {v.u0}   Q(s, 0.5) = {q_sol.value:.5f}   (status {v.message})")

fig, ax = plt.subplots(1, 2, figsize=(9, 3))
ax[0].plot(v.x[:, 0], label="position")
ax[0].plot(v.x[:, 1], label="velocity")
ax[0].axhline(-1.0, color="grey", ls=":")
ax[0].set_xlabel("stage k")
ax[0].legend()
ax[0].set_title("predicted states of V(s)")
ax[1].step(range(len(v.u)), v.u[:, 0], where="post", label="V: u = π")
ax[1].step(range(len(q_sol.u)), q_sol.u[:, 0], where="post", label="Q: u₀ fixed to 0.5")
ax[1].set_xlabel("stage k")
ax[1].legend()
ax[1].set_title("predicted inputs")
fig.tight_layout()
display(fig)
plt.close(fig)

# %% [markdown]
# ## Sensitivities against finite differences
#
# `grad_theta` evaluates ∂L/∂θ at the solver's primal-dual solution; `policy_jacobian` solves the
# KKT system on the active set, by a Riccati-type pass over the horizon for larger problems and a
# small reduced system here (both cost about linearly in the horizon; `method="dense"` is the dense
# reference). A central difference re-solves the MPC at θ ± h·eᵢ.

# %%
sens = solver.sensitivities
theta0 = solver.theta
h = 1e-5


def central_difference(fun):
    cols = []
    for i in range(theta0.size):
        e = np.zeros_like(theta0)
        e[i] = h
        solver.theta = theta0 + e
        plus = fun()
        solver.theta = theta0 - e
        minus = fun()
        cols.append((np.asarray(plus) - np.asarray(minus)) / (2 * h))
    solver.theta = theta0
    return np.array(cols).T


grad_v = sens.grad_theta(solver.value(s))
grad_q = sens.grad_theta(solver.q_value(s, [0.5]))
jac_pi = sens.policy_jacobian(solver.value(s))
fd_v = central_difference(lambda: solver.value(s).value)
fd_q = central_difference(lambda: solver.q_value(s, [0.5]).value)
fd_pi = central_difference(lambda: solver.value(s).u0)

for name, exact, fd in [("∇θV", grad_v, fd_v), ("∇θQ", grad_q, fd_q), ("∇θπ", jac_pi.ravel(), fd_pi.ravel())]:
    err = np.max(np.abs(exact - fd)) / max(1.0, np.max(np.abs(fd)))
    print(f"{name}: max relative difference to finite differences {err:.1e}")
    assert err < 1e-4, name

# %%
labels = solver.fns.theta.labels()
idx = np.arange(len(labels))
fig, ax = plt.subplots(1, 3, figsize=(11, 3))
for a, (title, exact, fd) in zip(ax, [("∇θV", grad_v, fd_v), ("∇θQ(s, 0.5)", grad_q, fd_q),
                                      ("∇θπ", jac_pi.ravel(), fd_pi.ravel())], strict=True):
    a.bar(idx - 0.2, exact, 0.4, label="sensitivities (Lagrangian / KKT)")
    a.bar(idx + 0.2, fd, 0.4, label="central finite differences")
    a.set_xticks(idx, labels)
    a.set_title(title)
ax[0].legend(fontsize=7)
fig.tight_layout()
display(fig)
plt.close(fig)
