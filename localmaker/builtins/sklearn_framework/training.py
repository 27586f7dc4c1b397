"""sklearn_framework: hyperparameters, the algorithm and the ``train`` entry point."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from localmaker.builtins import runtime
from localmaker.builtins.runtime import ClientError, TrainingEnv

from .toolkit import (
    _ERROR_MESSAGE_CHARS,
    _PYTHON_ERRORS,
    FRAMEWORK_MODULE,
    SAGEMAKER_HYPERPARAMETERS,
    _check_program,
    _configure_logging,
    _log_level,
    check_requirements,
    decode_hyperparameters,
    fetch_code,
    log,
    module_name_of,
    split_hyperparameters,
    to_cmd_args,
    to_env_vars,
)


def build_command(code_dir: Path, program: str, args: list[str]) -> list[str]:
    """The toolkit's ProcessRunner command for the entry point type (_entry_point_type.get)."""
    if program.endswith(".sh"):
        (code_dir / program).chmod(0o755)
        return ["/bin/sh", "-c", f"./{program} {' '.join(args)}"]
    if (code_dir / "setup.py").exists():
        return [sys.executable, "-m", module_name_of(program), *args]
    if program.endswith(".py"):
        return [sys.executable, program, *args]
    if program.startswith("-m "):
        return [sys.executable, "-m", program[3:].strip(), *args]
    (code_dir / program).chmod(0o755)
    return ["/bin/sh", "-c", f"./{program} {' '.join(args)}"]


def training_environment(env: TrainingEnv, framework_hps: Mapping[str, Any], user_hps: Mapping[str, Any],
                         program: str, module_dir: str, log_level: int) -> dict[str, str]:
    """Environment.to_env_vars(): the ``SM_*`` variables the toolkit gives the user's script."""
    resource_file = env.base / "input" / "config" / "resourceconfig.json"
    resource = json.loads(resource_file.read_text()) if resource_file.is_file() else {}
    group = resource.get("current_group_name", "homogeneousCluster")
    groups = resource.get("instance_groups") or []
    group_hosts = next((g.get("hosts", []) for g in groups if g.get("instance_group_name") == group), [])
    channels = {c: str(env.channel_dir(c)) for c in env.channels}
    additional = {k: v for k, v in framework_hps.items() if k not in SAGEMAKER_HYPERPARAMETERS}
    num_cpus = int(os.environ.get("SM_NUM_CPUS") or os.cpu_count() or 1)
    base = env.base
    props: dict[str, Any] = {
        "additional_framework_parameters": additional,
        "channel_input_dirs": channels,
        "current_host": env.current_host,
        "current_instance_group": group,
        "current_instance_group_hosts": group_hosts,
        "current_instance_type": resource.get("current_instance_type", "local"),
        "distribution_hosts": [],
        "distribution_instance_groups": [],
        "framework_module": FRAMEWORK_MODULE,
        "hosts": env.hosts,
        "hyperparameters": dict(user_hps),
        "input_config_dir": str(base / "input" / "config"),
        "input_data_config": env.channels,
        "input_dir": str(base / "input"),
        "instance_groups": [g.get("instance_group_name") for g in groups],
        "instance_groups_dict": {g.get("instance_group_name"): g for g in groups},
        "is_hetero": len(groups) > 1,
        "is_master": env.current_host == env.hosts[0],
        "is_modelparallel_enabled": None,
        "job_name": os.environ.get("TRAINING_JOB_NAME"),
        "log_level": log_level,
        "master_hostname": env.hosts[0],
        "model_dir": str(env.model_dir),
        "module_dir": module_dir,
        "module_name": module_name_of(program),
        "network_interface_name": resource.get("network_interface_name", "eth0"),
        "num_cpus": num_cpus,
        "num_gpus": 0,
        "output_data_dir": str(env.output_data_dir),
        "output_dir": str(base / "output"),
        "output_intermediate_dir": str(base / "output" / "intermediate"),
        "resource_config": resource,
        "user_entry_point": program,
    }
    mapping: dict[str, Any] = {
        "hosts": env.hosts,
        "network_interface_name": props["network_interface_name"],
        "hps": dict(user_hps),
        "user_entry_point": program,
        "framework_params": additional,
        "resource_config": resource,
        "input_data_config": env.channels,
        "output_data_dir": props["output_data_dir"],
        "channels": sorted(channels),
        "current_host": env.current_host,
        "current_instance_type": props["current_instance_type"],
        "current_instance_group": group,
        "current_instance_group_hosts": group_hosts,
        "instance_groups": props["instance_groups"],
        "instance_groups_dict": props["instance_groups_dict"],
        "distribution_instance_groups": [],
        "is_hetero": props["is_hetero"],
        "module_name": props["module_name"],
        "log_level": log_level,
        "framework_module": FRAMEWORK_MODULE,
        "input_dir": props["input_dir"],
        "input_config_dir": props["input_config_dir"],
        "output_dir": props["output_dir"],
        "num_cpus": num_cpus,
        "num_gpus": 0,
        "model_dir": props["model_dir"],
        "module_dir": module_dir,
        "training_env": props,
        "user_args": to_cmd_args(user_hps),
        "output_intermediate_dir": props["output_intermediate_dir"],
    }
    for name, path in channels.items():
        mapping[f"channel_{name}"] = path
    for key, value in user_hps.items():
        mapping[f"hp_{key}"] = value
    return to_env_vars(mapping)


