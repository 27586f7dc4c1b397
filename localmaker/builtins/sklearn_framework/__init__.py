"""SageMaker's scikit-learn framework image (``sagemaker-scikit-learn:1.2-1-cpu-py3``) in script mode.

Unlike the first-party algorithms, this image runs the *user's* code. It is the
sagemaker-scikit-learn-container on top of the sagemaker-training-toolkit (training) and the
sagemaker-containers / sagemaker-inference-toolkit transformer (serving); this module follows them:

Training (``train``)
    The SageMaker Python SDK sends the entry point as framework hyperparameters, each JSON-encoded:
    ``sagemaker_program`` (``"\"train.py\""``), ``sagemaker_submit_directory`` (an S3 URI of a
    ``sourcedir.tar.gz``, or a local ``file://`` path in local mode), ``sagemaker_container_log_level``,
    ``sagemaker_job_name``, ``sagemaker_region``. The code is fetched into ``<base>/code``
    (``/opt/ml/code``) and run as the toolkit runs it: ``python <program> --hp1 v1 --hp2 v2`` with the
    *user* hyperparameters only (``sagemaker_*`` removed, values JSON-decoded, keys sorted), cwd = the
    code dir, and the toolkit's ``SM_*`` environment (``SM_USER_ARGS``, ``SM_MODULE_DIR``,
    ``SM_USER_ENTRY_POINT``, ``SM_FRAMEWORK_PARAMS``, ``SM_HPS``, ``SM_HP_<NAME>``, ``SM_TRAINING_ENV``...).
    A non-zero exit fails the job with the toolkit's reason, ``ExecuteUserScriptError:`` + ``ExitCode``,
    ``ErrorMessage`` (the script's stderr from its first error line) and ``Command``.

    ``requirements.txt``: the real toolkit pip-installs it before running the script. localmaker runs
    scripts with the Python environment it runs under and never installs per-job packages (no network
    assumptions, no cross-job pollution), so: if every listed requirement is already installed at a
    matching version the job logs that and continues; otherwise it fails at once with a ClientError
    naming what is missing and what is installed.

Serving (``serve``)
    The Model's ``Environment`` names the code: ``SAGEMAKER_PROGRAM`` and ``SAGEMAKER_SUBMIT_DIRECTORY``
    (an S3 ``sourcedir.tar.gz``, or ``/opt/ml/model/code`` when the SDK repacked the code into
    ``model.tar.gz`` under ``code/``). The module is imported and its ``model_fn`` (required: the
    container's default raises "Please provide a model_fn implementation."), ``input_fn``, ``predict_fn``,
    ``output_fn`` or ``transform_fn`` are used, else the container's defaults: ``input_fn`` decodes
    ``application/json``, ``text/csv``, ``application/x-npy`` to a numpy array (float32 for JSON/CSV);
    ``predict_fn`` calls ``model.predict``; ``output_fn`` encodes to the Accept type (JSON/CSV/NPY;
    ``*/*`` or none -> ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` or JSON). An unsupported request type is
    415 and an unsupported Accept 406, with the toolkit's ``UnsupportedFormatError`` text.

Kept as on AWS, surprising as it is: a one-row ``text/csv`` body squeezes to a 1-D array, which
sklearn's ``predict`` rejects (500, "Expected 2D array"); send two or more rows or write an input_fn.

Where localmaker differs on purpose:
    * a body the default ``input_fn`` cannot decode, or a user ``input_fn`` raising ValueError /
      TypeError / KeyError / IndexError / a decode error, answers 400 naming the cause (the real
      container answers 500 with Flask's generic page); ``predict_fn`` / ``output_fn`` failures answer
      500, AWS's status code, with the exception text;
    * the model is loaded before the server forks, so a missing ``model_fn`` (or an import error) makes
      the container exit at once and the endpoint fail, the reason in its CloudWatch log stream;
    * ``application/x-npy`` bodies load with ``allow_pickle=False`` (the real container allows pickled
      object arrays, i.e. code execution from a request body);
    * media-type parameters (``text/csv; charset=utf-8``) are ignored and a multi-valued Accept picks
      the first type the default ``output_fn`` can write;
    * a ``setup.py`` code dir runs as ``python -m <module>`` with the code dir on ``PYTHONPATH``
      (the toolkit pip-installs the package first).

The parts (``python -m localmaker.builtins.sklearn_framework train|serve`` runs :mod:`.__main__`):

* :mod:`.toolkit` - the sagemaker-training toolkit's side both ``train`` and ``serve`` share: its constants, hyperparameters, logging and the user's code (fetching it, its requirements, its module).
* :mod:`.training` - hyperparameters, the algorithm and the ``train`` entry point.
* :mod:`.serving` - loading the model and answering ``/invocations``.
"""

from __future__ import annotations

from .serving import (
    DECODERS,
    ENCODERS,
    Handler,
    UnsupportedFormatError,
    array_to_csv,
    array_to_json,
    array_to_npy,
    choose_accept,
    csv_to_numpy,
    default_input_fn,
    default_model_fn,
    default_output_fn,
    default_predict_fn,
    import_user_module,
    invoke,
    json_to_numpy,
    load_handler,
    npy_to_numpy,
    resolve_code_dir,
    serve,
)
from .toolkit import (
    CSV,
    FRAMEWORK_MODULE,
    JSON,
    NPY,
    SAGEMAKER_HYPERPARAMETERS,
    SAGEMAKER_PREFIX,
    UTF8_TYPES,
    check_requirements,
    decode_hyperparameters,
    fetch_code,
    log,
    module_name_of,
    split_hyperparameters,
    to_cmd_args,
    to_env_vars,
)
from .training import (
    build_command,
    error_message,
    execute_user_script_error,
    run_user_script,
    train,
    training_environment,
)

__all__ = [
    'CSV',
    'DECODERS',
    'ENCODERS',
    'FRAMEWORK_MODULE',
    'Handler',
    'JSON',
    'NPY',
    'SAGEMAKER_HYPERPARAMETERS',
    'SAGEMAKER_PREFIX',
    'UTF8_TYPES',
    'UnsupportedFormatError',
    'array_to_csv',
    'array_to_json',
    'array_to_npy',
    'build_command',
    'check_requirements',
    'choose_accept',
    'csv_to_numpy',
    'decode_hyperparameters',
    'default_input_fn',
    'default_model_fn',
    'default_output_fn',
    'default_predict_fn',
    'error_message',
    'execute_user_script_error',
    'fetch_code',
    'import_user_module',
    'invoke',
    'json_to_numpy',
    'load_handler',
    'log',
    'module_name_of',
    'npy_to_numpy',
    'resolve_code_dir',
    'run_user_script',
    'serve',
    'split_hyperparameters',
    'to_cmd_args',
    'to_env_vars',
    'train',
    'training_environment',
]
