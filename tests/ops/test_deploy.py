"""deploy/ checked as far as the tools here allow: promtool on the Prometheus config and the
alerting rules (with their unit tests), and the compose file parsed and cross-checked against
the settings, its own services, the scrape config, Grafana's provisioning and the Dockerfile.
(No container engine runs here, so nothing is built or started.)"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel

from shared.settings import Settings
from tests.support.ops import DEPLOY, REPO, tool

COMPOSE = DEPLOY / "compose.yaml"
PROMETHEUS = DEPLOY / "prometheus"
TEND_SERVICES = ("ingest", "scorer", "alerts", "web")
CONSUMERS = ("scorer", "alerts")
"""Kafka consumers: they serve only /healthz, /readyz and /metrics, so publish no port."""
PUBLIC = {"ingest": 8000, "web": 8003}
"""What people and clients reach: SDKs send to ingest; the APIs and the console are web's."""
REQUIRED_SECRETS = (
    "TEND_API_TOKEN",
    "POSTGRES_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "GRAFANA_DB_PASSWORD",
)
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+][^}]*)?\}")


def setting_env_names() -> set[str]:
    """Every environment variable Settings reads: TEND_<FIELD>, TEND_<BLOCK>__<FIELD>."""
    names = set()
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub in annotation.model_fields:
                names.add(f"TEND_{name}__{sub}".upper())
        else:
            names.add(f"TEND_{name}".upper())
    return names


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def port_of(service: dict[str, Any]) -> int:
    command = service["command"]
    return int(command[command.index("--port") + 1])


