"""Search strategies: Random, Grid and Bayesian (optuna's TPE through ask/tell), one interface."""

from __future__ import annotations

import itertools
import math
import random
import warnings
from typing import Any, Protocol

from .plan import Plan
from .ranges import Param


class Strategy(Protocol):
    """Suggests the next trial's tuned values (None when there is none left) and learns its objective."""

    def suggest(self) -> tuple[Any, dict[str, str]] | None: ...

    def report(self, token: Any, value: float | None) -> None: ...


class RandomStrategy:
    def __init__(self, params: list[Param], seed: int) -> None:
        self.params = params
        self.rng = random.Random(seed)

    def _draw(self, p: Param) -> Any:
        r = self.rng
        if p.kind == "Categorical":
            return r.choice(p.values)
        if p.kind == "Integer":
            lo, hi = int(p.low), int(p.high)
            if p.scaling == "Logarithmic":
                v = int(math.exp(r.uniform(math.log(lo), math.log(hi + 1))))
                return min(max(v, lo), hi)
            return r.randint(lo, hi)
        if p.scaling == "Logarithmic":
            v = math.exp(r.uniform(math.log(p.low), math.log(p.high)))
        elif p.scaling == "ReverseLogarithmic":
            v = 1.0 - math.exp(r.uniform(math.log(1.0 - p.high), math.log(1.0 - p.low)))
        else:
            v = r.uniform(p.low, p.high)
        return min(max(v, p.low), p.high)

    def suggest(self) -> tuple[Any, dict[str, str]] | None:
        return None, {p.name: p.fmt(self._draw(p)) for p in self.params}

    def report(self, token: Any, value: float | None) -> None:
        pass


class GridStrategy:
    def __init__(self, params: list[Param]) -> None:
        self.params = params
        axes = [p.values if p.kind == "Categorical" else list(range(int(p.low), int(p.high) + 1)) for p in params]
        self.size = math.prod(len(a) for a in axes)
        self._it = itertools.product(*axes)

    def suggest(self) -> tuple[Any, dict[str, str]] | None:
        combo = next(self._it, None)
        if combo is None:
            return None
        return None, {p.name: p.fmt(v) for p, v in zip(self.params, combo, strict=True)}

    def report(self, token: Any, value: float | None) -> None:
        pass


class BayesianStrategy:
    """TPE through optuna's ask/tell; ReverseLogarithmic is sampled log-scaled on 1 - x."""

    def __init__(
        self, params: list[Param], seed: int, minimize: bool, budget: int, history: list[tuple[dict[str, str], float]]
    ) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.params = params
        self.dists: dict[str, Any] = {}
        for p in params:
            if p.kind == "Categorical":
                self.dists[p.name] = optuna.distributions.CategoricalDistribution(tuple(p.values))
            elif p.kind == "Integer":
                self.dists[p.name] = optuna.distributions.IntDistribution(
                    int(p.low), int(p.high), log=p.scaling == "Logarithmic"
                )
            elif p.scaling == "ReverseLogarithmic":
                self.dists[p.name] = optuna.distributions.FloatDistribution(1.0 - p.high, 1.0 - p.low, log=True)
            else:
                self.dists[p.name] = optuna.distributions.FloatDistribution(
                    p.low, p.high, log=p.scaling == "Logarithmic"
                )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=max(2, min(10, budget // 4)), multivariate=True, constant_liar=True
            )
            self.study = optuna.create_study(direction="minimize" if minimize else "maximize", sampler=sampler)
        for tuned, value in history:  # warm start: what parent tuning jobs learned
            try:
                internal = {p.name: self._to_internal(p, tuned[p.name]) for p in params}
                trial = optuna.trial.create_trial(params=internal, distributions=self.dists, value=value)
                self.study.add_trial(trial)
            except (KeyError, ValueError):
                continue

    @staticmethod
    def _to_internal(p: Param, s: str) -> Any:
        if p.kind == "Categorical":
            if s not in p.values:
                raise ValueError(s)
            return s
        if not p.contains(s):
            raise ValueError(s)
        if p.kind == "Integer":
            return int(float(s))
        return 1.0 - float(s) if p.scaling == "ReverseLogarithmic" else float(s)

    def _external(self, p: Param, v: Any) -> str:
        if p.kind == "Continuous":
            v = 1.0 - v if p.scaling == "ReverseLogarithmic" else v
            v = min(max(float(v), p.low), p.high)
        return p.fmt(v)

    def suggest(self) -> tuple[Any, dict[str, str]] | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = self.study.ask(self.dists)
        return trial, {p.name: self._external(p, trial.params[p.name]) for p in self.params}

    def report(self, token: Any, value: float | None) -> None:
        if token is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if value is None or math.isnan(value):
                self.study.tell(token, state=self.optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(token, value)


def make_strategy(plan: Plan, history: list[tuple[dict[str, str], float]]) -> Strategy:
    """The plan's search strategy; Bayesian starts from ``history`` (what parent tuning jobs learned)."""
    if plan.strategy == "Grid":
        return GridStrategy(plan.params)
    if plan.strategy == "Bayesian":
        return BayesianStrategy(plan.params, plan.seed, plan.objective_type == "Minimize", plan.budget, history)
    return RandomStrategy(plan.params, plan.seed)
