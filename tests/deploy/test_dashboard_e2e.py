"""Every dashboard query returns data from a real Prometheus scraping the real daemon.

The emulator (simulated clock 300x), the daemon and Prometheus (Debian's package) each run as their own
process, on loopback ports; the daemon inside the unit's sandbox (system-call filter, socket families, W^X).
The daemon creates two pools and refreshes one (requested with `reconciler refresh`, as an admin
would), so the refresh panels have cycles to show. Prometheus scrapes every second and loads
alerts.yaml, so the rules are also proven to load in the server that evaluates them.
Then each panel's PromQL, with the template variables substituted as Grafana would, goes through the
HTTP API (`/api/v1/query_range`) and must return at least one series.

Bounded: every wait has a deadline, and all three processes are stopped at the end whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_env import (
    BIN,
    CLUSTER_YAML,
    POOL_YAML,
    ROOT,
    RunningEmulator,
    azure_yaml,
    dashboard,
    free_port,
    make_cluster_network,
    metric_names,
    panel_queries,
    require_tool,
    running_emulator,
    sandboxed,
    substitute,
)

pytestmark = pytest.mark.timeout(90)

BUDGET = 60.0
"""Seconds from the first process start until every query must have answered with data."""
REFRESHED = "e2e-refresh"
STEADY = "e2e-steady"

CLUSTER = "e2e-dask"
CLUSTER_FAMILIES = frozenset(
    {"reconciler_cluster_workers", "reconciler_cluster_target_workers", "reconciler_cluster_scheduler_up"}
)
"""Families the daemon serves once its passes reconcile clusters, which they do not yet. A panel on them
must return data as soon as /metrics carries their samples (the config declares a cluster, so they
will); until then Prometheus must accept its query, and the test prints the panel as not yet fed."""


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def http_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for(what: str, check: Callable[[], Any], deadline: float, diagnose: Callable[[], str]) -> Any:
    while True:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within the time budget\n{diagnose()}", pytrace=False)
        time.sleep(0.2)


class Stack:
    """The three processes and what the test needs to reach them."""

    def __init__(self, workdir: Path, emulator: RunningEmulator) -> None:
        self.workdir = workdir
        self.emulator = emulator
        self.started = time.monotonic()
        self.deadline = self.started + BUDGET
        self.config = workdir / "config.yaml"
        self.daemon_log = workdir / "daemon.log"
        self.prometheus_log = workdir / "prometheus.log"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.metrics_port = 0
        self.prometheus_url = ""

    def tail(self, path: Path, lines: int = 30) -> str:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def start_daemon(self) -> None:
        pools = POOL_YAML.format(pool=REFRESHED, nodes=2) + POOL_YAML.format(pool=STEADY, nodes=1)
        schedule = (
            "schedule:\n  reconcile_interval: 1s\n  jitter: 0s\nlogging:\n  level: info\n  format: json\n"
        )
        make_cluster_network(self.emulator.connection)
        clusters = CLUSTER_YAML.format(cluster=CLUSTER)
        self.config.write_text(
            azure_yaml(self.emulator.connection) + self.emulator.config_yaml(pools, schedule + clusters)
        )
        env = {**os.environ, "RECONCILER_TIME_SCALE": "300"}
        env.pop("NOTIFY_SOCKET", None)
        with self.daemon_log.open("wb") as out:
            process = subprocess.Popen(
                sandboxed(
                    str(BIN / "reconciler"), "run", "--config", str(self.config), "--metrics-port", "0"
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
            )
        self.processes.append(process)

        def listening() -> int | None:
            assert process.poll() is None, f"the daemon exited:\n{self.tail(self.daemon_log)}"
            for line in self.daemon_log.read_text().splitlines():
                if line.startswith("{") and json.loads(line).get("event") == "http.listening":
                    return int(json.loads(line)["port"])
            return None

        self.metrics_port = wait_for(
            "the daemon listening", listening, self.deadline, lambda: self.tail(self.daemon_log)
        )

    def start_prometheus(self) -> None:
        prometheus = require_tool("prometheus")
        port = free_port()
        rules = ROOT / "deploy" / "prometheus" / "alerts.yaml"
        config = self.workdir / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{rules}']\n"
            "scrape_configs:\n"
            "  - job_name: reconciler\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{self.metrics_port}']}}]\n"
        )
        with self.prometheus_log.open("wb") as out:
            process = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        self.processes.append(process)
        self.prometheus_url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert process.poll() is None, f"prometheus exited:\n{self.tail(self.prometheus_log)}"
            with urllib.request.urlopen(f"{self.prometheus_url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)

        wait_for("prometheus ready", ready, self.deadline, lambda: self.tail(self.prometheus_log))

    def request_refresh(self) -> None:
        """`reconciler refresh POOL` writes the request into the pool; the daemon carries it out."""

        def created() -> bool:
            text = self.scrape()
            return f'reconciler_pool_last_refresh_timestamp_seconds{{pool="{REFRESHED}"}}' in text

        wait_for(
            "the pools created by the daemon", created, self.deadline, lambda: self.tail(self.daemon_log)
        )
        result = subprocess.run(
            [str(BIN / "reconciler"), "refresh", REFRESHED, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text: str = response.read().decode()
            return text

    def query_range(self, expr: str) -> dict[str, Any]:
        now = time.time()
        params = urllib.parse.urlencode({"query": expr, "start": now - 120, "end": now, "step": "1"})
        answer: dict[str, Any] = http_json(f"{self.prometheus_url}/api/v1/query_range?{params}")
        return answer

    def daemon_peak_rss_mib(self) -> float:
        """The daemon's peak resident memory (VmHWM): what the ACI memory request is sized from."""
        status = Path(f"/proc/{self.processes[0].pid}/status").read_text()
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        return kib / 1024

    def close(self) -> None:
        if self.processes and self.processes[0].poll() is None:
            print(f"daemon peak RSS {self.daemon_peak_rss_mib():.0f} MiB")
        for process in reversed(self.processes):
            stop(process)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the module's checks: starting it is most of their cost."""
    workdir = tmp_path_factory.mktemp("e2e")
    with running_emulator(workdir) as emulator:
        running = Stack(workdir, emulator)
        try:
            running.start_daemon()
            running.start_prometheus()
            running.request_refresh()
            yield running
        finally:
            running.close()
            print(f"e2e stack up for {time.monotonic() - running.started:.1f} s")


