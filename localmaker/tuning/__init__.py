"""Hyperparameter tuning jobs: a scheduler per job that runs real training jobs as trials.

Each trial is an ordinary training job (CreateTrainingJob through the same control plane), named
as AWS names them, ``{tuning job}-{NNN}-{8 hex}``, with the definition's
``StaticHyperParameters`` plus the tuned values (as strings, as SageMaker passes every
hyperparameter) plus ``_tuning_objective_metric``, and ``TuningJobArn`` on its description.
The objective is the trial's ``FinalMetricDataList`` value for the objective metric (from the
algorithm's ``MetricDefinitions`` regexes over its log).

Strategies:

* ``Random``: independent draws (seeded by ``RandomSeed``; fixed default), honouring
  ``ScalingType`` (``Auto`` is linear; ``Logarithmic``; ``ReverseLogarithmic``).
* ``Bayesian``: optuna's TPE sampler (seeded) through ask/tell, with the constant-liar
  heuristic so parallel trials do not pile onto one point.
* ``Grid``: every combination of the categorical values (localmaker also enumerates integer
  ranges; AWS accepts only categorical ones), in order; the grid size is the budget and
  ``MaxNumberOfTrainingJobs``, when given, caps it.
* ``Hyperband`` is refused (ValidationException).

At most ``MaxParallelTrainingJobs`` trials run at once; at most ``MaxNumberOfTrainingJobs`` are
started. A failed trial counts (NonRetryableError, objective Failed) and the search goes on; the
tuning job fails only when no trial succeeds (after 5 failures without one success, as AWS does).
``TuningJobCompletionCriteria`` (target value, best objective not improving) end the search early.

Modules, imports pointing down the list: ``api`` (the operations, the describe view) -> ``scheduler`` (one
thread per job) -> ``strategies`` -> ``plan`` (the checked request, trial requests, the objective) ->
``ranges``.
"""

from __future__ import annotations

from .api import TuningService

__all__ = ["TuningService"]
