"""deploy/: the manifests are checked by real validators where one exists here
(kubernetes-validate for Kubernetes, systemd-analyze for the unit, logrotate -d, promtool),
and by structural tests for what none can check: there is no Docker engine on these
machines, so the image and compose file are checked as files, not built."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SHIPPED, SHIPPED_CATALOG

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
    # the service user reads the CA: the Secret's files are group fsGroup, mode 0440
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == 10001
    assert volumes["ca"]["secret"]["defaultMode"] == 0o440
    # the coaching store is on a writable volume, not in the read-only confdir
    args = container["args"]
    store = args[args.index("--coaching-store") + 1]
    assert Path(store).parent == Path(mounts["state"]["mountPath"])
    assert "emptyDir" in volumes["state"]
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
        [
            *(p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml"),
            "../../../policies",
        ]
    )
    overlay = load(DEPLOY / "kubernetes/overlays/production/kustomization.yaml")
    assert "../../base" in overlay["resources"]


def test_the_policy_configmaps_list_every_catalog_file():
    """policies/kustomization.yaml makes the ConfigMaps `kubectl apply -k` needs; a catalog
    file it does not list would be missing from every pod."""
    generators = {
        g["name"]: g["files"] for g in load(SHIPPED / "kustomization.yaml")["configMapGenerator"]
    }
    assert generators["aiwarden-policy"] == ["policy.yaml"]
    catalog = sorted(f"catalog/{p.name}" for p in SHIPPED_CATALOG.glob("*.yaml"))
    assert sorted(generators["aiwarden-catalog"]) == catalog


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


def test_the_unit_reads_its_ca_as_credentials_and_matches_logrotate():
    """The key stays root 0600 on disk: systemd hands it over (LoadCredential=) in %d, which
    only the service's user reads; what the proxy writes is in its own state and log
    directories; logrotate creates the next audit log for the unit's user and group."""
    unit = (DEPLOY / "systemd/aiwarden.service").read_text()
    assert "DynamicUser=yes" not in unit  # logrotate must name the owner when it is not running
    settings = [
        line.split("=", 1) for line in unit.replace("\\\n", " ").splitlines() if "=" in line
    ]
    values = {}
    for key, value in settings:
        values.setdefault(key.strip(), []).append(value.strip())
    credentials = {v.split(":", 1)[0]: v.split(":", 1)[1] for v in values["LoadCredential"]}
    assert credentials == {
        name: f"/etc/aiwarden/certs/{name}"
        for name in ("ca.pem", "mitmproxy-ca.pem", "mitmproxy-dhparam.pem")
    }
    command = values["ExecStart"][0].split()
    assert command[command.index("--confdir") + 1] == "%d"
    assert command[command.index("--coaching-store") + 1] == "%S/aiwarden/coaching.sqlite3"
    assert values["StateDirectory"] == ["aiwarden"] and values["LogsDirectory"] == ["aiwarden"]
    audit = command[command.index("--audit-log") + 1]
    user, group = values["User"][0], values["Group"][0]
    rotate = (DEPLOY / "systemd/aiwarden.logrotate").read_text()
    assert f"{audit} {{" in rotate
    assert f"create 0640 {user} {group}" in rotate
    sysusers = (DEPLOY / "systemd/aiwarden.sysusers").read_text()
    assert f"u {user} -" in sysusers


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_systemd_unit_verifies(tmp_path):
    unit = (DEPLOY / "systemd/aiwarden.service").read_text()
    assert "NoNewPrivileges=yes" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    # verify checks that ExecStart exists: point it at this checkout's aiwarden
    local = tmp_path / "aiwarden.service"
    local.write_text(
        unit.replace("/opt/aiwarden/bin/aiwarden", str(Path(sys.executable).parent / "aiwarden"))
    )
    r = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    if shutil.which("systemd-sysusers"):  # the user it names: what sysusers would create
        r = subprocess.run(
            ["systemd-sysusers", "--dry-run", str(DEPLOY / "systemd/aiwarden.sysusers")],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr


@pytest.mark.skipif(
    shutil.which("logrotate") is None,
    reason="logrotate is not installed (.ci/run installs Debian's logrotate package)",
)
def test_logrotate_configuration_parses(tmp_path):
    config = (DEPLOY / "systemd/aiwarden.logrotate").read_text()
    log = tmp_path / "audit.jsonl"
    log.write_text("{}\n")
    local = tmp_path / "aiwarden"
    # the service user exists where the unit is installed (aiwarden.sysusers), not here
    me = f"{pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name}"
    local.write_text(
        config.replace("/var/log/aiwarden/audit.jsonl", str(log)).replace("aiwarden aiwarden", me)
    )
    r = subprocess.run(
        ["logrotate", "-d", "-s", str(tmp_path / "state"), str(local)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error" not in (r.stdout + r.stderr).lower()


def kustomize_why_not() -> str | None:
    if shutil.which("kubectl") is None:
        return "kubectl is not installed (.ci/run installs Debian's kubernetes-client)"
    r = subprocess.run(
        ["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True
    )
    version = (yaml.safe_load(r.stdout or "{}") or {}).get("kustomizeVersion", "")
    if not re.match(r"v([4-9]|\d\d)\.", version):
        return f"kubectl's kustomize is {version or 'unknown'}; the overlays need v4 or later"
    return None


def render(path: Path) -> list[dict]:
    r = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


@pytest.mark.skipif(kustomize_why_not() is not None, reason=str(kustomize_why_not()))
@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_kustomize_renders_everything_apply_needs(overlay, tmp_path):
    docs = render(DEPLOY / "kubernetes" / overlay)
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    # the ConfigMaps come with it (a fresh cluster has none), named as the Deployment mounts
    policy = kinds[("ConfigMap", "aiwarden-policy")]["data"]
    assert policy == {"policy.yaml": (SHIPPED / "policy.yaml").read_text()}
    catalog = kinds[("ConfigMap", "aiwarden-catalog")]["data"]
    assert catalog == {p.name: p.read_text() for p in SHIPPED_CATALOG.glob("*.yaml")}
    pod = kinds[("Deployment", "aiwarden")]["spec"]["template"]["spec"]
    names = {v["name"]: v for v in pod["volumes"]}
    assert names["policy"]["configMap"]["name"] == "aiwarden-policy"
    assert names["catalog"]["configMap"]["name"] == "aiwarden-catalog"
    assert names["ca"]["secret"]["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"]
    # client-side apply keeps a copy of each object in an annotation of at most 256 KiB
    if len(yaml.safe_dump(kinds[("ConfigMap", "aiwarden-catalog")])) > 262144:
        assert "apply --server-side -k" in (ROOT / "README.md").read_text()
    if VALIDATE.exists():  # the rendered objects, not only the files (ServiceMonitor: a CRD)
        out = tmp_path / "rendered.yaml"
        yaml.safe_dump_all([d for d in docs if d["kind"] != "ServiceMonitor"], out.open("w"))
        r = subprocess.run(
            [str(VALIDATE), "--strict", str(out)], capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(kustomize_why_not() is not None, reason=str(kustomize_why_not()))
def test_production_exposes_the_proxy_and_only_the_pac_and_ca_of_the_admin_port():
    docs = render(DEPLOY / "kubernetes/overlays/production")
    assert {d["metadata"].get("namespace", "aiwarden") for d in docs} == {"aiwarden"}
    assert any(d["kind"] == "Namespace" and d["metadata"]["name"] == "aiwarden" for d in docs)
    services = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Service"}
    balanced = [s for s in services.values() if s.get("type") == "LoadBalancer"]
    assert balanced, "clients need the proxy on a load balancer"
    for spec in balanced:
        assert [p["targetPort"] for p in spec["ports"]] == ["proxy"]  # never the admin port
        assert spec["externalTrafficPolicy"] == "Local"  # the client's address, not the node's
    assert services["aiwarden"].get("type", "ClusterIP") == "ClusterIP"
    (ingress,) = [d for d in docs if d["kind"] == "Ingress"]
    paths = {
        p["path"]: p["backend"]["service"]
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
    }
    assert set(paths) == {"/proxy.pac", "/wpad.dat", "/ca.pem"}
    assert all(
        p["pathType"] == "Exact" for r in ingress["spec"]["rules"] for p in r["http"]["paths"]
    )
    assert all(b == {"name": "aiwarden", "port": {"name": "admin"}} for b in paths.values())
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    admin_from = [
        peer
        for rule in policy["spec"]["ingress"]
        if {"port": 3129, "protocol": "TCP"} in rule["ports"]
        for peer in rule["from"]
    ]
    assert all("ipBlock" not in peer for peer in admin_from), "clients reach admin via the Ingress"
    assert {"kubernetes.io/metadata.name": "ingress-nginx"} in [
        p["namespaceSelector"]["matchLabels"] for p in admin_from
    ]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--pac-proxy") + 1].endswith(":3128")
