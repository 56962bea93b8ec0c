"""Offline tools over full-information data and logged bandit feedback: simulation, off-policy
evaluation (``adaptroute.replay.ope``, estimators in ``adaptroute.replay.estimators``) and tuning."""