def error_message(stderr_lines: list[str]) -> str:
    """The toolkit's ErrorMessage: stderr from the first line naming a Python error on (else its tail)."""
    start = next((i for i, line in enumerate(stderr_lines) if any(e in line for e in _PYTHON_ERRORS)), None)
    lines = stderr_lines[start:] if start is not None else stderr_lines[-10:]
    text = "\n".join(line.rstrip() for line in lines).strip()
    if len(text) > _ERROR_MESSAGE_CHARS:
        text = "..." + text[-_ERROR_MESSAGE_CHARS:]
    return text


def execute_user_script_error(code: int, stderr_lines: list[str], cmd: list[str]) -> str:
    """errors.ExecuteUserScriptError's text; SageMaker prefixes it with ``AlgorithmError: ``."""
    return f'ExecuteUserScriptError:\nExitCode {code}\nErrorMessage "{error_message(stderr_lines)}"\nCommand "{" ".join(cmd)}"'


def run_user_script(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    """Run the script; stdout and stderr stream to the job log, stderr's tail is kept for the reason."""
    proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, stdout=None,
                            stderr=subprocess.PIPE)
    tail: collections.deque[str] = collections.deque(maxlen=200)
    assert proc.stderr is not None
    for raw in iter(proc.stderr.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        sys.stderr.write(line)
        sys.stderr.flush()
        tail.append(line.rstrip("\n"))
    proc.stderr.close()
    return proc.wait(), list(tail)


def train(env: TrainingEnv) -> None:
    """Fetch the user's code, check requirements, run the entry point as the toolkit does."""
    hps = decode_hyperparameters(env.hyperparameters)
    framework, user = split_hyperparameters(hps)
    log_level = _log_level(framework.get("sagemaker_container_log_level"))
    _configure_logging(log_level)
    log.info("Imported framework sagemaker_sklearn_container.training (localmaker)")

    program = os.environ.get("SAGEMAKER_PROGRAM") or framework.get("sagemaker_program")
    if not program or not isinstance(program, str):
        raise ClientError(
            "The SageMaker scikit-learn container runs your training script (script mode): the hyperparameter "
            "'sagemaker_program' naming the entry point (e.g. \"train.py\", JSON-encoded as the SageMaker "
            "Python SDK sends it) is missing. Set it together with 'sagemaker_submit_directory' "
            "(s3://.../sourcedir.tar.gz holding the script), or use SKLearn(entry_point=...) in the SDK."
        )
    submit = os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or framework.get("sagemaker_submit_directory")
    if not submit or not isinstance(submit, str):
        raise ClientError(
            f"The hyperparameter 'sagemaker_submit_directory' is missing: localmaker cannot find the code for "
            f"'{program}'. Set it to the S3 URI of a sourcedir.tar.gz with your script at its root "
            "(the SageMaker Python SDK uploads one for SKLearn(entry_point=..., source_dir=...))."
        )
    if framework.get("sagemaker_job_name"):
        os.environ["SAGEMAKER_JOB_NAME"] = str(framework["sagemaker_job_name"])
    if framework.get("sagemaker_region"):
        os.environ["SAGEMAKER_REGION"] = str(framework["sagemaker_region"])

    code_dir = env.base / "code"
    fetch_code(submit, code_dir)
    entry = program[3:].strip() if program.startswith("-m ") else program
    _check_program(entry, code_dir, "sagemaker_program")
    if not program.startswith("-m ") and not (code_dir / entry).exists() and not (code_dir / "setup.py").exists():
        present = sorted(p.name for p in code_dir.iterdir())[:20]
        raise ClientError(
            f"The entry point '{program}' (sagemaker_program) is not at the root of sagemaker_submit_directory "
            f"{submit}; it holds: {', '.join(present) or '(nothing)'}"
        )
    if (code_dir / "setup.py").exists():
        log.info("setup.py found: running '%s' as a module with %s on PYTHONPATH (localmaker does not "
                 "pip-install the package)", module_name_of(program), code_dir)
    check_requirements(code_dir)

    args = to_cmd_args(user)
    cmd = build_command(code_dir, program, args)
    sm_vars = training_environment(env, framework, user, program, submit, log_level)
    proc_env = {k: v for k, v in os.environ.items() if not k.startswith("SM_HP_")}
    proc_env.update(sm_vars)
    proc_env["CURRENT_HOST"] = env.current_host
    proc_env.setdefault("SAGEMAKER_JOB_NAME", "")
    proc_env.setdefault("SAGEMAKER_REGION", os.environ.get("AWS_REGION", ""))
    proc_env["PYTHONPATH"] = os.pathsep.join([str(code_dir), *[p for p in sys.path if p]])
    proc_env.setdefault("PYTHONUNBUFFERED", "1")

    log.info("Invoking user script")
    log.info("Training Env:\n\n%s\n", json.dumps(json.loads(sm_vars["SM_TRAINING_ENV"]), indent=4, sort_keys=True))
    log.info("Invoking script with the following command:\n\n%s\n", " ".join(cmd))
    code, stderr_lines = run_user_script(cmd, code_dir, proc_env)
    if code != 0:
        log.error("Reporting training FAILURE")
        raise SystemExit(runtime.fail(execute_user_script_error(code, stderr_lines, cmd), env.base))
    (env.base / "output").mkdir(parents=True, exist_ok=True)
    (env.base / "output" / "success").write_text("")
    log.info("Reporting training SUCCESS")