@pytest.mark.integration  # runs promtool, a process
class TestPromtool:
    def test_rules_pass_check_rules(self) -> None:
        result = subprocess.run(
            [tool("promtool"), "check", "rules", str(PROMETHEUS / "alerts.yml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_rules_pass_their_unit_tests(self) -> None:
        result = subprocess.run(
            [tool("promtool"), "test", "rules", "alerts_test.yml"],
            cwd=PROMETHEUS,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout

    def test_every_alert_has_a_unit_test(self) -> None:
        rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
        alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
        tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
        tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"]}
        assert alerts == tested

    def test_the_scrape_config_passes_check_config(self, tmp_path: Path) -> None:
        # The compose file mounts the rules at /etc/prometheus/alerts.yml; point it here.
        config = (PROMETHEUS / "prometheus.yml").read_text()
        config = config.replace("/etc/prometheus/alerts.yml", str(PROMETHEUS / "alerts.yml"))
        (tmp_path / "prometheus.yml").write_text(config)
        result = subprocess.run(
            [tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr


class TestCompose:
    def test_every_tend_env_name_is_a_setting(self) -> None:
        known = setting_env_names()
        used = set()
        for service in services().values():
            env = service.get("environment", {})
            used |= {k for k in env if k.startswith("TEND_")}
        used |= {
            m[0] for m in INTERPOLATION.findall(COMPOSE.read_text()) if m[0].startswith("TEND_")
        }
        example = (DEPLOY / "tend.env.example").read_text()
        used |= set(re.findall(r"^#?\s*(TEND_[A-Z0-9_]+)=", example, re.MULTILINE))
        assert used, "no TEND_ names found"
        assert used <= known, f"not settings: {sorted(used - known)}"

    def test_required_secrets_have_no_defaults(self) -> None:
        text = COMPOSE.read_text()
        for name in REQUIRED_SECRETS:
            forms = {m[1][:2] for m in INTERPOLATION.findall(text) if m[0] == name}
            assert forms, f"{name} is not used"
            assert forms == {":?"}, f"{name} must be ${{{name}:?...}} everywhere, got {forms}"
        assert "TEND_API_TOKEN" in services()["scorer"]["environment"]

    def test_depends_on_names_existing_services(self) -> None:
        names = set(services())
        for name, service in services().items():
            missing = set(depends_on(service)) - names
            assert not missing, f"{name} depends on unknown {missing}"

    def test_tend_services_wait_for_the_migration_and_are_health_checked(self) -> None:
        all_services = services()
        assert all_services["migrate"]["command"] == ["migrate"]
        assert all_services["migrate"]["restart"] == "no"
        for name in TEND_SERVICES:
            service = all_services[name]
            assert depends_on(service)["migrate"] == "service_completed_successfully", name
            assert depends_on(service)["postgres"] == "service_healthy", name
            # The web service needs only the database: it starts (and answers) without Kafka.
            if name == "web":
                assert "kafka" not in depends_on(service), name
                assert "TEND_KAFKA_BOOTSTRAP" in service["environment"]  # shared, unused
            else:
                assert depends_on(service)["kafka"] == "service_healthy", name
            assert "/readyz" in " ".join(service["healthcheck"]["test"]), name
            assert f"127.0.0.1:{port_of(service)}/" in " ".join(service["healthcheck"]["test"])
            assert service["command"][0] == name
        assert all_services["scorer"]["deploy"]["replicas"] == 2

    def test_only_ingest_and_web_publish_their_ports(self) -> None:
        s = services()
        for name, port in PUBLIC.items():
            assert f"{port}:{port}" in s[name]["ports"], name
            assert port_of(s[name]) == port, name
        for name in CONSUMERS:
            assert "ports" not in s[name], f"{name} serves only ops routes; publish nothing"

    def test_the_console_url_points_at_the_web_service(self) -> None:
        s = services()
        for name in TEND_SERVICES:
            url = s[name]["environment"]["TEND_CONSOLE_URL"]
            assert url.endswith(f":{PUBLIC['web']}/console}}"), (name, url)
        assert "--workers" in s["web"]["command"]  # scaled like ingest

    def test_dashboards_link_to_the_console(self) -> None:
        console = PUBLIC["web"]
        for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
            dashboard = json.loads(path.read_text())
            [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "console_url"]
            assert variable["query"] == f"http://localhost:{console}/console", path.name
            assert any(link["url"] == "${console_url}/" for link in dashboard["links"]), path.name

    def test_kafka_runs_in_kraft_mode_and_postgres_keeps_a_volume(self) -> None:
        s = services()
        kafka = s["kafka"]
        assert kafka["image"].startswith("apache/kafka:")
        assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
        assert "ZOOKEEPER" not in " ".join(kafka["environment"]).upper()
        assert "healthcheck" in kafka and "healthcheck" in s["postgres"]
        volumes = compose()["volumes"]
        pg_volumes = [v.split(":")[0] for v in s["postgres"]["volumes"]]
        assert "postgres-data" in pg_volumes and "postgres-data" in volumes
        # The bootstrap the services use is the broker's advertised listener.
        bootstrap = s["ingest"]["environment"]["TEND_KAFKA_BOOTSTRAP"]
        assert f"PLAINTEXT://{bootstrap}" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]

    def test_mounted_files_exist(self) -> None:
        for name, service in services().items():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("."):
                    assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"

    def test_scrape_targets_are_the_services_and_their_ports(self) -> None:
        config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
        s = services()
        scraped = {}
        for job in config["scrape_configs"]:
            for sd in job.get("dns_sd_configs", []):
                for host in sd["names"]:
                    scraped[host] = (job["job_name"], sd["port"])
        assert set(scraped) == set(TEND_SERVICES)
        for name in TEND_SERVICES:
            job, port = scraped[name]
            assert job == f"tend-{name}"  # the dashboards and alerts select job=~"tend-.*"
            assert port == port_of(s[name]), name
        mounts = {v.split(":")[1] for v in s["prometheus"]["volumes"]}
        assert set(config["rule_files"]) <= mounts

    def test_grafana_provisioning_matches_the_stack(self) -> None:
        s = services()
        grafana = s["grafana"]
        mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
        assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
        provider = yaml.safe_load(
            (DEPLOY / "grafana/provisioning/dashboards/tend.yaml").read_text()
        )["providers"][0]
        assert mounts["./grafana/dashboards"] == provider["options"]["path"]
        ds_text = (DEPLOY / "grafana/provisioning/datasources/tend.yaml").read_text()
        for var in INTERPOLATION.findall(ds_text):
            assert var[0] in grafana["environment"], f"Grafana lacks {var[0]}"
        datasources = {d["type"]: d for d in yaml.safe_load(ds_text)["datasources"]}
        host, port = datasources["prometheus"]["url"].removeprefix("http://").split(":")
        assert host == "prometheus" and f"{port}:{port}" in s[host]["ports"]
        pg_host = datasources["grafana-postgresql-datasource"]["url"].split(":")[0]
        assert pg_host in s
        # The read-only role Grafana logs in as is the one the database creates.
        assert (
            grafana["environment"]["GRAFANA_DB_USER"]
            == s["postgres"]["environment"]["GRAFANA_DB_USER"]
        )


class TestDockerfile:
    def test_small_non_root_image_with_a_healthcheck(self) -> None:
        text = (REPO / "Dockerfile").read_text()
        bases = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
        assert bases and all(b.startswith("python:") and b.endswith("-slim") for b in bases[:1])
        assert re.search(r"^FROM python:\S+-slim\s*$", text, re.MULTILINE), "runtime base"
        users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
        assert users and users[-1].split(":")[0] not in ("root", "0")
        assert re.search(r"^HEALTHCHECK ", text, re.MULTILINE)
        assert "--no-cache-dir" in text
        assert 'ENTRYPOINT ["tend"]' in text

    def test_the_image_gets_every_package_directory(self) -> None:
        text = (REPO / "Dockerfile").read_text()
        for package in ("shared", "services", "migrations"):
            assert f"COPY {package} " in text, package

    def test_the_image_exposes_every_service_port(self) -> None:
        text = (REPO / "Dockerfile").read_text()
        [exposed] = re.findall(r"^EXPOSE (.+)$", text, re.MULTILINE)
        ports = {port_of(s) for name, s in services().items() if name in TEND_SERVICES}
        assert ports == {int(p) for p in exposed.split()}


LOCK = REPO / "requirements.lock"
DEV_LOCK = REPO / "requirements-dev.lock"
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;]+)(?:\s*;\s*(?P<marker>.+))?$"
)


def pins(path: Path) -> dict[str, tuple[str, str | None]]:
    """name -> (exact version, environment marker) of a lock file; any other requirement line
    (a range, a URL, an editable) fails the test."""
    found: dict[str, tuple[str, str | None]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: not an exact pin: {line!r}"
        found[canonicalize_name(match["name"])] = (match["version"], match["marker"])
    return found


def project_requirements(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(r) for r in listed]


def closure(roots: list[Requirement]) -> set[str]:
    """The packages ``roots`` need on this interpreter, transitively, their extras included,
    as the installed distributions' metadata says."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = list(roots)
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        for spec in importlib.metadata.requires(req.name) or []:
            sub = Requirement(spec)
            extras = req.extras or {""}
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    return {name for name, _ in seen}


@pytest.mark.unit
class TestLockFiles:
    """pyproject keeps ranges; the locks pin one exact version of everything (bash scripts/lock
    writes them, README "Reproducible builds")."""

    @pytest.mark.parametrize(("lock", "extra"), [(LOCK, None), (DEV_LOCK, None), (DEV_LOCK, "dev")])
    def test_every_dependency_is_pinned_within_its_range(
        self, lock: Path, extra: str | None
    ) -> None:
        locked = pins(lock)
        for req in project_requirements(extra):
            name = canonicalize_name(req.name)
            assert name in locked, f"{req.name} is in pyproject.toml but not in {lock.name}"
            version, _ = locked[name]
            assert req.specifier.contains(version, prereleases=True), (lock.name, str(req), version)

    def test_transitive_dependencies_are_pinned_too(self) -> None:
        missing = closure(project_requirements()) - set(pins(LOCK))
        assert missing == set(), f"not in requirements.lock: {sorted(missing)}"

    def test_the_dev_lock_has_the_runtime_pins(self) -> None:
        dev = {n: v for n, (v, _) in pins(DEV_LOCK).items()}
        runtime = {n: v for n, (v, _) in pins(LOCK).items()}
        assert {n: (v, dev.get(n)) for n, v in runtime.items() if dev.get(n) != v} == {}

    def test_the_locks_say_how_they_are_made(self) -> None:
        for lock in (LOCK, DEV_LOCK):
            assert "bash scripts/lock" in lock.read_text().split("\n", 3)[1], lock.name
        assert "pip compile pyproject.toml" in (REPO / "scripts" / "lock").read_text()

    def test_the_image_installs_from_the_lock(self) -> None:
        text = (REPO / "Dockerfile").read_text()
        runs = [
            " ".join(m.split()) for m in re.findall(r"^RUN\s+((?:.*\\\n)*.*)$", text, re.MULTILINE)
        ]
        installs = [r for r in runs if "pip install" in r]
        assert any("-r requirements.lock" in r for r in installs), installs
        assert "COPY requirements.lock " in text
        project = [r for r in installs if "-r requirements.lock" not in r]
        # The project itself adds nothing the lock did not pin.
        assert project and all("--no-deps" in r for r in project), project
        assert installs.index(next(r for r in installs if "requirements.lock" in r)) < (
            installs.index(project[0])
        )


@pytest.mark.parametrize("name", sorted(REQUIRED_SECRETS))
def test_operations_doc_names_each_required_secret(name: str) -> None:
    assert name in (REPO / "docs" / "operations.md").read_text()


def test_operations_doc_explains_every_alert() -> None:
    doc = (REPO / "docs" / "operations.md").read_text()
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        assert f"`{rule['alert']}`" in doc, rule["alert"]
