from __future__ import annotations

import sys
from pathlib import Path

import pytest

from localmaker.images import ImageNotMapped, ImageRef, ImageRegistry, ManifestError

HERE = Path(__file__).parent


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/dnn-regressor:1.2", ("123456789012.dkr.ecr.us-east-1.amazonaws.com", "dnn-regressor", "1.2")),
        ("dnn-regressor", ("", "dnn-regressor", "latest")),
        ("localhost:5000/team/algo", ("localhost:5000", "team/algo", "latest")),
        ("team/algo@sha256:abc", ("", "team/algo", "sha256:abc")),
    ],
)
def test_image_ref_parse(uri, expected):
    ref = ImageRef.parse(uri)
    assert (ref.registry, ref.repository, ref.tag) == expected


def test_resolve_any_registry_and_command_placeholders():
    reg = ImageRegistry([HERE / "images.yaml"])
    spec = reg.resolve("999999999999.dkr.ecr.eu-west-1.amazonaws.com/tiny-algo:7")
    assert spec.label == "tiny"
    assert spec.command("train") == [sys.executable, "train.py"]
    assert spec.workdir == (HERE / "images").resolve()
    assert spec.env == {"TINY_ALGO": "1"}


def test_unmapped_image_names_image_and_manifests():
    reg = ImageRegistry([HERE / "images.yaml"])
    with pytest.raises(ImageNotMapped) as e:
        reg.resolve("acct.dkr.ecr.us-east-1.amazonaws.com/unknown:1")
    assert "unknown" in str(e.value) and str(HERE / "images.yaml") in str(e.value)


def test_later_manifest_wins(tmp_path):
    other = tmp_path / "mine.yaml"
    other.write_text("images:\n  mine:\n    repository: tiny-algo\n    train: ['{python}', 'mine.py']\n")
    reg = ImageRegistry([HERE / "images.yaml", other])
    assert reg.resolve("tiny-algo:1").label == "mine"


def test_missing_role_and_bad_manifest(tmp_path):
    reg = ImageRegistry([HERE / "images.yaml"])
    with pytest.raises(ImageNotMapped, match="has no 'train' command"):
        reg.resolve("broken-algo").command("train")
    bad = tmp_path / "bad.yaml"
    bad.write_text("images:\n  x:\n    tag: '1'\n")
    with pytest.raises(ManifestError, match=r"images.x.repository: required"):
        ImageRegistry([bad])
    with pytest.raises(ManifestError, match="does not exist"):
        ImageRegistry([tmp_path / "nope.yaml"])


def test_runtime_sandbox_and_mounts(tmp_path, monkeypatch):
    from localmaker import sandbox

    (tmp_path / "prog").mkdir()
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "images:\n  s:\n    repository: s-algo\n    workdir: prog\n    runtime: sandbox\n"
        "    mounts: {/opt/extra: prog}\n    env: {PATH: '/opt/program:{bindir}:/bin'}\n    train: [train]\n"
        "  p:\n    repository: p-algo\n    train: ['{python}', 'x.py']\n"
    )
    reg = ImageRegistry([manifest])
    s, p = reg.resolve("s-algo"), reg.resolve("p-algo")
    assert p.runtime == "process" and p.sandbox() is None  # the default: today's behaviour
    assert s.env["PATH"] == f"/opt/program:{Path(sys.executable).parent}:/bin"
    box = s.sandbox(serving=True)
    assert box is not None and box.network and box.program == (tmp_path / "prog").resolve()
    assert box.mounts == (("/opt/extra", str((tmp_path / "prog").resolve())),)
    # without bubblewrap the image cannot run, and says what to do
    monkeypatch.setenv(sandbox.BWRAP_ENV, str(tmp_path / "no-bwrap"))
    with pytest.raises(ImageNotMapped, match=r"bubblewrap.*not installed.*'runtime: process' for image 's'"):
        s.command("train")
    assert p.command("train") == [sys.executable, "x.py"]
    for bad, message in (("runtime: docker", "must be one of"), ("mounts: {rel: prog}", "absolute container paths")):
        manifest.write_text(f"images:\n  s:\n    repository: s-algo\n    {bad}\n")
        with pytest.raises(ManifestError, match=message):
            ImageRegistry([manifest])
    manifest.write_text("images:\n  s:\n    repository: s-algo\n    mounts: {/opt/x: .}\n")
    with pytest.raises(ManifestError, match="only a 'runtime: sandbox' image"):
        ImageRegistry([manifest])


