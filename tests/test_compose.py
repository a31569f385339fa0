"""docker-compose.yml: every service is healthchecked, every command is a real CLI command,
every URL names a service that exists, and Prometheus scrapes services that exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from postgate.cli.main import parser
from postgate.providers.mx_dns import MxSettings
from postgate.providers.smpp import SmppSettings
from postgate.providers.smsapi import SmsApiSettings
from postgate.providers.smtp import SmtpSettings
from postgate.settings import Settings

ROOT = Path(__file__).parent.parent


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


POSTGATE = ("api", "planner", "sender", "sweeper", "feedback", "retention", "contacts", "events")


def test_required_services_exist_with_healthchecks() -> None:
    services = compose()["services"]
    for name in ("postgres", "redis", *POSTGATE, "prometheus", "grafana"):
        assert name in services, name
        check = services[name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), name


# every setting's environment name: the engine's and each provider's (its prefix + field)
KNOWN = {f.upper() for f in Settings.model_fields} | {
    f"{model.model_config.get('env_prefix', '')}{f}".upper()
    for model in (SmtpSettings, MxSettings, SmppSettings, SmsApiSettings)
    for f in model.model_fields
}


def test_every_postgate_command_parses_and_settings_load() -> None:
    for name, service in compose()["services"].items():
        if service.get("build") != ".":
            continue
        args = parser().parse_args(service["command"])
        assert callable(args.fn), name
        env = {k.lower(): v for k, v in service["environment"].items() if "${" not in str(v)}
        settings = Settings(**env)
        assert set(service["environment"]) <= KNOWN, (name, set(service["environment"]) - KNOWN)
        host = settings.database_url.split("@")[1].split(":")[0]
        assert host in compose()["services"]
        assert settings.broker_url.split("//")[1].split(":")[0] in compose()["services"]


def test_workers_wait_for_migrations_and_the_broker() -> None:
    services = compose()["services"]
    for name in POSTGATE:
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["redis"]["condition"] == "service_healthy"


def test_prometheus_scrapes_compose_services() -> None:
    config = yaml.safe_load((ROOT / "dashboards" / "prometheus.yml").read_text())
    services = compose()["services"]
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                assert target.split(":")[0] in services
        for sd in job.get("dns_sd_configs", []):
            assert all(n in services for n in sd["names"])


def test_dockerfile_installs_the_package() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install" in text and 'ENTRYPOINT ["postgate"]' in text
