"""The widget flow in a real JupyterLab, in a real browser, clicked as a person would.

One JupyterLab (127.0.0.1, a free port, a random token, config/data/runtime/settings folders of its
own, a ``python3`` kernelspec pointing at this interpreter) serves a temporary copy of the example
project; Debian's chromium (``/usr/bin/chromium``, installed by ``make browser``; never a downloaded
browser) driven by playwright opens each stage notebook in a tab of that one Lab, runs it from the
Run menu and clicks the panels: validate (raise a gate, see it fail, save it, see ``workbench run``
fail the same way, put it back), package (the Bento tag, the generated service, the Bento in the
store), launch (start, the URL answers, checks pass, stop, nothing left serving), launch and
monitor together (3 · Launch starts a server, 4 · Monitor run afterwards finds it with its key,
replays the drifted copy, goes live and draws the drifted rows red, stops live; Stop in 3 · Launch
stops the server and 4 · Monitor then says so and keeps nothing stale), versions (Compare,
Promote, Roll back without touching a list) and score (in this process, then on two Dask
workers). Every click waits for the answer to that very click (its action number), never for a
time. Every browser request that does not go to 127.0.0.1 is recorded and aborted: there must be
none. A screenshot of each panel's final state goes to ``$WORKBENCH_ARTIFACTS`` (default
``tests/artifacts/``), each checked first for errors, stale text and cut-off labels. JupyterLab,
its kernels, the browser and any server are stopped at the end, also when a test fails.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import bentoml
import httpx
import psutil
import pytest
import yaml
from chromium import ARTIFACTS, chromium_context, require_chromium
from conftest import copy_project, our_servers
from playwright.sync_api import (
    BrowserContext,
    Locator,
    Page,
    Route,
    WebSocket,
    expect,
)

from workbench import load_config, package, validate

WORKBENCH = [sys.executable, "-m", "workbench.cli"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
pytestmark = [pytest.mark.lab, pytest.mark.browser]
#: JupyterLab's news and update checks reach the internet: off, as a person would switch them off.
QUIET_NOTIFICATIONS = {"checkForUpdates": False, "fetchNews": "false"}


# --- JupyterLab ----------------------------------------------------------------------------------


@dataclass
class Lab:
    """A running JupyterLab serving ``root``."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, method: str, path: str) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.url}/api/{path}",
            headers={"Authorization": f"token {self.token}"},
            timeout=10,
        )

    def open_url(self, path: str) -> str:
        return f"{self.url}/lab/tree/{path}?token={self.token}"

    def kernels(self) -> list[dict[str, object]]:
        return list(self.api("GET", "kernels").json())

    def shut_down_kernels(self) -> None:
        """Shut every kernel down the way Lab's menu does; their atexit stops their servers."""
        for kernel in self.kernels():
            self.api("DELETE", f"kernels/{kernel['id']}")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.is_file() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def lab_environment(home: Path) -> dict[str, str]:
    """Jupyter folders of its own, news off, ``python3`` = this interpreter; store inherited."""
    kernel = home / "data" / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
            }
        )
    )
    notification = home / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(json.dumps(QUIET_NOTIFICATIONS))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
    env.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        BENTOML_DO_NOT_TRACK="True",
        PYTHONUNBUFFERED="1",
    )
    return env  # BENTOML_HOME and WORKBENCH_STATE_DIR: the session's (conftest)


@contextmanager
def running_lab(root: Path, home: Path, *, timeout: float = 60.0) -> Iterator[Lab]:
    """Start ``jupyter lab`` on 127.0.0.1; always shut its kernels down and stop it."""
    token = secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",  # the server binds a port of its own and writes it down (below)
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        # Nothing on the server side reaches the internet either: no news, no update check,
        # an extension manager that does not query PyPI.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = home / "lab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=lab_environment(home),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    lab = Lab(url="", token=token, root=root, process=process, log=log)
    info = home / "runtime" / f"jpserver-{process.pid}.json"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode}:\n{lab.log_tail()}")
            with suppress(OSError, ValueError, KeyError):
                lab.url = f"http://127.0.0.1:{json.loads(info.read_text())['port']}"
            with suppress(httpx.HTTPError):
                if lab.url and lab.api("GET", "status").status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab not ready after {timeout:.0f} s:\n{lab.log_tail()}")
            time.sleep(0.2)
        yield lab
    finally:
        stop_lab(lab)