def test_runtime_auto_picks_sandbox_where_it_runs_else_process(tmp_path, monkeypatch):
    from localmaker import sandbox

    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "images:\n  a:\n    repository: a-algo\n    runtime: auto\n    env: {COMMON: '1'}\n"
        "    sandbox_env: {PATH: '/opt/program:{bindir}'}\n    process_env: {SERVE_WITH_NGINX: 'false'}\n"
        "    train: ['{python}', 'train']\n"
    )
    monkeypatch.setenv(sandbox.BWRAP_ENV, str(tmp_path / "no-bwrap"))
    fallback = ImageRegistry([manifest]).resolve("a-algo")
    assert fallback.runtime == "process" and fallback.sandbox() is None
    assert fallback.env == {"COMMON": "1", "SERVE_WITH_NGINX": "false"}
    assert fallback.command("train") == [sys.executable, "train"]  # no error: it runs as process
    bad = tmp_path / "bad.yaml"
    bad.write_text("images:\n  a:\n    repository: a-algo\n    process_env: {X: '1'}\n")
    with pytest.raises(ManifestError, match="only for 'runtime: auto'"):
        ImageRegistry([bad])
    monkeypatch.delenv(sandbox.BWRAP_ENV)
    try:
        sandbox.check(network=True)
    except sandbox.SandboxUnavailable:
        return  # this machine has no sandbox: the fallback above is what runs here
    sandboxed = ImageRegistry([manifest]).resolve("a-algo")
    assert sandboxed.runtime == "sandbox" and sandboxed.sandbox() is not None
    assert sandboxed.env == {"COMMON": "1", "PATH": f"/opt/program:{Path(sys.executable).parent}"}


def test_a_bubblewrap_that_cannot_create_namespaces_is_reported(tmp_path, monkeypatch):
    from localmaker import sandbox

    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv(sandbox.BWRAP_ENV, str(fake))
    with pytest.raises(sandbox.SandboxUnavailable) as err:
        sandbox.check(network=False, label="byoc")
    message = str(err.value)
    assert "cannot create namespaces" in message and "setting up uid map: Permission denied" in message
    assert "Debian package 'bubblewrap'" in message and "'runtime: process' for image 'byoc'" in message


def test_builtin_images_import_localmaker_and_smformats_from_their_own_workdir():
    """Built-in images no longer run from the project root: localmaker puts its code root on their
    PYTHONPATH, so ``python -m localmaker.builtins.<algo>`` and its smformats imports work from anywhere."""
    import subprocess

    from localmaker.images import CODE_ROOT
    from localmaker.procs import clean_env

    builtins = Path(__file__).resolve().parents[2] / "localmaker" / "builtins" / "images.yaml"
    reg = ImageRegistry([builtins])
    spec = reg.resolve("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1")
    assert spec.builtin == "xgboost"
    assert spec.env["PYTHONPATH"] == str(CODE_ROOT)
    assert (CODE_ROOT / "localmaker").is_dir() and (CODE_ROOT / "smformats").is_dir()
    assert spec.workdir == builtins.parent  # not the project root any more
    env = clean_env("http://127.0.0.1:1", "us-east-1", spec.env)
    code = (
        "import sys, localmaker.builtins.runtime, smformats.recordio; "
        "print(smformats.recordio.MAGIC, any(p in ('', '.', sys.argv[1]) for p in sys.path))"
    )
    python, flag = spec.command("train")[:2]
    assert flag == "-P"  # the working directory (localmaker/builtins) stays off sys.path
    out = subprocess.run(
        [python, flag, "-c", code, str(spec.workdir)], cwd=spec.workdir, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(0xCED7230A), "False"]
    # a custom image gets no such path (test_resolve_any_registry_and_command_placeholders: env exact)
