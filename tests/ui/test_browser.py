"""The Airflow UI in a real browser: trigger the training DAG with params, approve it, prod serves.

The test starts its own `make up` environment (``scripts/up.py``: localmaker + api-server, scheduler,
dag-processor, triggerer) on free ports in a temporary home, drives headless Chromium through
Playwright the way a person would (log in, open the DAG, fill the trigger form, follow the run,
answer the approval under Browse -> Required Actions), then checks the outcome on localmaker with
boto3 and stops everything with ``scripts/down.py``, asserting that no process is left.

Every step is done in the UI; the REST API is not used (an earlier fallback was not needed).
Screenshots of each step: ``test-artifacts/ui/NN-<step>.png``.

Chromium: Debian's ``/usr/bin/chromium`` (``make system-deps`` installs it when root); Playwright's own
browser download is not used. The test skips only when that Chromium is missing and cannot be installed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
MODEL = "diabetes_dnn"
DAG_ID = f"{MODEL}_training"
USER, PASSWORD = "admin", "admin"
HYPERPARAMETERS = {"epochs": 30}
RUN_TIMEOUT = 300  # seconds from trigger to the approval request (about 80 s on an idle 2-core machine)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _load_down():
    spec = importlib.util.spec_from_file_location("mlpipeline_up_down", ROOT / "scripts" / "down.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


down_mod = _load_down()


def chromium_or_skip() -> str:
    """Debian's Chromium, installed by scripts/ensure_system_deps.sh when missing (and we are root)."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure_system_deps.sh")], env={**os.environ, "CHROMIUM": CHROMIUM},
        capture_output=True, text=True, timeout=900,
    )
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} and it could not be installed: "
                    f"{(result.stdout + result.stderr).strip() or 'scripts/ensure_system_deps.sh said nothing'}")
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UpEnvironment:
    """`make up` / `make down` on free ports in a private home."""

    def __init__(self, base: Path) -> None:
        self.port, self.lm_port = free_port(), free_port()
        self.home, self.lm_home = base / "airflow", base / "localmaker"
        self.url = f"http://localhost:{self.port}"
        self.lm_url = f"http://127.0.0.1:{self.lm_port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "UP_", "LOCALMAKER_"))}
        self.env.update(
            AIRFLOW_PORT=str(self.port), LOCALMAKER_PORT=str(self.lm_port), UP_HOME=str(self.home),
            LOCALMAKER_HOME=str(self.lm_home), UP_USER=USER, UP_PASSWORD=PASSWORD, UP_TIMEOUT="240",
            UP_WORKER_LOG_PORT=str(free_port()), UP_TRIGGERER_LOG_PORT=str(free_port()),
        )
        self.paths = down_mod.Paths(self.home.resolve(), self.lm_home.resolve())
        self.records: dict[str, dict] = {}

    def up(self) -> str:
        result = subprocess.run([sys.executable, "scripts/up.py"], cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=300)
        self.records.update(down_mod.read_pidfiles(self.paths))
        assert result.returncode == 0, f"make up failed:\n{result.stdout}\n{result.stderr}\n{self.logs()}"
        return result.stdout

    def down(self) -> str:
        self.records.update(down_mod.read_pidfiles(self.paths))
        result = subprocess.run([sys.executable, "scripts/down.py"], cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=180)
        assert result.returncode == 0, f"make down failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def strays(self) -> list[str]:
        return [f"{p} {down_mod.cmdline(p)[:100]}" for p in down_mod.strays(self.paths, self.records)]

    def logs(self, lines: int = 40) -> str:
        out = []
        for f in sorted((self.home / "logs" / "up").glob("*.log")):
            text = f.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"---- {f.name}\n" + "\n".join(text))
        return "\n".join(out)

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.lm_url, region_name="us-east-1",
                            aws_access_key_id="ui-test", aws_secret_access_key="ui-test")


class Steps:
    """Numbered screenshots in test-artifacts/ui."""

    def __init__(self, page) -> None:
        self.page = page
        self.n = 0
        self.t0 = time.monotonic()

    def shot(self, name: str, full_page: bool = False) -> Path:
        self.n += 1
        path = ARTIFACTS / f"{self.n:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        print(f"  [{time.monotonic() - self.t0:5.0f} s] {path.relative_to(ROOT)}", flush=True)
        return path