def stop_lab(lab: Lab) -> None:
    """Kernels first (so their servers stop), then one SIGTERM; SIGKILL what is left."""
    family: list[psutil.Process] = []
    with suppress(psutil.Error):
        family = psutil.Process(lab.process.pid).children(recursive=True)
    if lab.process.poll() is None:
        with suppress(httpx.HTTPError, ValueError):
            lab.shut_down_kernels()
        lab.process.send_signal(signal.SIGTERM)
        try:
            lab.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(lab.process.pid, signal.SIGKILL)
            lab.process.wait(timeout=5)
    _, alive = psutil.wait_procs(family, timeout=5)
    for proc in alive:
        with suppress(psutil.Error):
            proc.kill()


@pytest.fixture(scope="module")
def lab_project(tmp_path_factory: pytest.TempPathFactory, example_files: Path) -> Path:
    """A copy of the example project that only this module changes."""
    return copy_project(example_files, tmp_path_factory.mktemp("lab") / "project")


@pytest.fixture(scope="module")
def lab(lab_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_chromium()  # before starting anything
    home = tmp_path_factory.mktemp("lab-home")
    try:
        with running_lab(lab_project, home) as running:
            yield running
    finally:
        if (home / "lab.log").is_file():  # kernels' and servers' errors end up here
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(home / "lab.log", ARTIFACTS / "lab.log")


# --- the browser ---------------------------------------------------------------------------------


@dataclass
class Browser:
    """Chromium with a fresh profile; every request not to 127.0.0.1 is recorded and aborted."""

    context: BrowserContext
    outside: list[str] = field(default_factory=list)
    """Requests (and WebSockets) that would have left 127.0.0.1."""
    console: list[str] = field(default_factory=list)
    """Uncaught JavaScript errors and console errors, written to ``lab-console.log``."""

    def guard(self, route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("data", "blob") or url.hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def watch_socket(self, socket: WebSocket) -> None:  # page.route does not see WebSockets
        if urlsplit(socket.url).hostname not in LOCAL_HOSTS:
            self.outside.append(socket.url)

    def open_notebook(self, lab: Lab, path: str) -> Page:
        """A new tab on the notebook alone (``reset``: no tabs restored from a workspace)."""
        page = self.context.new_page()  # the tests close it when they pass
        page.on("websocket", self.watch_socket)
        page.on("pageerror", lambda exc: self.console.append(f"{page.url}: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.console.append(f"{page.url}: {msg.text}") if msg.type == "error" else None
            ),
        )
        page.goto(f"{lab.url}/lab/tree/{path}?reset&token={lab.token}")
        kernel_idle(page)
        return page


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[Browser]:
    """Headless Debian chromium, closed before JupyterLab stops."""
    require_chromium()
    for stale in ARTIFACTS.glob("lab-failure-*.png"):
        stale.unlink()
    with chromium_context(viewport={"width": 1280, "height": 1000}) as context:
        watched = Browser(context)
        try:
            context.route("**/*", watched.guard)
            yield watched
        finally:
            left_open = [page for page in context.pages if page.url.startswith(lab.url)]
            for number, page in enumerate(left_open):  # by a failed test: what it saw
                with suppress(Exception):
                    ARTIFACTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(ARTIFACTS / f"lab-failure-{number}.png"))
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "lab-console.log").write_text(
                "".join(f"{line}\n" for line in watched.console)
            )


# --- what a person does in JupyterLab ------------------------------------------------------------


def kernel_idle(page: Page, *, timeout: float = 60_000) -> None:
    """The notebook's kernel is connected and idle (status bar and toolbar agree)."""
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).wait_for(
        timeout=timeout
    )
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=timeout)


def run_all(page: Page) -> Locator:
    """Run ▸ Run All Cells; returns the stage panel once the kernel is idle again."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    page.locator("[data-command='runmenu:run-all']").click()
    panel = page.locator(".jp-OutputArea-output .wb-panel")
    panel.wait_for(timeout=60_000)
    kernel_idle(page)
    expect(page.locator(".jp-OutputArea-output", has_text="Traceback")).to_have_count(0)
    return panel


def cut_off(panel: Locator) -> list[str]:
    """Buttons and control labels whose text does not fit (drawn as "St…" or "force (pro…")."""
    return [
        str(node.inner_text())
        for node in panel.locator("button, .widget-label, .widget-checkbox label").all()
        if node.is_visible() and node.evaluate("n => n.scrollWidth > n.clientWidth + 1")
    ]


def stretched_buttons(panel: Locator) -> list[str]:
    """Buttons drawn across the panel's width rather than as wide as their label."""
    width = float(panel.evaluate("n => n.clientWidth"))
    return [
        str(b.inner_text())
        for b in panel.locator("button").all()
        if b.is_visible() and float(b.evaluate("n => n.offsetWidth")) > width / 2
    ]


