"""Images manifests: how an image URI runs as local processes.

SageMaker runs a container image; localmaker runs the same code as processes. A manifest maps
image URIs to commands, so the `train`/`serve` programs a Dockerfile puts on PATH run unchanged:

    images:
      dnn-regressor:                      # a label for messages
        repository: "(.*/)?dnn-regressor"  # regex, full match on the repository (registry host dropped)
        tag: ".*"                          # regex, full match on the tag (default ".*")
        workdir: dnn_regressor             # relative to the manifest's folder
        env: {SERVE_WITH_NGINX: "false"}
        train: ["{python}", "train"]
        serve: ["{python}", "serve"]
        process: ["{python}", "analyze"]   # optional; ContainerEntrypoint overrides it
        builtin: xgboost                   # optional: a built-in algorithm (localmaker/builtins)
        metrics:                           # optional: the algorithm's own MetricDefinitions
          - {Name: "validation:rmse", Regex: "validation-rmse:([0-9.]+)"}
        runtime: process                   # or sandbox (localmaker/sandbox.py): /opt/ml, /opt/program, port 8080;
                                           # or auto: sandbox where bubblewrap can run, else process
        sandbox_env: {PATH: "/opt/program:{bindir}:/usr/sbin:/usr/bin:/sbin:/bin"}  # auto only: env added
        process_env: {X: "1"}              #   when it runs sandboxed / as process
        mounts: {/opt/extra: extra}        # sandbox/auto only: more read-only folders at container paths

``{python}`` is the interpreter localmaker runs under, ``{workdir}`` the resolved working dir and
``{bindir}`` the interpreter's folder (in commands and ``env`` values, e.g.
``PATH: "/opt/program:{bindir}:/usr/bin:/bin"`` as a Dockerfile puts its programs on PATH).
A ``builtin`` image runs localmaker's own programs (``python -m localmaker.builtins.<algo>``): its
processes get ``PYTHONPATH`` set to :data:`CODE_ROOT`, the folder holding ``localmaker/`` and
``smformats/``, so they import both from any working directory.
Manifests given later take precedence, so a user's ``--images`` file can shadow the project's.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import sandbox as sandboxing

RUNTIMES = ("process", "sandbox", "auto")
log = logging.getLogger("localmaker.images")
#: the folder holding the ``localmaker`` and ``smformats`` packages (the project root in a checkout)
CODE_ROOT = Path(__file__).resolve().parents[1]


class ImageNotMapped(Exception):
    pass


class ManifestError(Exception):
    pass


class RuntimeUnavailable(ImageNotMapped):
    """The image's runtime cannot run on this machine (runtime: sandbox without bubblewrap)."""


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str

    @classmethod
    def parse(cls, uri: str) -> ImageRef:
        rest = uri.strip()
        registry = ""
        first, sep, remainder = rest.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            registry, rest = first, remainder
        tag = "latest"
        if "@" in rest:
            rest, tag = rest.split("@", 1)
        else:
            last = rest.rsplit("/", 1)[-1]
            if ":" in last:
                rest, tag = rest.rsplit(":", 1)
        return cls(registry, rest, tag)


@dataclass
class ImageSpec:
    label: str
    repository: re.Pattern[str]
    tag: re.Pattern[str]
    workdir: Path
    source: Path
    env: dict[str, str] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    builtin: str | None = None
    metrics: list[dict[str, str]] = field(default_factory=list)
    runtime: str = "process"
    mounts: dict[str, Path] = field(default_factory=dict)

    def command(self, role: str, override: list[str] | None = None) -> list[str]:
        cmd = override or self.commands.get(role)
        if not cmd:
            raise ImageNotMapped(
                f"image '{self.label}' in {self.source} has no '{role}' command; add one to the manifest"
            )
        if self.runtime == "sandbox":
            try:
                sandboxing.check(network=role == "serve", label=self.label)
            except sandboxing.SandboxUnavailable as exc:
                raise RuntimeUnavailable(str(exc)) from exc
        return [expand(part, self.workdir) for part in cmd]

    def sandbox(self, serving: bool = False) -> sandboxing.Sandbox | None:
        """How a Child runs this image's programs: None for runtime: process."""
        if self.runtime != "sandbox":
            return None
        mounts = tuple((inside, str(host)) for inside, host in self.mounts.items())
        return sandboxing.Sandbox(self.workdir, mounts, network=serving, label=self.label)


def expand(text: str, workdir: Path) -> str:
    return (
        text.replace("{python}", sys.executable)
        .replace("{bindir}", str(Path(sys.executable).parent))
        .replace("{workdir}", str(workdir))
    )