@pytest.fixture
def up_env(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("ui-up")
    env = UpEnvironment(base)
    try:
        yield env
    finally:
        try:
            env.down()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def _state(page) -> str:
    """The run's or task's state as the page header shows it."""
    badge = page.get_by_test_id("header-card").get_by_test_id("state-badge")
    return badge.first.inner_text().strip() if badge.count() else ""


@pytest.mark.timeout(600)
def test_trigger_with_params_and_approve_in_the_ui(up_env: UpEnvironment) -> None:
    chromium = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    t0 = time.monotonic()
    timings: dict[str, float] = {}

    out = up_env.up()
    timings["make up"] = time.monotonic() - t0
    assert f"Airflow UI:  {up_env.url}" in out and f"login: {USER} / {PASSWORD}" in out, out
    assert re.search(rf"DAG {DAG_ID}\s+active", out), out

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)  # a busy 2-core machine renders slowly
        steps = Steps(page)
        try:
            _drive(page, steps, up_env, timings, expect)
        except Exception:
            steps.shot("failure", full_page=True)
            print(up_env.logs(), flush=True)
            raise
        finally:
            browser.close()

    # the outcome, on "AWS": prod serves the model this run trained with the form's hyperparameters
    from include.mlpipeline.config import load_config

    cfg = load_config(MODEL, "dev")
    sm, runtime = up_env.client("sagemaker"), up_env.client("sagemaker-runtime")
    prod = sm.describe_endpoint(EndpointName=cfg.endpoint.prod_name)
    assert prod["EndpointStatus"] == "InService", prod
    jobs = sm.list_training_jobs(SortBy="CreationTime", SortOrder="Descending")["TrainingJobSummaries"]
    assert jobs, "no training job on localmaker"
    job = sm.describe_training_job(TrainingJobName=jobs[0]["TrainingJobName"])
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["HyperParameters"]["epochs"] == "30", job["HyperParameters"]
    variant = sm.describe_endpoint_config(EndpointConfigName=prod["EndpointConfigName"])["ProductionVariants"][0]
    model = sm.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == job["ModelArtifacts"]["S3ModelArtifacts"]
    answer = runtime.invoke_endpoint(EndpointName=cfg.endpoint.prod_name, ContentType="text/csv",
                                     Body=b"59,2,32.1,101,157,93.2,38,4,4.8598,87")["Body"].read().decode()
    assert math.isfinite(float(answer.strip().split(",")[0].split("\n")[0])), answer

    t = time.monotonic()
    out = up_env.down()
    timings["make down"] = time.monotonic() - t
    assert "stopping localmaker" in out and "stopping api-server" in out, out
    assert up_env.strays() == [], "processes left after make down"
    for port in (up_env.port, up_env.lm_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers after make down"
    assert "nothing running" in up_env.down(), "a second make down found something to stop"
    timings["total"] = time.monotonic() - t0
    print("timings: " + json.dumps({k: round(v, 1) for k, v in timings.items()}), flush=True)


def _drive(page, steps: Steps, env: UpEnvironment, timings: dict[str, float], expect) -> None:
    url = env.url
    # 1. log in (SimpleAuthManager's form)
    page.goto(url)
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    steps.shot("login")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/")
    expect(page.get_by_test_id("nav-dags-link")).to_be_visible()
    steps.shot("home")

    # 2. open the training DAG from the DAG list
    page.get_by_test_id("nav-dags-link").click()
    page.get_by_role("link", name=DAG_ID, exact=True).first.click()
    page.wait_for_url(re.compile(rf".*/dags/{DAG_ID}(/.*)?$"))
    # the list (a trigger button per DAG) gives way to the DAG's page (one, in its header)
    expect(page.get_by_test_id("trigger-dag-button")).to_have_count(1)
    expect(page.get_by_role("tab", name="Runs").or_(page.get_by_role("link", name="Runs")).first).to_be_visible()
    steps.shot("dag")

    # 3. the trigger form: hyperparameters {"epochs": 30} (a Monaco JSON editor), auto_approve off
    page.get_by_test_id("trigger-dag-button").click()
    dialog = page.get_by_role("dialog")
    editor = dialog.locator("#element_hyperparameters .monaco-editor")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    # one edit, not keystrokes: the form re-formats valid JSON as it is typed and the caret jumps
    page.keyboard.insert_text(json.dumps(HYPERPARAMETERS))
    expect(editor.locator(".view-lines")).to_contain_text('"epochs":\xa030')
    auto_approve = dialog.locator("input[name=element_auto_approve]")
    if auto_approve.is_checked():
        dialog.locator("label[id='switch:element_auto_approve']").click()
    expect(auto_approve).not_to_be_checked()
    auto_approve.scroll_into_view_if_needed()
    steps.shot("trigger-form-params")
    dialog.get_by_role("button", name="Advanced Options").click()
    conf_view = dialog.locator(".monaco-editor").filter(has_text='"auto_approve"').last
    expect(conf_view).to_be_visible()
    conf = json.loads(conf_view.locator(".view-lines").inner_text().replace("\xa0", " "))
    assert conf["hyperparameters"] == HYPERPARAMETERS and conf["auto_approve"] is False, conf
    steps.shot("trigger-form-conf")
    submit = dialog.get_by_test_id("trigger-dag-submit")
    expect(submit).to_be_enabled()
    submit.click()
    page.wait_for_url(re.compile(rf".*/dags/{DAG_ID}/runs/[^/]+$"))
    run_id = unquote(page.url.rsplit("/runs/", 1)[1])
    t_trigger = time.monotonic()
    print(f"  triggered {run_id}", flush=True)
    expect(page.get_by_test_id("header-card")).to_contain_text(run_id)
    steps.shot("run-started")

    # 4. follow the run in the UI until `approve` waits for a human
    run_url = f"{url}/dags/{DAG_ID}/runs/{run_id}"
    approve_url = f"{run_url}/tasks/approve.approve"  # a task in a TaskGroup: its full id
    page.goto(approve_url)
    deadline = time.monotonic() + RUN_TIMEOUT
    progress_shot = False
    last_load = time.monotonic()
    state = ""
    while time.monotonic() < deadline:
        state = _state(page)
        if state in ("Awaiting Input", "Failed", "Upstream Failed", "Skipped", "Removed"):
            break
        if not progress_shot and time.monotonic() - t_trigger > 30:
            page.goto(run_url)
            expect(page.get_by_test_id("header-card")).to_be_visible()
            steps.shot("run-in-progress")
            progress_shot = True
            page.goto(approve_url)
            last_load = time.monotonic()
        page.wait_for_timeout(2000)
        if time.monotonic() - last_load > 30:  # the UI refreshes a running run by itself; a safety net
            page.reload()
            last_load = time.monotonic()
    if state != "Awaiting Input":
        page.goto(run_url)
        steps.shot("run-not-waiting", full_page=True)
        rows = page.get_by_role("row").all_inner_texts()
        pytest.fail(f"`approve` did not wait for input within {RUN_TIMEOUT} s (state {state!r}); "
                    f"run {_state(page)!r}; task table:\n" + "\n".join(r.replace("\t", " ") for r in rows))
    timings["trigger -> approval request"] = time.monotonic() - t_trigger
    page.goto(run_url)
    approve_row = page.get_by_role("row").filter(has=page.get_by_role("link", name="approve.approve", exact=True))
    expect(approve_row).to_contain_text("Awaiting Input")
    steps.shot("run-awaiting-approval")

    # 5. Browse -> Required Actions: the pending approval of this run, answered with "Approve"
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Required Actions").click()
    page.wait_for_url(re.compile(r".*/required_actions(\?.*)?$"))
    row = page.get_by_role("row").filter(has_text=run_id)
    expect(row).to_contain_text("Approval Required")
    steps.shot("required-actions")
    row.get_by_role("link", name=f"Promote {MODEL} to production?").click()
    approve_button = page.get_by_test_id("hitl-option-Approve")
    expect(approve_button).to_be_enabled()
    expect(page.get_by_text("The candidate passed the quality gate")).to_be_visible()
    # the evaluation plot is a link a person can open: a presigned URL on localmaker, a PNG
    plot = page.get_by_role("link", name="evaluation plot")
    expect(plot).to_be_visible()
    href = plot.get_attribute("href")
    assert href and href.startswith(env.lm_url + "/"), href
    import urllib.request

    with urllib.request.urlopen(href, timeout=30) as resp:
        assert resp.read(8) == b"\x89PNG\r\n\x1a\n"
    steps.shot("approval-request")
    t_approve = time.monotonic()
    approve_button.click()
    expect(page.get_by_text("approve response successful")).to_be_visible()
    expect(page.get_by_text(re.compile(f"Response received at .* from {USER}"))).to_be_visible()
    steps.shot("approved")

    # 6. the run goes on to prod and succeeds
    page.goto(run_url)
    deadline = time.monotonic() + 180
    last_load = time.monotonic()
    while time.monotonic() < deadline and _state(page) not in ("Success", "Failed"):
        page.wait_for_timeout(2000)
        if time.monotonic() - last_load > 30:
            page.reload()
            last_load = time.monotonic()
    expect(page.get_by_test_id("header-card").get_by_test_id("state-badge").first).to_have_text("Success")
    for task in ("approve.approve", "promote.deploy_prod", "promote.promote"):
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=task, exact=True))
        expect(row).to_contain_text("Success")
    timings["approve -> run success"] = time.monotonic() - t_approve
    steps.shot("run-succeeded", full_page=True)
    page.goto(f"{run_url}/details")  # the run's Details tab: the conf the form sent
    expect(page.get_by_text("Triggering User").first).to_be_visible()
    expect(page.locator("body")).to_contain_text('"epochs": 30')
    for _ in range(5):  # the page re-renders as it refreshes; scroll the conf into the screenshot
        try:
            page.get_by_text('"epochs": 30').first.scroll_into_view_if_needed(timeout=5_000)
            break
        except Exception:  # detached by a re-render: find it again
            page.wait_for_timeout(500)
    steps.shot("run-details", full_page=True)
