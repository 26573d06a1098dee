"""A real Prometheus (Debian's ``/usr/bin/prometheus``) for tests: loopback, a free port, its
storage in a temporary folder, its own config scraping one served Bento with the key, short
scrape and evaluation intervals; stopped with its children at the end. ``make prometheus``
installs it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from workbench.serving.network import free_port
from workbench.serving.server import terminate_tree

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
MISSING = "Debian's prometheus package is not installed: run `make prometheus`"
INTERVAL = "1s"
"""The scrape and rule-evaluation interval of a test's Prometheus."""
HOLD = "2s"
"""What a test's rules wait for instead of the shipped ``for:`` minutes."""


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL.exists(), MISSING
    return subprocess.run(
        [str(PROMTOOL), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def local_config(deploy: Path, folder: Path, *, target: str, key: str) -> Path:
    """The Bento's scrape config and rules (``deploy``) for a test: the target and the key file
    replaced, intervals of :data:`INTERVAL`, and every rule's ``for:`` :data:`HOLD` (the
    expressions as shipped)."""
    rules = yaml.safe_load((deploy / "prometheus-rules.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = HOLD
    (folder / "rules.yaml").write_text(yaml.safe_dump(rules))
    key_file = folder / "api-key"
    key_file.write_text(key)
    key_file.chmod(0o600)
    config = yaml.safe_load((deploy / "prometheus-scrape.yaml").read_text())
    config["global"] = {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL}
    config["rule_files"] = [str(folder / "rules.yaml")]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [target]}]
    job["authorization"]["credentials_file"] = str(key_file)
    path = folder / "prometheus.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Prometheus:
    """A running Prometheus: its HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query``'s answer (its ``status`` is ``error`` for a bad expression)."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        return dict(answer.json())

    def values(self, expr: str) -> list[float]:
        """The values of an instant query (empty when it has no series)."""
        return [float(r["value"][1]) for r in self.query(expr)["data"]["result"]]

    def alerts(self, name: str) -> list[dict[str, Any]]:
        """The alerts named ``name``, pending or firing."""
        answer = httpx.get(f"{self.url}/api/v1/alerts", timeout=10).json()
        return [a for a in answer["data"]["alerts"] if a["labels"]["alertname"] == name]

    def wait_for(self, what: str, check: Any, *, seconds: float = 60.0) -> Any:
        """``check()``'s first truthy result, polled at most ``seconds`` (and 600 times)."""
        deadline = time.monotonic() + seconds
        for _ in range(600):
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        raise AssertionError(f"Prometheus: {what} not within {seconds:g} s")


@contextmanager
def running_prometheus(config: Path, folder: Path) -> Iterator[Prometheus]:
    """Prometheus on 127.0.0.1 (a free port) with ``config``, its data and log in ``folder``,
    ready; stopped with its children at the end."""
    assert PROMETHEUS.exists(), MISSING
    port = free_port()
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped with its children
    )
    try:
        prometheus = Prometheus(f"http://127.0.0.1:{port}")

        def ready() -> bool:
            assert process.poll() is None, (folder / "prometheus.log").read_text()[-2000:]
            try:
                return httpx.get(f"{prometheus.url}/-/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        prometheus.wait_for("readiness", ready, seconds=30)
        yield prometheus
    finally:
        terminate_tree(process.pid, grace=10)
        process.wait(timeout=15)
        log.close()
