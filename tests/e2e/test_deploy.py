"""deploy/: the manifests are checked by real validators where one exists here
(kubernetes-validate for Kubernetes, systemd-analyze for the unit, logrotate -d, promtool),
and by structural tests for what none can check: there is no Docker engine on these
machines, so the image and compose file are checked as files, not built."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "kubernetes" / "base"
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.skipif(
    not VALIDATE.exists(), reason="kubernetes-validate is not installed (it is in the test extra)"
)
@pytest.mark.parametrize("name", ["deployment", "service", "hpa", "pdb", "networkpolicy"])
def test_kubernetes_manifests_validate(name):
    r = subprocess.run(
        [str(VALIDATE), "--strict", str(BASE / f"{name}.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed" in r.stdout + r.stderr


def test_the_deployment_is_probed_limited_and_locked_down():
    deployment = load(BASE / "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"proxy": 3128, "admin": 3129}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == "aiwarden-policy"
    assert volumes["catalog"]["configMap"]["name"] == "aiwarden-catalog"
    assert volumes["ca"]["secret"]["secretName"] == "aiwarden-ca"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert all(mounts[n]["readOnly"] for n in ("policy", "catalog", "ca"))
    assert "--audit-log" in container["args"]


def test_service_monitor_hpa_and_pdb_point_at_the_deployment():
    labels = load(BASE / "deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    service = load(BASE / "service.yaml")
    assert service["spec"]["selector"] == labels
    assert {p["name"] for p in service["spec"]["ports"]} == {"proxy", "admin"}
    monitor = load(BASE / "servicemonitor.yaml")
    assert monitor["spec"]["selector"]["matchLabels"] == service["metadata"]["labels"]
    assert monitor["spec"]["endpoints"] == [
        {"port": "admin", "path": "/metrics", "interval": "15s"}
    ]
    assert load(BASE / "pdb.yaml")["spec"]["selector"]["matchLabels"] == labels
    hpa = load(BASE / "hpa.yaml")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "aiwarden"
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    egress = load(BASE / "networkpolicy.yaml")["spec"]["egress"][0]["to"][0]["ipBlock"]
    assert "169.254.0.0/16" in egress["except"]
    listed = load(BASE / "kustomization.yaml")["resources"]
    assert sorted(listed) == sorted(
        p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    overlay = load(DEPLOY / "kubernetes/overlays/production/kustomization.yaml")
    assert overlay["resources"] == ["../../base"]


def test_the_image_runs_unprivileged_with_a_health_check():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    # the base is a build argument (test_container.py builds on Debian's packages); its
    # default is the public image
    assert re.search(r"^ARG BASE=python:3\.1[3-9]-slim-trixie$", dockerfile, re.M)
    assert re.search(r"^FROM \$\{BASE\}$", dockerfile, re.M)
    assert re.search(r"^USER 10001", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert 'ENTRYPOINT ["aiwarden", "run"]' in dockerfile
    cmd = re.search(r"^CMD (\[.*?\])$", dockerfile.replace("\\\n", ""), re.M | re.S)
    args = yaml.safe_load(cmd.group(1).replace("     ", " "))
    container = load(BASE / "deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    assert args == container["args"], "the image and the Deployment run the same way"


def test_compose_mounts_files_that_exist():
    compose = load(DEPLOY / "compose.yaml")
    assert set(compose["services"]) == {"aiwarden", "prometheus", "grafana"}
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source in compose.get("volumes", {}):
                continue  # a named volume
            assert (DEPLOY / source).exists(), f"{source} is mounted but does not exist"
    # run as test_container.py runs the image: the service user, nothing writable but the
    # state volume and /tmp, and the coaching store on that volume
    proxy = compose["services"]["aiwarden"]
    assert proxy["user"] == "10001:10001" and proxy["read_only"] is True
    assert proxy["tmpfs"] == ["/tmp"] and proxy["cap_drop"] == ["ALL"]
    assert "aiwarden-state:/var/lib/aiwarden" in proxy["volumes"]
    assert "../certs:/etc/aiwarden/certs:ro" in proxy["volumes"]
    grafana_source = load(DEPLOY / "grafana/provisioning/datasources/aiwarden.yaml")
    assert grafana_source["datasources"][0]["url"] == "http://prometheus:9090"


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (.ci/run installs Debian's prometheus package)",
)
def test_prometheus_configurations_are_valid():
    for name in ("prometheus.yml", "compose.yml"):
        r = subprocess.run(
            ["promtool", "check", "config", str(DEPLOY / "prometheus" / name)],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_systemd_unit_verifies(tmp_path):
    unit = (DEPLOY / "systemd/aiwarden.service").read_text()
    assert "DynamicUser=yes" in unit and "NoNewPrivileges=yes" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    # verify checks that ExecStart exists: point it at this checkout's aiwarden
    local = tmp_path / "aiwarden.service"
    local.write_text(
        unit.replace("/opt/aiwarden/bin/aiwarden", str(Path(sys.executable).parent / "aiwarden"))
    )
    r = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


@pytest.mark.skipif(
    shutil.which("logrotate") is None,
    reason="logrotate is not installed (.ci/run installs Debian's logrotate package)",
)
def test_logrotate_configuration_parses(tmp_path):
    config = (DEPLOY / "systemd/aiwarden.logrotate").read_text()
    log = tmp_path / "audit.jsonl"
    log.write_text("{}\n")
    local = tmp_path / "aiwarden"
    local.write_text(config.replace("/var/log/aiwarden/audit.jsonl", str(log)))
    r = subprocess.run(
        ["logrotate", "-d", "-s", str(tmp_path / "state"), str(local)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error" not in (r.stdout + r.stderr).lower()
