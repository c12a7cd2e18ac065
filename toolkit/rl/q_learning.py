"""LSTD Q-learning of MPC parameters (first and second order), as in Gros & Zanon (2020).

Per transition (s, a, L, s⁺) the agent solves Q_θ(s, a) and V_θ(s⁺) (whose u0 is
also the next action), forms the TD error δ = L + γ V_θ(s⁺) − Q_θ(s, a), and stores
the sample gradient −δ ∇θQ and, for second order, the sample Hessian
∇θQ ∇θQᵀ − δ ∇²θQ.  Every ``update_every`` steps the stored samples drawn from
the replay buffer are averaged and handed to the optimiser (Newton for second
order), which enforces the θ bounds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlmpc.toolkit.mpc import MPC, MpcSolution
from rlmpc.toolkit.parameters import FloatArray
from rlmpc.toolkit.rl.agent import MpcAgent
from rlmpc.toolkit.rl.exploration import Exploration
from rlmpc.toolkit.rl.native_q_step import DONE, UPDATE, NativeQStep, native_q_step
from rlmpc.toolkit.rl.optimizers import NewtonMethod, Optimizer
from rlmpc.toolkit.rl.replay import ReplayBuffer

HESSIANS = ("none", "approx", "full")


class LstdQLearning(MpcAgent):
    """Q-learning with an MPC as Q-function approximator.

    Parameters
    ----------
    order : {1, 2}
        1: first-order updates from the averaged gradient; 2: Newton-type updates
        with the averaged Hessian ∇θQ ∇θQᵀ − δ ∇²θQ.
    hessian : {"approx", "full", "none"}
        ∇²θQ as ∂²L/∂θ² at fixed primal-dual solution (``approx``), with the KKT
        term (``full``, slower), or zero (``none``, Gauss-Newton-like).
    update_every : int
        Steps between θ updates.
    replay : ReplayBuffer
        Experience replay of (gradient, Hessian) samples.
    native : bool
        Run the common case (Newton updates every step with ``hessian="approx"``, the default replay,
        no device) as one compiled step where a C compiler is at hand: the same numbers, faster
        (:mod:`rlmpc.toolkit.rl.native_q_step`).  False: always the Python path.
    """

    def __init__(self, mpc: MPC, discount: float, optimizer: Optimizer,
                 exploration: Exploration, rng: np.random.Generator, replay: ReplayBuffer,
                 order: int = 2, hessian: str = "approx", update_every: int = 1,
                 failure_action: str = "solution", native: bool = True) -> None:
        super().__init__(mpc, discount, optimizer, exploration, rng, failure_action)
        if order not in (1, 2):
            raise ValueError(f"agent.order: expected 1 or 2, got {order!r}")
        if hessian not in HESSIANS:
            raise ValueError(f"agent.hessian: expected one of {list(HESSIANS)}, got {hessian!r}")
        if not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"agent.update_every: expected a positive integer, got {update_every!r}")
        self.order = order
        self.hessian = hessian
        self.update_every = update_every
        self.replay = replay
        self.native = native  # the compiled step where it applies (rlmpc.toolkit.rl.native_q_step)
        _ = mpc.sensitivities  # transcribe the NLP now (~50 ms), not in the first learning step
        # the compiled step, built now (not in the first learning step) where its case applies
        other = [why for why, differs in (
            ("agent.native = false", not native), ("order 1", order != 2),
            (f"hessian {hessian!r}", hessian != "approx"), ("update_every > 1", update_every != 1),
            ("a replay buffer", replay.capacity != 1 or replay.sample_size != 1),
            (f"optimizer {optimizer.kind!r}", not isinstance(optimizer, NewtonMethod)),
            ("max_relative_step", getattr(optimizer, "max_relative_step", None) is not None),
            ("solver warm_start = false", not mpc.options.warm_start)) if differs]
        built = native_q_step(mpc, optimizer, self.discount) if not other else "; ".join(other)  # type: ignore[arg-type]
        self._native: NativeQStep | None = built if isinstance(built, NativeQStep) else None
        self._native_off = built if isinstance(built, str) else ""

    def observe(self, s: FloatArray, a: FloatArray, cost: float, s_next: FloatArray,
                terminated: bool) -> tuple[FloatArray, dict[str, float]]:
        native = self._native_step()
        sample: dict[str, FloatArray] | None = None
        lr = self.optimizer.lr(self.optimizer.k) * self.optimizer.lr_scale
        if native is not None and lr >= 0.0:  # (a negative rate: the optimiser's own error)
            outcome = native.run(s, a, cost, s_next, terminated, lr)
            if outcome == DONE:
                return self._after_native_update(native)
            q, v = native.solutions(s, a, s_next)
            if outcome == UPDATE:
                sample = native.sample()
        else:
            if self.greedy_prefetch is not None:  # the next action is π_θ(s_next) at the θ before this update
                self.greedy_prefetch(s_next, self.mpc.theta, self.mpc.p)
            q, v = self.mpc.q_and_value(s, a, s_next)
        return self._learn(q, v, cost, terminated, sample)

    def _native_step(self) -> NativeQStep | None:
        """The compiled step (:mod:`rlmpc.toolkit.rl.native_q_step`) for this agent's common case:
        Newton updates on every step from the approximate Hessian, the default replay, no device."""
        return self._native if self._compiled_step_usable() else None

    def _after_native_update(self, native: NativeQStep) -> tuple[FloatArray, dict[str, float]]:
        """What `_learn` does after a step C has done completely (solves, sample, Newton update)."""
        self.replay.append(native.sample())
        self.steps += 1
        native.commit_theta()
        self.optimizer.k += 1
        self.updates += 1
        return self._act(native.next_greedy_action(), explore=True), {"td_error": native.td}

    def _learn(self, q: MpcSolution, v: MpcSolution, cost: float, terminated: bool,
               sample: dict[str, FloatArray] | None) -> tuple[FloatArray, dict[str, float]]:
        """The TD error, the sample (unless given) and the update from the two solutions."""
        sens = self.mpc.sensitivities
        info: dict[str, float] = {}
        if not q.success:
            self.failures.record("Q", q)
        if not v.success:
            self.failures.record("V", v)
        if q.success and v.success:
            target = cost + (0.0 if terminated else self.discount * v.value)
            td = target - q.value
            info["td_error"] = td
            if sample is not None:
                pass  # (computed by the compiled step, the same numbers)
            elif self.order == 2 and self.hessian != "none":
                if self.hessian == "full":
                    grad = sens.grad_theta(q)
                    hess_q = sens.hessian_theta(q, full=True)
                else:
                    grad, hess_q = sens.grad_and_hessian_theta(q)
                # grad[:, None] * grad[None, :] is np.outer(grad, grad), without its wrapper
                sample = {"g": -td * grad, "H": grad[:, None] * grad[None, :] - td * hess_q}
            elif self.order == 2:
                grad = sens.grad_theta(q)
                sample = {"g": -td * grad, "H": np.outer(grad, grad)}
            else:
                sample = {"g": -td * sens.grad_theta(q)}
            self.replay.append(sample)
        else:
            self.failures.skipped_updates += 1
        self.steps += 1
        if self.steps % self.update_every == 0 and len(self.replay):
            batch = self.replay.sample(self.rng)
            if len(batch) == 1:  # the default replay: the mean of one sample is that sample
                grad = batch[0]["g"]
                hess = batch[0]["H"] if self.order == 2 else None
            else:
                grad = np.mean([b["g"] for b in batch], axis=0)
                hess = np.mean([b["H"] for b in batch], axis=0) if self.order == 2 else None
            self._update(grad, hess)
        next_action = self._action_from(v, explore=True)
        return next_action, info

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["replay"] = self.replay.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.replay.load_state_dict(state["replay"])
