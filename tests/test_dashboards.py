"""Dashboards and alert rules use only metrics the code exports, and compose provisions them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import postgate.observability.metrics  # noqa: F401  (registers the process metrics)
from postgate.campaigns.gauges import PipelineGauges
from tests.support import World

ROOT = Path(__file__).parent.parent
KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("(") or match.group() in KEYWORDS:
            continue
        names.add(match.group())
    return names


def dashboard_exprs() -> list[str]:
    exprs = []
    for path in (ROOT / "dashboards" / "grafana" / "dashboards").glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            exprs.extend(target["expr"] for target in panel["targets"])
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    config = yaml.safe_load((ROOT / "dashboards" / "alerts.yml").read_text())
    return [rule for group in config["groups"] for rule in group["rules"]]


def exported(world: World) -> set[str]:
    families = list(REGISTRY.collect())
    families += list(PipelineGauges(world.ctx.engine, lambda: {"send": 0}).collect())
    return {family.name + suffix for family in families for suffix in SUFFIXES[family.type]}


def test_the_expression_parser_finds_metric_names_only() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, provider) (rate(postgate_send_seconds_bucket"
        '{job=~"a|b"}[5m]))) > 0.5 unless on (x) up{job="p"} and foo_total offset 5m'
    )
    assert metric_names(expr) == {"postgate_send_seconds_bucket", "up", "foo_total"}


def test_every_metric_a_panel_or_rule_uses_is_exported(world: World) -> None:
    names = exported(world)
    exprs = dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
    assert len(exprs) > 20
    used = set().union(*map(metric_names, exprs))
    assert "postgate_messages_total" in used and "postgate_queue_lag_seconds" in used
    missing = {name for name in used if name not in names and name != "up"}
    assert not missing, f"panels or rules use metrics nobody exports: {sorted(missing)}"


def test_the_required_alerts_exist() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    for name in (
        "PostgateComplaintRateNearThreshold",
        "PostgateTenantAutoDisabled",
        "PostgateQueueLag",
        "PostgateProviderDown",
        "PostgateUnverifiedFeedbackBurst",
    ):
        assert name in rules
        assert rules[name]["labels"]["severity"] in ("info", "warning", "critical")
        assert rules[name]["annotations"]["summary"]
    assert "0.8" in rules["PostgateComplaintRateNearThreshold"]["expr"]


def test_every_panel_has_a_datasource_the_provisioning_defines() -> None:
    sources = yaml.safe_load(
        (
            ROOT / "dashboards" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
        ).read_text()
    )["datasources"]
    uids = {source["uid"] for source in sources}
    for path in (ROOT / "dashboards" / "grafana" / "dashboards").glob("*.json"):
        board = json.loads(path.read_text())
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids))
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] in uids, panel["title"]
            assert panel["targets"], panel["title"]


@pytest.mark.parametrize(
    ("service", "source", "target"),
    [
        ("prometheus", "./dashboards/alerts.yml", "/etc/prometheus/alerts.yml"),
        ("grafana", "./dashboards/grafana/dashboards", "/var/lib/grafana/dashboards"),
        ("grafana", "./dashboards/grafana/provisioning", "/etc/grafana/provisioning"),
    ],
)
def test_compose_mounts_the_rules_and_dashboards_where_the_config_looks(
    service: str, source: str, target: str
) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert f"{source}:{target}:ro" in compose["services"][service]["volumes"]
    assert (ROOT / source).exists()
    prometheus = yaml.safe_load((ROOT / "dashboards" / "prometheus.yml").read_text())
    assert "/etc/prometheus/alerts.yml" in prometheus["rule_files"]
    providers = yaml.safe_load(
        (
            ROOT / "dashboards" / "grafana" / "provisioning" / "dashboards" / "postgate.yml"
        ).read_text()
    )["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"