def test_every_panel_returns_data(stack: Stack) -> None:
    template = {
        "instance": f"127.0.0.1:{stack.metrics_port}",
        "account": "demo",
        "pool": ".*",
        "cluster": ".*",
    }
    queries = panel_queries(template)

    def refreshed() -> bool:
        return f'reconciler_refresh_total{{pool="{REFRESHED}",result="done"}}' in stack.scrape()

    wait_for(
        "the requested refresh counted as done",
        refreshed,
        stack.deadline,
        lambda: stack.tail(stack.daemon_log),
    )

    pending: dict[str, str] = {}
    errors: dict[str, str] = {}
    not_fed: list[str] = []

    def all_answered() -> bool:
        pending.clear()
        errors.clear()
        not_fed.clear()
        scraped = stack.scrape()
        served = {name for name in CLUSTER_FAMILIES if f"\n{name}{{" in scraped}
        for title, expr in queries:
            answer = stack.query_range(expr)
            if answer.get("status") != "success":
                errors[title] = str(answer)
            elif not answer["data"]["result"]:
                if (metric_names(expr) & CLUSTER_FAMILIES) - served:
                    not_fed.append(title)
                else:
                    pending[title] = expr
        return not pending and not errors

    wait_for(
        "every panel's query returning data",
        all_answered,
        stack.deadline,
        lambda: json.dumps({"no data": pending, "errors": errors}, indent=2),
    )
    fed = len(queries) - len(not_fed)
    took = time.monotonic() - stack.started
    print(f"{fed} of {len(queries)} panel queries answered with data after {took:.1f} s")
    if not_fed:
        print(f"valid, but no data until the daemon serves cluster metrics: {', '.join(not_fed)}")


def test_variables_alerts_and_scrape(stack: Stack) -> None:
    """The template variables' label_values find the pools; Prometheus loaded the rules; `up` is 1."""
    instance = f"127.0.0.1:{stack.metrics_port}"

    def up() -> bool:
        answer = http_json(
            f"{stack.prometheus_url}/api/v1/query?query=" + urllib.parse.quote('up{job="reconciler"}')
        )
        return [r["value"][1] for r in answer["data"]["result"]] == ["1"]

    wait_for("up{job=reconciler} == 1", up, stack.deadline, lambda: stack.tail(stack.prometheus_log))
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query" or variable["name"] == "cluster":
            continue
        definition = substitute(variable["definition"], {"instance": instance, "account": ".*"})
        selector, label = definition.removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
        params = urllib.parse.urlencode({"match[]": selector})
        answer = http_json(f"{stack.prometheus_url}/api/v1/label/{label}/values?{params}")
        assert answer["data"], f"variable {variable['name']} would offer nothing"
        if label == "pool":
            assert {REFRESHED, STEADY} <= set(answer["data"])
    groups = http_json(f"{stack.prometheus_url}/api/v1/rules")["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert "ReconcilerDown" in loaded
    assert all(rule["health"] == "ok" for group in groups for rule in group["rules"])


def healthcheck_command(port: int) -> list[str]:
    """The Dockerfile's HEALTHCHECK command, aimed at `port` instead of the image's 9464."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("HEALTHCHECK"))
    command: list[str] = json.loads(line[line.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    return [sys.executable, *(arg.replace(":9464/", f":{port}/") for arg in command[1:])]


def test_probes_answer_as_the_image_and_aci_ask(stack: Stack) -> None:
    """HEALTHCHECK passes on the running daemon and fails where nothing listens; the ACI probe paths
    answer 200 once the daemon is ready."""
    result = subprocess.run(
        healthcheck_command(stack.metrics_port), capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    closed = subprocess.run(healthcheck_command(free_port()), capture_output=True, timeout=30, check=False)
    assert closed.returncode != 0
    group = (ROOT / "deploy" / "aci" / "container-group.yaml").read_text()
    for path in ("/healthz", "/readyz"):
        assert f"path: {path}" in group
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_port}{path}", timeout=5) as response:
            assert response.status == 200, path