def check_panel(panel: Locator, *, stale: tuple[str, ...] = (), error: bool = False) -> None:
    """What a person would call broken in a panel: an error nobody expected, a bug report,
    text that no longer holds (``stale``), labels cut off, single buttons stretched."""
    text = panel.inner_text()
    assert "Traceback" not in text and "unexpected error" not in text, text
    if not error:
        assert panel.locator(".wb-status .wb-error").count() == 0, text
    for phrase in stale:
        assert phrase not in text, f"stale text {phrase!r} in the panel:\n{text}"
    assert not cut_off(panel), cut_off(panel)
    assert not stretched_buttons(panel), stretched_buttons(panel)


def shoot(panel: Locator, name: str, **checks: object) -> Path:
    """Check the panel (:func:`check_panel`), then screenshot it alone (readable, small) into the
    artifacts folder."""
    check_panel(panel, **checks)  # type: ignore[arg-type]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"lab-{name}.png"
    page = panel.page
    viewport = page.viewport_size or {"width": 1280, "height": 1000}
    height = int(panel.evaluate("node => node.scrollHeight"))  # taller than the notebook area?
    page.set_viewport_size(
        {"width": viewport["width"], "height": max(viewport["height"], height + 300)}
    )
    try:
        panel.screenshot(path=str(path), animations="disabled")
    finally:
        page.set_viewport_size(viewport)
    return path


PASS_COLOUR, FAIL_COLOUR = "rgb(26, 127, 55)", "rgb(207, 34, 46)"  # .wb-pass, .wb-fail
#: What the launch and monitor panels answer.
SERVING = re.compile(r"^serving Bento \S+ at http://127\.0\.0\.1:\d+ \(pid \d+\)$")
STOPPED = re.compile(r"^server stopped: Bento \S+ at \S+ \(pid \d+\), the one this panel started$")
REPLAYED = re.compile(r"^replayed 1,000 rows of drifted\.csv \(1,000 labels\)")
LIVE = re.compile(r"^live: refreshing http://127\.0\.0\.1:\d+ every 2 s until Stop live$")


def colour(node: Locator) -> str:
    """The text colour the browser actually draws."""
    return str(node.evaluate("node => getComputedStyle(node).color"))


def action_number(panel: Locator) -> int:
    """The number of the panel's last action (click), as its status line carries it."""
    numbers = panel.locator(".wb-status span[data-action]")
    return int(numbers.first.get_attribute("data-action") or 0) if numbers.count() else 0


def press(panel: Locator, name: str, expected: str | re.Pattern[str], *, timeout: float) -> str:
    """Click ``button.<name>`` and wait until the status line answers *this* click (the next
    action number, so an earlier answer with the same words never counts) with ``expected``;
    fail at once with the error this click brought. Returns the answer."""
    number = action_number(panel) + 1
    panel.locator(f"button.{name}").click()
    answer = panel.locator(f".wb-status span[data-action='{number}']")
    matched = answer.filter(has_text=expected)
    failed = panel.locator(f".wb-status span.wb-error[data-action='{number}']")
    matched.or_(failed).first.wait_for(timeout=timeout)
    if failed.count() and not matched.count():
        pytest.fail(f"{name}: {failed.first.inner_text()}")
    text = str(matched.first.inner_text())
    if isinstance(expected, str):
        assert text == expected, text
    else:
        assert expected.search(text), text
    return text


def gate_rows(panel: Locator) -> dict[str, dict[str, str]]:
    """The gate table as a person reads it: metric -> value, threshold, verdict and its colour."""
    rows = {}
    for row in panel.locator(".wb-results table.wb-gates tbody tr").all():
        cells = [cell.inner_text().strip() for cell in row.locator("td").all()]
        verdict = row.locator(".wb-pass, .wb-fail")
        rows[cells[0]] = {
            "value": cells[1],
            "threshold": cells[2],
            "verdict": cells[3],
            "class": verdict.get_attribute("class") or "",
            "colour": colour(verdict),
        }
    return rows