class ImageRegistry:
    def __init__(self, manifests: list[Path] | None = None) -> None:
        self.specs: list[ImageSpec] = []
        self.sources: list[Path] = []
        for m in manifests or []:
            self.load(m)

    def load(self, path: Path) -> None:
        path = Path(path).resolve()
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError as exc:
            raise ManifestError(f"images manifest {path} does not exist") from exc
        except yaml.YAMLError as exc:
            raise ManifestError(f"images manifest {path} is not valid YAML: {exc}") from exc
        images = data.get("images")
        if not isinstance(images, dict):
            raise ManifestError(f"{path}: top-level key 'images' must be a mapping of label -> spec")
        loaded = []
        for label, spec in images.items():
            loaded.append(self._spec(path, str(label), spec))
        # later manifests win: put them first
        self.specs = loaded + self.specs
        self.sources.append(path)

    @staticmethod
    def _spec(path: Path, label: str, spec: Any) -> ImageSpec:
        where = f"{path}: images.{label}"
        if not isinstance(spec, dict):
            raise ManifestError(f"{where}: must be a mapping")
        unknown = set(spec) - {"repository", "tag", "workdir", "env", "train", "serve", "process", "builtin", "metrics",
                                 "runtime", "mounts", "process_env",
                                 "sandbox_env"}
        if unknown:
            raise ManifestError(f"{where}: unknown keys {sorted(unknown)}")
        if "repository" not in spec:
            raise ManifestError(f"{where}.repository: required")
        try:
            repo = re.compile(str(spec["repository"]))
            tag = re.compile(str(spec.get("tag", ".*")))
        except re.error as exc:
            raise ManifestError(f"{where}: bad regex: {exc}") from exc
        commands: dict[str, list[str]] = {}
        for role in ("train", "serve", "process"):
            if role in spec:
                cmd = spec[role]
                if isinstance(cmd, str):
                    cmd = cmd.split()
                if not isinstance(cmd, list) or not all(isinstance(c, str) for c in cmd) or not cmd:
                    raise ManifestError(f"{where}.{role}: must be a non-empty list of strings")
                commands[role] = cmd
        env = spec.get("env") or {}
        if not isinstance(env, dict):
            raise ManifestError(f"{where}.env: must be a mapping")
        workdir = (path.parent / str(spec.get("workdir", "."))).resolve()
        metrics = spec.get("metrics") or []
        if not isinstance(metrics, list) or not all(
            isinstance(m, dict) and set(m) == {"Name", "Regex"} for m in metrics
        ):
            raise ManifestError(f"{where}.metrics: must be a list of {{Name, Regex}} mappings")
        for m in metrics:
            try:
                re.compile(str(m["Regex"]))
            except re.error as exc:
                raise ManifestError(f"{where}.metrics: bad regex for {m['Name']}: {exc}") from exc
        runtime = str(spec.get("runtime", "process"))
        if runtime not in RUNTIMES:
            raise ManifestError(f"{where}.runtime: must be one of {list(RUNTIMES)}, not {runtime!r}")
        mounts = spec.get("mounts") or {}
        if not isinstance(mounts, dict) or not all(str(k).startswith("/") for k in mounts):
            raise ManifestError(f"{where}.mounts: must map absolute container paths to folders")
        if mounts and runtime == "process":
            raise ManifestError(f"{where}.mounts: only a 'runtime: sandbox' image has container paths to map")
        by_runtime = {}
        for key in ("sandbox_env", "process_env"):
            extra = spec.get(key) or {}
            if not isinstance(extra, dict):
                raise ManifestError(f"{where}.{key}: must be a mapping")
            if extra and runtime != "auto":
                raise ManifestError(f"{where}.{key}: only for 'runtime: auto' (env for one of its two runtimes)")
            by_runtime[key.removesuffix("_env")] = extra
        if runtime == "auto":
            try:
                sandboxing.check(network=True, label=label)
                runtime = "sandbox"
            except sandboxing.SandboxUnavailable as exc:
                log.info("image %s: runtime auto runs as process: %s", label, exc)
                runtime = "process"
            env = {**env, **by_runtime[runtime]}
        env = {str(k): expand(str(v), workdir) for k, v in env.items()}
        if spec.get("builtin"):
            env = {"PYTHONPATH": str(CODE_ROOT), **env}
        return ImageSpec(
            label=label,
            repository=repo,
            tag=tag,
            workdir=workdir,
            source=path,
            env=env,
            commands=commands,
            builtin=spec.get("builtin"),
            metrics=[{"Name": str(m["Name"]), "Regex": str(m["Regex"])} for m in metrics],
            runtime=runtime,
            mounts={str(k): (path.parent / str(v)).resolve() for k, v in mounts.items()},
        )

    def resolve(self, uri: str) -> ImageSpec:
        ref = ImageRef.parse(uri)
        for spec in self.specs:
            if spec.repository.fullmatch(ref.repository) and spec.tag.fullmatch(ref.tag):
                return spec
        searched = ", ".join(str(s) for s in self.sources) or "(none given; pass --images FILE)"
        raise ImageNotMapped(
            f"Image '{uri}' (repository '{ref.repository}', tag '{ref.tag}') is not mapped to a local "
            f"command in any images manifest. Searched: {searched}"
        )
