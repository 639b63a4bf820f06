"""The listener: /metrics in the exposition format, probes that answer 503 when they fail, TLS, basic auth."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from prometheus_client.parser import text_string_to_metric_families

from reconciler.daemon.http import Listener, start_listener
from reconciler.daemon.metrics import Metrics
from reconciler.spec.config import Metrics as MetricsSettings


class Probes:
    def __init__(self) -> None:
        self.healthy = True
        self.is_ready = False

    def alive(self) -> tuple[bool, str]:
        return self.healthy, "scheduler progressing" if self.healthy else "no progress"

    def ready(self) -> tuple[bool, str]:
        return self.is_ready, "ok" if self.is_ready else "first pass not finished"


@pytest.fixture
async def served() -> AsyncIterator[tuple[Listener, Probes, Metrics]]:
    metrics, probes = Metrics(), Probes()
    listener = await start_listener(MetricsSettings(), metrics.registry, probes, port=0)
    yield listener, probes, metrics
    await listener.close()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def fetch(url: str, **kwargs: Any) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def test_metrics_and_probes(served: tuple[Listener, Probes, Metrics]) -> None:
    listener, probes, metrics = served
    assert listener.scheme == "http"
    base = f"http://127.0.0.1:{listener.port}"
    metrics.config_reload(applied=False)
    status, content_type, text = await fetch(f"{base}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (failure,) = [
        s for s in families["reconciler_config_reloads"].samples if s.labels == {"result": "failure"}
    ]
    assert failure.name == "reconciler_config_reloads_total"
    assert failure.value == 1

    assert (await fetch(f"{base}/healthz"))[0] == 200
    probes.healthy = False
    status, _, text = await fetch(f"{base}/healthz")
    assert status == 503
    assert "no progress" in text
    status, _, text = await fetch(f"{base}/readyz")
    assert status == 503
    assert "first pass not finished" in text
    probes.is_ready = True
    assert (await fetch(f"{base}/readyz"))[0] == 200
    assert (await fetch(f"{base}/other"))[0] == 404


def test_the_default_listener_is_loopback_on_9464() -> None:
    settings = MetricsSettings()
    assert settings.address == "127.0.0.1"
    assert settings.port == 9464


async def test_basic_auth_and_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    settings = MetricsSettings.model_validate(
        {
            "tls": {"cert_file": str(cert_file), "key_file": str(key_file)},
            "basic_auth": {"username": "prom", "password": "scrape-pw"},
        }
    )
    listener = await start_listener(settings, Metrics().registry, Probes(), port=0)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    url = f"https://127.0.0.1:{listener.port}/metrics"
    try:
        assert listener.scheme == "https"
        status, _, _ = await fetch(url, ssl=client_tls)
        assert status == 401
        assert (await fetch(url, ssl=client_tls, headers={"Authorization": basic("prom", "nope")}))[0] == 401
        assert (await fetch(url, ssl=client_tls, headers={"Authorization": "Basic !!"}))[0] == 401
        assert (await fetch(url, ssl=client_tls, headers={"Authorization": "Bearer x"}))[0] == 401
        status, _, text = await fetch(
            url, ssl=client_tls, headers={"Authorization": basic("prom", "scrape-pw")}
        )
        assert status == 200
        assert "reconciler_build_info" in text
        with pytest.raises(aiohttp.ClientError):
            await fetch(f"http://127.0.0.1:{listener.port}/metrics")
    finally:
        await listener.close()
