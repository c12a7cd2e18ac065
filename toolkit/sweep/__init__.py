"""Scale-out on Ray: hyper-parameter sweeps of training runs (``rlmpc sweep``, Ray Tune) and batched
greedy evaluation of θ files (``rlmpc evaluate``, Ray tasks).

:mod:`~rlmpc.toolkit.sweep.space` reads the sweep file and expands its trials,
:mod:`~rlmpc.toolkit.sweep.trial` runs one trial as an ordinary training run,
:mod:`~rlmpc.toolkit.sweep.ray_session` starts (or joins) Ray,
:mod:`~rlmpc.toolkit.sweep.tune_run` drives Ray Tune, :mod:`~rlmpc.toolkit.sweep.results` writes the
table, the plot and the best θ, :mod:`~rlmpc.toolkit.sweep.evaluate` runs the evaluation.  Ray is an
optional dependency (the ``scale`` extra); nothing here imports it until a command needs it.
"""
