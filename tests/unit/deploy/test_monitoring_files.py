"""docker/monitoring: the Grafana dashboard asks only for metrics the server exports, and parses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import tinyim.infra.metrics  # noqa: F401  (registers the metrics)

MONITORING = Path(__file__).resolve().parents[3] / "docker" / "monitoring"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exported_names() -> set[str]:
    names = set()
    for metric in REGISTRY.collect():
        names.add(metric.name)
        names.update(sample.name for sample in metric.samples)
        names.update(metric.name + suffix for suffix in SUFFIXES)
    return names


def test_every_dashboard_query_names_an_exported_metric() -> None:
    dashboard = json.loads((MONITORING / "tinyim-dashboard.json").read_text())
    exported = exported_names()
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used.update(re.findall(r"\btinyim_[a-z_]+", target["expr"]))
    assert used, "the dashboard queries TinyIM's metrics"
    assert used <= exported, sorted(used - exported)


def test_prometheus_and_grafana_provisioning_parse() -> None:
    for name in (
        "prometheus.yml",
        "prometheus.single.yml",
        "grafana-datasource.yml",
        "grafana-dashboards.yml",
    ):
        assert yaml.safe_load((MONITORING / name).read_text()), name
