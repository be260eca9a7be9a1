"""The image, built and run for real with podman, the way deploy/compose.yaml runs it.

A base image is made from Debian's packages with mmdebstrap (there is no registry to pull
`python:*-slim` from here) and kept under /var/tmp, keyed by its recipe and the month, so a
machine builds it once. deploy/Dockerfile is built on it with `--build-arg BASE=...`; the
image is tagged by a hash of the build context and reused while that hash is unchanged.

The container then runs as compose.yaml runs it: uid 10001, read-only root filesystem, tmpfs
/tmp, no capabilities, the policy and the CA mounted read-only, the coaching store on a
volume. The CA is owned by root with the group and modes README "Deploying" tells the
operator to set (key 0640, group 10001), so the key is read as the service user reads it in
production; with the key as `aiwarden ca init` leaves it (0600 root) the container must
not start: it says why and exits. It runs on the host's network with free loopback ports
(the local upstream is on loopback too) and is driven with curl: a block, a tunnel, /readyz,
/metrics, a warning whose grant store is written, the image's health check, and a policy
change seen live.

The systemd unit is run the same way: an image of Debian with systemd as its init, the
shipped unit, sysusers and logrotate files installed as README "Deploying" says, booted in a
privileged container without network, and driven from inside.

podman needs root here and runs with runc and cgroupfs (crun refuses on hybrid cgroups, see
../shared/reference/containers.md); where it cannot, the tests skip and say why. The build
needs the Debian archive and PyPI; the host's CA bundle is mounted for pip at build time
only, never written into the image.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT
from proxyharness import Upstream, curl, make_upstream_pki

from proxy import ca

PODMAN = shutil.which("podman")
MMDEBSTRAP = shutil.which("mmdebstrap")
CACHE = Path(os.environ.get("AIWARDEN_CONTAINER_CACHE", "/var/tmp/aiwarden-containers"))
HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# podman's global flags on these machines: runc and cgroupfs, and limits it may set
RUNTIME = ["--runtime", "runc", "--cgroup-manager=cgroupfs"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
BASE_RECIPE = [
    "--variant=minbase",
    "--include=python3,python3-venv,ca-certificates",
    "trixie",
]
BASE_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UID = 10001
START_TIMEOUT = 60


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([PODMAN, *RUNTIME, *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])}... failed:\n{r.stdout}\n{r.stderr}")
    return r


def why_podman_cannot_run() -> str | None:
    if PODMAN is None:
        return "podman is not installed (.ci/run installs Debian's podman and runc)"
    if shutil.which("runc") is None:
        return "runc is not installed (.ci/run installs it; crun refuses on these hosts)"
    if os.geteuid() != 0:
        return "podman runs rootful here: these tests need root (CI runs as root)"
    return None


pytestmark = pytest.mark.skipif(
    why_podman_cannot_run() is not None, reason=str(why_podman_cannot_run())
)


# -- images -----------------------------------------------------------------------------------


def base_image(recipe: list[str] = BASE_RECIPE, name: str = "base") -> str:
    """A Python 3.13 image from Debian's packages, built once per recipe and month."""
    key = hashlib.sha256(
        json.dumps([recipe, BASE_PATH, datetime.date.today().strftime("%Y-%m")]).encode()
    ).hexdigest()[:12]
    tag = f"localhost/aiwarden-test-{name}:{key}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    CACHE.mkdir(parents=True, exist_ok=True)
    tar = CACHE / f"{name}-{key}.tar"
    if not tar.exists():
        if MMDEBSTRAP is None:
            pytest.skip("mmdebstrap is not installed (.ci/run installs it): no base image")
        partial = tar.with_suffix(".partial")
        r = subprocess.run(
            [MMDEBSTRAP, "--format=tar", *recipe, str(partial)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if r.returncode != 0:
            partial.unlink(missing_ok=True)
            pytest.skip(f"mmdebstrap could not build the base image: {r.stderr[-500:]}")
        partial.rename(tar)
        for old in CACHE.glob(f"{name}-*.tar"):  # last month's
            if old != tar:
                old.unlink()
    podman("import", "--change", f"ENV {BASE_PATH}", str(tar), tag, timeout=300)
    probe = podman(
        "run", "--rm", *LIMITS, tag, "python3", "-c", "print('container ok')", check=False
    )
    if "container ok" not in probe.stdout:
        pytest.skip(f"podman cannot run a container here: {probe.stderr[-500:]}")
    return tag


def context_digest(base: str, *more: Path) -> str:
    """What the build sees (.dockerignore keeps the rest out) and the base it starts from."""
    h = hashlib.sha256(base.encode())
    files = [ROOT / "deploy/Dockerfile", ROOT / ".dockerignore", ROOT / "pyproject.toml"]
    files += [ROOT / "README.md", *more]
    for folder in ("proxy", "policies"):
        files += sorted(
            p for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    for path in files:
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def build(base: str, containerfile: Path, name: str, *more: Path) -> str:
    """The image of `containerfile` on `base`, reused while its context is unchanged."""
    tag = f"localhost/aiwarden-test-{name}:{context_digest(base, containerfile, *more)}"
    if podman("image", "exists", tag, check=False).returncode != 0:
        args = [
            "build", *LIMITS, "--format", "docker", "--build-arg", f"BASE={base}",
            "--build-arg", "KERBEROS=no",  # Kerberos needs an apt index at build time
            "-f", str(containerfile), "-t", tag,
        ]  # fmt: skip
        if HOST_BUNDLE.exists():  # the TLS proxy in front of PyPI: for pip, at build time only
            args += ["-v", f"{HOST_BUNDLE}:{HOST_BUNDLE}:ro"]
        podman(*args, str(ROOT), timeout=900)
        listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout
        for old in listed.split():
            if old.startswith(f"localhost/aiwarden-test-{name}:") and old != tag:
                podman("rmi", "-f", old, check=False)
    return tag


@pytest.fixture(scope="module")
def image() -> dict:
    tag = build(base_image(), ROOT / "deploy/Dockerfile", "image")
    (config,) = json.loads(podman("image", "inspect", tag).stdout)
    return {"tag": tag, **config["Config"], "Healthcheck": config.get("Healthcheck") or {}}


# -- a container run as compose.yaml runs it --------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def operator_ca(directory: Path) -> Path:
    """A CA as README "Deploying" tells the operator to leave it for the container: owned by
    root, group 10001, the key 0640, the directory 0750."""
    ca.init(directory)
    os.chown(directory, 0, UID)
    directory.chmod(0o750)
    for path in directory.iterdir():
        os.chown(path, 0, UID)
    (directory / ca.MITMPROXY_BUNDLE).chmod(0o640)
    return directory


POLICY_EXTRA = """
  - id: warn-coaching-test
    match: {hosts: [warn.test]}
    action: warn
    justification: none
"""


def container_policy(directory: Path) -> Path:
    """The shipped policy and catalog, with loopback allowed as a destination (the test's
    upstream is there) and a warn rule on a name nothing else uses, readable by uid 10001."""
    shutil.copytree(ROOT / "policies", directory)
    policy = directory / "policy.yaml"
    text = policy.read_text()
    text = text.replace(
        'deny_destinations: [0.0.0.0/8, 127.0.0.0/8, "::1/128", ', "deny_destinations: ["
    )
    assert '127.0.0.0/8, "::1/128", 169' not in text
    assert "\nrules:\n" in text
    policy.write_text(text.replace("\nrules:\n", "\nrules:" + POLICY_EXTRA, 1))
    for path in [directory, *directory.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return directory


class Container:
    """The image's own command with the listen and admin addresses on free loopback ports."""

    def __init__(
        self, image: dict, policy: Path, certs: Path, name: str, logs: Path | None = None
    ) -> None:
        self.name = name
        self.volume = f"{name}-state"
        self.proxy_port, self.admin_port = free_port(), free_port()
        self.proxy = f"http://127.0.0.1:{self.proxy_port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        args = list(image["Cmd"])
        args[args.index("--listen") + 1] = f"127.0.0.1:{self.proxy_port}"
        args[args.index("--admin") + 1] = f"127.0.0.1:{self.admin_port}"
        mounts = []
        if logs is not None:  # the audit log in a file, as the systemd unit writes it
            args[args.index("--audit-log") + 1] = "/var/log/aiwarden/audit.jsonl"
            mounts = ["-v", f"{logs}:/var/log/aiwarden"]
        self.args = args
        podman("rm", "-f", name, check=False)
        podman("volume", "rm", "-f", self.volume, check=False)
        podman(
            "run", "-d", "--name", name, *LIMITS, "--network=host", "--no-healthcheck",
            "--user", f"{UID}:{UID}", "--read-only", "--tmpfs", "/tmp",
            "--cap-drop=ALL", "--security-opt", "no-new-privileges",
            "-v", f"{policy}:/etc/aiwarden/policy:ro",
            "-v", f"{certs}:/etc/aiwarden/certs:ro",
            "--mount", f"type=volume,source={self.volume},target=/var/lib/aiwarden", *mounts,
            image["tag"], *args,
        )  # fmt: skip

    def running(self) -> bool:
        r = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return r.stdout.strip() == "true"

    def logs(self) -> str:
        r = podman("logs", self.name, check=False)
        return r.stdout + r.stderr

    def wait_ready(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            r = curl(f"{self.admin}/readyz", timeout=5)
            if r.returncode == 0 and r.stdout.startswith("ready"):
                return r.stdout
            if not self.running():
                raise AssertionError(f"the container exited:\n{self.logs()[-3000:]}")
            time.sleep(0.5)
        raise AssertionError(f"not ready in {START_TIMEOUT}s:\n{self.logs()[-3000:]}")

    def remove(self) -> None:
        podman("rm", "-f", "-t", "5", self.name, check=False)
        podman("volume", "rm", "-f", self.volume, check=False)


@pytest.fixture
def run(image, tmp_path):
    started: list[Container] = []

    def start(certs: Path, logs: Path | None = None) -> Container:
        policy = container_policy(tmp_path / "policy")
        name = f"aiwarden-test-{os.getpid()}-{len(started)}"
        c = Container(image, policy, certs, name, logs)
        started.append(c)
        return c

    yield start
    for c in started:
        c.remove()


def status(r: subprocess.CompletedProcess) -> int:
    return int(r.stdout.rsplit("\n", 1)[-1] or 0)


# -- the tests --------------------------------------------------------------------------------


def test_the_image_is_built_to_run_unprivileged(image):
    assert image["User"] == f"{UID}:{UID}"
    assert image["Entrypoint"] == ["aiwarden", "run"]
    assert "--coaching-store" in image["Cmd"]  # never in the read-only confdir
    assert not [e for e in image["Env"] if e.startswith(("PIP_CERT", "REQUESTS_CA"))]
    assert "/healthz" in " ".join(image["Healthcheck"]["Test"])


def test_the_container_blocks_tunnels_reports_and_follows_the_policy(image, run, tmp_path):
    certs = operator_ca(tmp_path / "certs")
    pki = make_upstream_pki(tmp_path, ("localhost",))
    upstream = Upstream(tls=(pki[1], pki[2]))
    try:
        c = run(certs)
        ready = c.wait_ready()
        digest = ready.rsplit(" ", 1)[-1].strip()

        # a catalogued AI host: intercepted with the mounted CA (its key read as uid 10001)
        # and answered by the proxy, never connected to
        r = curl(
            "--proxy", c.proxy, "--cacert", str(certs / "ca.pem"), "-w", "\n%{http_code}",
            "https://api.openai.com/v1/models",
        )  # fmt: skip
        assert status(r) == 403, r.stdout + r.stderr
        assert "PermissionDenied" in r.stdout or "permission" in r.stdout.lower(), r.stdout

        # a non-AI destination: tunnelled, so curl sees the upstream's own certificate
        r = curl(
            "--proxy", c.proxy, "--cacert", str(pki[0]), "-w", "\n%{http_code}",
            f"https://localhost:{upstream.port}/hello",
        )  # fmt: skip
        assert status(r) == 200 and "hello from upstream" in r.stdout, r.stdout + r.stderr
        assert upstream.requests and upstream.requests[-1][1] == "/hello"

        # a warn rule: the grant store on the volume is written by uid 10001
        r = curl("--proxy", c.proxy, "-w", "\n%{http_code}", "http://warn.test/")
        assert status(r) == 403 and "/.aiwarden/ack/" in r.stdout, r.stdout + r.stderr
        store = podman("exec", c.name, "stat", "-c", "%u %a", "/var/lib/aiwarden/coaching.sqlite3")
        assert store.stdout.split()[0] == str(UID)

        # the admin listener: metrics count what happened; the image's health check passes
        r = curl(f"{c.admin}/metrics")
        assert "aiwarden_blocked_total" in r.stdout and "aiwarden_workers " in r.stdout
        health = [a.replace(":3129/", f":{c.admin_port}/") for a in image_health(image)]
        assert podman("exec", c.name, *health, check=False).returncode == 0
        assert curl(f"{c.admin}/ca.pem").stdout == (certs / "ca.pem").read_text()

        # the policy is edited on the host, under the read-only mount: seen live
        policy = tmp_path / "policy/policy.yaml"
        text = policy.read_text().replace(
            "\nrules:\n",
            "\nrules:\n  - {id: no-localhost, match: {hosts: [localhost]}, action: block, "
            "block_with: refuse}\n",
            1,
        )
        policy.write_text(text)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if digest not in curl(f"{c.admin}/readyz").stdout:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the policy change was not seen:\n{c.logs()[-3000:]}")

        def refused() -> bool:
            r = curl(
                "--proxy", c.proxy, "--cacert", str(pki[0]), "-w", "\n%{http_code}",
                f"https://localhost:{upstream.port}/hello",
            )  # fmt: skip
            return r.returncode != 0 and "403" in r.stderr

        # each worker reloads on its own within --policy-watch: wait until both refuse
        refusals = 0
        while refusals < 6:
            assert time.monotonic() < deadline, f"still tunnelled:\n{c.logs()[-3000:]}"
            refusals = refusals + 1 if refused() else 0
            time.sleep(0.1)
        before = len(upstream.requests)
        assert all(refused() for _ in range(4))
        assert len(upstream.requests) == before

        logs = c.logs()
        assert '"event": "policy_loaded"' in logs
        audit = [json.loads(line) for line in logs.splitlines() if '"rule": "' in line]
        assert any(a.get("host") == "api.openai.com" for a in audit), logs[-3000:]
    finally:
        upstream.close()


def image_health(image: dict) -> list[str]:
    kind, *command = image["Healthcheck"]["Test"]
    assert kind == "CMD", image["Healthcheck"]
    return command


def test_a_key_only_root_can_read_stops_the_container_with_a_reason(run, tmp_path):
    """The set-up the issue found: the key as `ca init` leaves it (0600, root). The proxy
    says which file it cannot read and as whom, and exits; no traceback, never ready."""
    certs = tmp_path / "certs"
    ca.init(certs)
    certs.chmod(0o755)
    c = run(certs)
    deadline = time.monotonic() + START_TIMEOUT
    while c.running() and time.monotonic() < deadline:
        assert not curl(f"{c.admin}/readyz", timeout=2).stdout.startswith("ready")
        time.sleep(0.5)
    assert not c.running(), c.logs()[-3000:]
    code = podman("inspect", "--format", "{{.State.ExitCode}}", c.name).stdout.strip()
    assert code not in ("", "0")
    logs = c.logs()
    assert "cannot read /etc/aiwarden/certs/mitmproxy-ca.pem: Permission denied" in logs, logs
    assert "Traceback" not in logs


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate is not installed")
def test_logrotate_hands_the_service_user_a_new_audit_log(run, tmp_path):
    """deploy/systemd/aiwarden.logrotate, forced, against the proxy running as uid 10001 (in
    the container: the test's interpreter is not one another user may run). The log directory
    is the service user's, 0750, as LogsDirectory= leaves it; after the rotation and SIGHUP
    the proxy writes into the file logrotate created, as that user."""
    logs = tmp_path / "log"
    logs.mkdir()
    os.chown(logs, UID, UID)
    logs.chmod(0o750)
    c = run(operator_ca(tmp_path / "certs"), logs)
    c.wait_ready()
    audit = logs / "audit.jsonl"

    def block(path: str) -> None:
        r = curl(
            "--proxy", c.proxy, "--cacert", str(tmp_path / "certs/ca.pem"), "-w", "\n%{http_code}",
            f"https://api.openai.com{path}",
        )  # fmt: skip
        assert status(r) == 403, r.stdout + r.stderr

    def lines(path: Path) -> list[str]:
        return [a["path"] for a in map(json.loads, path.read_text().splitlines()) if "path" in a]

    block("/v1/before-rotation")
    deadline = time.monotonic() + 10
    while "/v1/before-rotation" not in (audit.read_text() if audit.exists() else ""):
        assert time.monotonic() < deadline, c.logs()[-2000:]
        time.sleep(0.2)
    config = (ROOT / "deploy/systemd/aiwarden.logrotate").read_text()
    assert "create 0640 aiwarden aiwarden" in config
    assert "systemctl kill --signal=HUP aiwarden.service" in config
    kill = " ".join([PODMAN, *RUNTIME, "kill", "--signal", "HUP", c.name])
    local = tmp_path / "aiwarden.logrotate"
    local.write_text(
        config.replace("/var/log/aiwarden/audit.jsonl", str(audit))
        .replace("create 0640 aiwarden aiwarden", f"create 0640 {UID} {UID}")
        .replace("systemctl kill --signal=HUP aiwarden.service", kill)
    )
    r = subprocess.run(
        ["logrotate", "-f", "-v", "-s", str(tmp_path / "state"), str(local)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "error" not in r.stderr.lower(), r.stdout + r.stderr
    rotated = logs / "audit.jsonl.1"  # delaycompress: the newest rotation stays plain
    assert "/v1/before-rotation" in lines(rotated)
    stat = audit.stat()
    assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o777) == (UID, UID, 0o640)

    block("/v1/after-rotation")
    deadline = time.monotonic() + 10
    while "/v1/after-rotation" not in lines(audit):
        assert time.monotonic() < deadline, f"nothing in the new file:\n{c.logs()[-2000:]}"
        time.sleep(0.2)
    assert "/v1/after-rotation" not in lines(rotated)
    assert c.running()


# -- the systemd unit, started by systemd -----------------------------------------------------

SYSTEMD_RECIPE = [
    "--variant=minbase",
    "--include=systemd,systemd-sysv,dbus,procps,logrotate,curl,python3,python3-venv,"
    "ca-certificates",
    "trixie",
]


def test_the_systemd_unit_runs_as_its_user_with_the_ca_as_credentials(tmp_path):
    """deploy/systemd as shipped, in a container whose init is systemd: installed as README
    "Deploying" says (the key made by root, 0600), enabled, started at boot. The proxy runs as
    user aiwarden with the key from LoadCredential=, blocks, writes its audit log, and after
    the shipped logrotate file's rotation (its own postrotate, systemctl kill) writes into
    the new file; systemctl reload works. The container is privileged (systemd sets up the
    unit's sandbox: namespaces, mounts) and has no network; /run is shared so the unit's
    credentials mount reaches it. Everything is driven from inside, on its loopback."""
    base = base_image(SYSTEMD_RECIPE, "systemd-base")
    containerfile = ROOT / "tests/e2e/systemd-host.Containerfile"
    units = sorted((ROOT / "deploy/systemd").iterdir())
    tag = build(base, containerfile, "systemd", *units)
    name = f"aiwarden-test-systemd-{os.getpid()}"
    podman("rm", "-f", name, check=False)
    podman(
        "run", "-d", "--name", name, *LIMITS, "--privileged", "--systemd=always",
        "--network=none", "--tmpfs", "/run:rw,rshared,mode=0755", tag,
    )  # fmt: skip

    def sh(command: str, check: bool = True) -> str:
        r = podman("exec", name, "sh", "-c", command, check=False, timeout=60)
        if check and r.returncode != 0:
            journal = podman("exec", name, "journalctl", "--no-pager", "-n", "60", check=False)
            raise AssertionError(f"{command}:\n{r.stdout}{r.stderr}\n{journal.stdout[-4000:]}")
        return r.stdout

    block = (
        "curl -sS -o /dev/null -w '%{http_code}' --proxy http://127.0.0.1:3128 "
        "--cacert /etc/aiwarden/certs/ca.pem https://api.openai.com"
    )
    audit = "/var/log/aiwarden/audit.jsonl"
    wait_for = "for i in $(seq 50); do grep -q {} " + audit + " && exit 0; sleep 0.2; done; false"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not sh("curl -s 127.0.0.1:3129/readyz", check=False).startswith("ready"):
            if time.monotonic() > deadline:
                sh("systemctl status aiwarden --no-pager; false")
            time.sleep(0.5)
        assert sh("stat -c '%U %a' /etc/aiwarden/certs/mitmproxy-ca.pem").split() == [
            "root",
            "600",
        ]
        main = sh("systemctl show -p MainPID --value aiwarden").strip()
        assert sh(f"stat -c %U /proc/{main}").strip() == "aiwarden"
        assert "/run/credentials/aiwarden.service" in sh(f"tr '\\0' ' ' < /proc/{main}/cmdline")

        assert sh(f"{block}/v1/before-rotation") == "403"
        sh(wait_for.format("before-rotation"))
        assert sh(f"stat -c '%U %G %a' {audit}").split() == ["aiwarden", "aiwarden", "640"]

        sh("logrotate -f /etc/logrotate.d/aiwarden")  # its postrotate: systemctl kill --signal=HUP
        assert "before-rotation" in sh(f"cat {audit}.1")
        assert sh(f"stat -c '%U %G %a' {audit}").split() == ["aiwarden", "aiwarden", "640"]
        assert sh(f"{block}/v1/after-rotation") == "403"
        sh(wait_for.format("after-rotation"))
        assert "after-rotation" not in sh(f"cat {audit}.1")

        sh("systemctl reload aiwarden")
        assert sh("systemctl is-active aiwarden").strip() == "active"
        assert sh(f"{block}/v1/after-reload") == "403"
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)