def set_threshold(panel: Locator, metric: str, side: str, value: float) -> None:
    box = panel.locator(f".wb-gate-{metric}-{side} input")
    box.fill(str(value))
    box.press("Enter")  # FloatText sends its value on Enter or blur
    expect(box).to_have_value(str(value))


def click_validate(panel: Locator, expected_status: str) -> dict[str, dict[str, str]]:
    press(panel, "wb-validate", expected_status, timeout=90_000)
    return gate_rows(panel)


def test_validate_panel_a_raised_gate_fails_is_saved_and_workbench_run_agrees(
    lab: Lab, browser: Browser, lab_project: Path, tmp_path: Path
):
    """Raise roc_auc's minimum in the panel, see it fail, save it, and the headless run fails it
    too; put it back, see it pass, save: workbench.yaml holds what was clicked."""
    page = browser.open_notebook(lab, "notebooks/01_validate.ipynb")
    panel = run_all(page)
    roc_box = panel.locator(".wb-gate-roc_auc-min input")
    expect(roc_box).to_have_value("0.95")  # prefilled from workbench.yaml
    expect(panel.locator(".wb-gate-accuracy-min input")).to_have_value("0.9")

    gates = click_validate(panel, "all gates pass")
    assert gates["roc_auc"]["verdict"] == "PASS" and gates["roc_auc"]["colour"] == PASS_COLOUR
    assert gates["roc_auc"]["threshold"] == ">= 0.95"

    set_threshold(panel, "roc_auc", "min", 0.9999)
    gates = click_validate(panel, "some gates failed")
    assert gates["roc_auc"]["verdict"] == "FAIL", gates
    assert "wb-fail" in gates["roc_auc"]["class"] and gates["roc_auc"]["colour"] == FAIL_COLOUR
    assert gates["roc_auc"]["threshold"] == ">= 0.9999"
    assert gates["accuracy"]["verdict"] == "PASS" and gates["accuracy"]["colour"] == PASS_COLOUR
    assert colour(panel.locator(".wb-status span")) == FAIL_COLOUR
    assert "gates failed" in panel.locator(".wb-results h4").inner_text()
    # the copy for viewers without widgets (nbconvert, previews): hidden here, and current after
    # the click (updated through its display id)
    static = page.locator(".wb-static")
    expect(static).to_be_hidden()
    expect(static).to_contain_text("some gates failed")
    failed_screenshot = shoot(panel, "validate-failed")

    panel.locator("button.wb-save-gates").click()
    expect(panel.locator(".wb-status")).to_have_text(
        re.compile(r"^gates saved to .*workbench\.yaml$")
    )
    saved = yaml.safe_load((lab_project / "workbench.yaml").read_text())
    assert saved["gates"]["roc_auc"] == {"min": 0.9999}
    assert saved["gates"]["accuracy"] == {"min": 0.9}

    # The round trip: CI re-runs what was clicked and reaches the same verdict.
    run = tmp_path / "run"
    done = subprocess.run(
        [*WORKBENCH, "run", "--config", str(lab_project / "workbench.yaml"), "--out", str(run)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    manifest = json.loads((run / "manifest.json").read_text())
    headless = {g["metric"]: g for g in manifest["gates"]}
    assert [m for m, g in headless.items() if not g["passed"]] == ["roc_auc"]
    assert f"{headless['roc_auc']['value']:.4f}" == gates["roc_auc"]["value"]
    assert headless["roc_auc"]["min"] == 0.9999
    assert not (run / "02_package.ipynb").exists()  # stopped before packaging
    with pytest.raises(bentoml.exceptions.NotFound):  # a failed gate adds no Bento
        bentoml.bentos.list(saved["name"])

    set_threshold(panel, "roc_auc", "min", 0.95)
    gates = click_validate(panel, "all gates pass")
    assert {g["verdict"] for g in gates.values()} == {"PASS"}
    expect(panel.locator(".wb-results .wb-fail")).to_have_count(0)
    panel.locator("button.wb-save-gates").click()
    expect(panel.locator(".wb-status")).to_have_text(re.compile("^gates saved to "))
    assert yaml.safe_load((lab_project / "workbench.yaml").read_text())["gates"]["roc_auc"] == {
        "min": 0.95
    }
    shoot(panel, "validate")
    assert failed_screenshot.stat().st_size > 10_000
    assert browser.outside == []
    page.close()


def ensure_record(project: Path, stage: str) -> None:
    """Stand-alone runs of a later test: make the earlier stage's record in-process."""
    if (project / ".workbench" / f"{stage}.json").is_file():
        return
    config = load_config(project / "workbench.yaml")
    if stage in ("validation", "package"):
        validate(config).raise_for_gates()
    if stage == "package":
        package(config)


def test_package_panel_builds_the_bento_and_shows_its_tag_and_service(
    lab: Lab, browser: Browser, lab_project: Path
):
    """Build Bento: the tag shown is a Bento in the store; the generated service.py is shown."""
    ensure_record(lab_project, "validation")
    page = browser.open_notebook(lab, "notebooks/02_package.ipynb")
    panel = run_all(page)
    press(panel, "wb-build-bento", re.compile(r"^Bento \S+ ready$"), timeout=180_000)
    tag = panel.locator(".wb-results .wb-bento-tag").inner_text().strip()
    name = yaml.safe_load((lab_project / "workbench.yaml").read_text())["name"]
    assert re.fullmatch(rf"{re.escape(name)}:[0-9a-f]+", tag), tag
    expect(panel.locator(".wb-status")).to_have_text(f"Bento {tag} ready")
    assert colour(panel.locator(".wb-status span")) == PASS_COLOUR
    expect(panel.locator(".wb-results")).to_contain_text(f"bentoml serve {tag}")
    source = panel.locator(".wb-service-source details[open] pre.wb-source")
    expect(source).to_be_visible()
    expect(source).to_contain_text("class ")
    expect(source).to_contain_text("def predict")

    bento = bentoml.bentos.get(tag)  # the same store as the kernel's (BENTOML_HOME)
    assert str(bento.tag) == tag
    generated = (Path(bento.path) / "src" / "service.py").read_text()
    assert generated.strip() == source.inner_text().strip()
    shoot(panel, "package")
    assert browser.outside == []
    page.close()


@pytest.mark.serve
def test_launch_panel_starts_serves_checks_and_stops_the_server(
    lab: Lab, browser: Browser, lab_project: Path
):
    """Start: running, with a URL that answers; Check: all pass; Stop: stopped, nothing serving."""
    ensure_record(lab_project, "package")
    started = time.time()
    page = browser.open_notebook(lab, "notebooks/03_launch.ipynb")
    panel = run_all(page)
    state = panel.locator(".wb-light .wb-state")
    expect(state).to_have_text("stopped")
    expect(panel.locator("button.wb-stop")).to_be_disabled()
    expect(panel.locator("button.wb-check")).to_be_disabled()

    press(panel, "wb-start", SERVING, timeout=120_000)
    expect(state).to_have_text("running")
    url = panel.locator(".wb-light a.wb-url").inner_text().strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), url
    assert colour(panel.locator(".wb-light .wb-state-running")) == PASS_COLOUR
    expect(panel.locator("button.wb-start")).to_be_disabled()
    assert not cut_off(panel)  # the long status line must not squeeze the buttons
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
    try:
        press(
            panel,
            "wb-check",
            re.compile(r"^all checks pass(; portable: proven)?$"),
            timeout=180_000,
        )
        checks = panel.locator(".wb-results table tbody tr")
        names = [row.locator("td").first.inner_text().strip() for row in checks.all()]
        for name in ("livez", "readyz", "predict", "parity"):
            assert name in names, names
        expect(panel.locator(".wb-results .wb-fail")).to_have_count(0)
        assert panel.locator(".wb-results .wb-pass").count() >= len(names)
        expect(panel.locator(".wb-results h4").first).to_contain_text(url)
    finally:
        press(panel, "wb-stop", STOPPED, timeout=60_000)
    expect(state).to_have_text("stopped")
    expect(panel.locator(".wb-status")).to_contain_text(url)
    expect(panel.locator(".wb-light a.wb-url")).to_have_count(0)
    expect(panel.locator("button.wb-start")).to_be_enabled()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/readyz", timeout=5)
    left = [p for p in our_servers() if p.create_time() >= started - 1]
    assert left == [], f"servers still running after Stop: {[p.pid for p in left]}"
    shoot(panel, "launch", stale=("running",))
    assert browser.outside == []
    page.close()


@pytest.mark.serve
def test_monitor_panel_finds_the_launch_panels_server_replays_goes_live_and_sees_it_stop(
    lab: Lab, browser: Browser, lab_project: Path
):
    """3 · Launch: Start. 4 · Monitor, Run All: it has found that server (with its key: nothing
    typed) and says which; Replay the drifted copy (labels as feedback); Start live: the live
    line says when it refreshed, the traffic line fills, the drifted rows are drawn red; Stop
    live: it says it stopped. 3 · Launch: Stop stops its server. 4 · Monitor: Refresh says the
    service is gone, and no URL, report or button that needs a service is left."""
    ensure_record(lab_project, "package")
    started = time.time()
    launch_page = browser.open_notebook(lab, "notebooks/03_launch.ipynb")
    launch = run_all(launch_page)
    press(launch, "wb-start", SERVING, timeout=120_000)
    url = launch.locator(".wb-light a.wb-url").inner_text().strip()
    try:
        page = browser.open_notebook(lab, "notebooks/04_monitor.ipynb")
        panel = run_all(page)
        status = panel.locator(".wb-status")
        expect(status).to_contain_text(re.compile(r"^connected: found Bento \S+ \(model \S+\)"))
        expect(status).to_contain_text(f"at {url} (pid ")
        expect(status).to_contain_text("started from 3 · Launch)")
        expect(panel.locator(".wb-badge .wb-state")).to_have_text("serving")
        expect(panel.locator(".wb-url-box input")).to_have_value(url)
        expect(panel.locator(".wb-key-box input")).to_have_value("")  # the key is not shown
        expect(panel.locator("button.wb-stop-server")).to_be_disabled()  # not its server
        expect(panel.locator("button.wb-stop-live")).to_be_disabled()
        shoot(panel, "monitor-found")

        box = panel.locator(".wb-replay-file input")
        box.fill(str(lab_project / "data" / "drifted.csv"))
        box.press("Enter")
        press(panel, "wb-replay", REPLAYED, timeout=120_000)
        press(panel, "wb-start-live", LIVE, timeout=30_000)
        expect(panel.locator(".wb-badge .wb-state")).to_have_text("live")
        expect(panel.locator("button.wb-start-live")).to_be_disabled()
        expect(panel.locator(".wb-live")).to_contain_text(
            re.compile(r"live · refreshed \d\d:\d\d:\d\d"), timeout=60_000
        )
        expect(panel.locator("p.wb-traffic", has_text="req/s")).to_be_visible(timeout=60_000)
        drifted = panel.locator(".wb-results tr.wb-row-drift")
        # Live mode redraws the table every refresh, so a node read once may be detached by the
        # next line: these checks retry on the current table rather than read one node.
        expect(drifted.nth(9)).to_be_attached(timeout=60_000)  # every measurement 15 % high
        expect(drifted.first.locator("td").first).to_have_css(
            "background-color",
            "rgb(255, 235, 233)",  # .wb-row-drift: light red
        )
        expect(panel.locator(".wb-live .wb-verdict")).to_have_css("color", FAIL_COLOUR)
        expect(panel.locator(".wb-results img").first).to_be_visible()  # the plots
        press(panel, "wb-stop-live", re.compile(r"^live stopped"), timeout=60_000)
        expect(panel.locator(".wb-live")).to_contain_text(
            re.compile(r"live stopped at \d\d:\d\d:\d\d after \d+ refreshes \(Stop live\)")
        )
        expect(panel.locator(".wb-badge .wb-state")).to_have_text("serving")
        expect(panel.locator("button.wb-start-live")).to_be_enabled()
        shoot(panel, "monitor", stale=("live · refreshed", "req/s"))
    finally:
        press(launch, "wb-stop", STOPPED, timeout=60_000)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/readyz", timeout=5)

    gone = re.compile(re.escape(url) + r"\S*: cannot reach the service")
    press(panel, "wb-refresh", gone, timeout=30_000)
    expect(panel.locator(".wb-badge .wb-state")).to_have_text("stopped")
    expect(panel.locator(".wb-url-box input")).to_have_value("")
    for name in ("wb-replay", "wb-refresh", "wb-start-live", "wb-stop-live", "wb-stop-server"):
        expect(panel.locator(f"button.{name}")).to_be_disabled()
    expect(panel.locator("button.wb-start-server")).to_be_enabled()
    expect(panel.locator(".wb-results table")).to_have_count(0)
    gone_for_good = ("req/s", "live · refreshed", "Monitoring of")
    shoot(panel, "monitor-stopped", error=True, stale=gone_for_good)
    left = [p for p in our_servers() if p.create_time() >= started - 1]
    assert left == [], f"servers still running after Stop: {[p.pid for p in left]}"
    assert browser.outside == []
    page.close()
    launch_page.close()


def second_version(project: Path) -> tuple[str, str]:
    """(the version packaged so far, promoted as the release before; a second one, packaged
    from the same model with another request-row limit). Both are in the store Lab's kernels
    use."""
    from workbench.versions import promote

    ensure_record(project, "package")
    first = json.loads((project / ".workbench" / "package.json").read_text())["bento_tag"]
    raw = yaml.safe_load((project / "workbench.yaml").read_text())
    raw["service"] = {**raw.get("service", {}), "max_request_rows": 4000}
    raw["validation"] = {**raw.get("validation", {}), "cv_folds": 0, "importance_top": 0}
    raw["gates"] = {k: v for k, v in raw["gates"].items() if not k.startswith("cv_")}
    (project / "workbench.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    config = load_config(project / "workbench.yaml")
    validate(config).raise_for_gates()
    second = package(config).bento_tag
    promote(config, first, reason="the release before")
    return first, second


def test_versions_panel_compares_promotes_and_rolls_back_without_touching_a_list(
    lab: Lab, browser: Browser, lab_project: Path
):
    """With v1 promoted and v2 newer, 5 · Versions opens on v2 against v1: Compare, Promote (a
    reason typed), Roll back, each answering in the panel; labels whole."""
    v1, v2 = second_version(lab_project)
    page = browser.open_notebook(lab, "notebooks/05_versions.ipynb")
    panel = run_all(page)
    expect(panel.locator("h3")).to_have_text("5 · Versions")
    expect(panel.locator("button.wb-roll-back")).to_be_disabled()  # one promotion: no earlier
    press(panel, "wb-compare", f"compared {v1} (A) with {v2} (B)", timeout=120_000)
    expect(panel.locator(".wb-results img").first).to_be_visible()
    shoot(panel, "versions-compare")
    panel.locator(".wb-reason input").fill("same model, a larger request limit")
    press(panel, "wb-promote", f"promoted {v2}", timeout=120_000)
    expect(panel.locator(".wb-versions-table .wb-promoted-tag")).to_have_text(v2)
    press(panel, "wb-roll-back", f"rolled back to {v1}", timeout=60_000)
    expect(panel.locator(".wb-versions-table .wb-promoted-tag")).to_have_text(v1)
    expect(panel.locator("button.wb-roll-back")).to_be_disabled()
    shoot(panel, "versions", stale=(f"promoted {v2}",))
    assert browser.outside == []
    page.close()


def test_score_panel_scores_in_this_process_and_on_dask(
    lab: Lab, browser: Browser, lab_project: Path
):
    """6 · Score opens on the promoted version; Score in this process, then with 2 Dask workers
    (a local cluster started for the job and stopped after): the same rows scored."""
    ensure_record(lab_project, "package")
    page = browser.open_notebook(lab, "notebooks/06_score.ipynb")
    panel = run_all(page)
    expect(panel.locator("h3")).to_have_text("6 · Score")
    from workbench.versions import list_versions

    listed = list_versions(lab_project, load_config(lab_project / "workbench.yaml").name)
    chosen = listed.promoted or listed.versions[0].tag  # the promoted one, else the newest
    expect(panel.locator(".wb-bento select")).to_have_value(re.compile(f"^{re.escape(chosen)}"))
    in_process = re.compile(r"^143 rows scored, 0 refused \(in process\)")
    press(panel, "wb-score", in_process, timeout=120_000)
    expect(panel.locator(".wb-results")).to_contain_text("Drift and data quality of")
    shoot(panel, "score")
    workers = panel.locator(".wb-workers input")
    workers.fill("2")
    workers.press("Enter")
    expect(workers).to_have_value("2")
    press(
        panel,
        "wb-score",
        re.compile(r"^143 rows scored, 0 refused \(local dask cluster \(2 worker processes\)\)"),
        timeout=180_000,
    )
    shoot(panel, "score-dask", stale=("(in process)",))
    assert browser.outside == []
    page.close()
