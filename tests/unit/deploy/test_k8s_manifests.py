"""deploy/k8s: valid Kubernetes objects (schemas of kubernetes-validate, strict), one workload per role,
readiness on /healthz, configuration from the ConfigMap and the Secret, no secret in the repository."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tinyim.settings import ALL_ROLES, Settings

K8S = Path(__file__).resolve().parents[3] / "deploy" / "k8s"
VERSION = "1.30"
SECRETS = {"IM_JWT_SECRET", "IM_DATABASE_URL", "IM_DATABASE_REPLICA_URLS", "IM_REDIS_URL"}


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def workloads() -> list[dict[str, Any]]:
    return [d for d in documents() if d["kind"] in ("Deployment", "StatefulSet")]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    [only] = workload["spec"]["template"]["spec"]["containers"]
    return dict(only)


def test_every_object_validates_strictly() -> None:
    for doc in documents():
        kubernetes_validate.validate(doc, VERSION, strict=True)


def test_the_validator_does_refuse_a_broken_object() -> None:
    broken = copy.deepcopy(workloads()[0])
    container(broken)  # still one container
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_one_workload_per_role_each_ready_on_healthz_and_configured_from_configmap_and_secret() -> None:
    roles = {}
    for workload in workloads():
        c = container(workload)
        env = {e["name"]: e for e in c.get("env", [])}
        roles[env["IM_ROLES"]["value"]] = workload
        assert c["readinessProbe"]["httpGet"]["path"] == "/healthz", workload["metadata"]["name"]
        sources = {next(iter(s)) for s in c["envFrom"]}
        assert sources == {"configMapRef", "secretRef"}
        assert c["resources"]["limits"], "every role has resource limits"
        if env["IM_ROLES"]["value"] != "dispatch":
            assert c["livenessProbe"]["grpc"]["port"] == 9080  # grpc.health.v1
    assert set(roles) == set(ALL_ROLES)
    worker = container(roles["msg"])["env"]
    assert any(e["name"] == "IM_WORKER_ID" for e in worker)  # unique Snowflake worker per msg pod


def test_no_secret_is_kept_in_the_manifests_and_every_setting_named_exists() -> None:
    known = {f"IM_{name.upper()}" for name in Settings.model_fields}
    for doc in documents():
        assert doc["kind"] != "Secret", "secrets are created by hand, never committed"
        if doc["kind"] == "ConfigMap":
            assert not SECRETS & set(doc["data"])
            assert {k for k in doc["data"] if k.startswith("IM_")} <= known
    for workload in workloads():
        for entry in container(workload).get("env", []):
            assert entry["name"] not in SECRETS
            if entry["name"].startswith("IM_"):
                assert entry["name"] in known, f"{entry['name']} is not a setting"
