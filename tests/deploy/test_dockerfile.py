"""The Dockerfile, without a Docker engine: hadolint lints it, and what it runs is run.

The image's command is proven by repeating its build here: the files the builder stage COPYs go into
an empty directory (so a file the build needs but the Dockerfile forgets to copy fails the build), a
wheel is built from them, installed into a fresh virtualenv with binary wheels only, and the
ENTRYPOINT runs `--version` and `validate` on the example config the runtime stage bakes in.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deploy_env import ROOT, require_tool

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    kept = (line for line in text.splitlines() if not line.lstrip().startswith("#"))
    joined = re.sub(r"\\\n", " ", "\n".join(kept))
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    split: list[list[tuple[str, str]]] = []
    for instruction in instructions(DOCKERFILE.read_text()):
        if instruction[0] == "FROM":
            split.append([])
        split[-1].append(instruction)
    return split


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("hadolint")
    return subprocess.run(
        [tool, "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_finds_nothing() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_every_hadolint_ignore_says_why() -> None:
    for line in DOCKERFILE.read_text().splitlines():
        if "hadolint ignore=" in line:
            assert re.search(r"hadolint ignore=\S+\s+\S+", line), f"an ignore without a reason: {line}"


def test_hadolint_would_catch_a_regression(tmp_path: Path) -> None:
    """The lint above can fail: an unpinned apt install with cache left behind is reported."""
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text().replace("USER 10001:10001", "RUN apt-get install curl\nUSER 0"))
    result = hadolint(broken)
    assert result.returncode != 0
    assert "DL3008" in result.stdout


def test_image_shape() -> None:
    builder, runtime = stages()
    assert builder[0][1].endswith(" AS builder")
    assert runtime[0] == ("FROM", "python:3.11-slim")
    keys = [word for word, _ in runtime]
    runtime_runs = " ".join(arg for word, arg in runtime if word == "RUN")
    # No compiler or package manager activity in the final stage: only the venv is copied over.
    for tool in ("gcc", "apt-get", "pip install", "build-essential"):
        assert tool not in runtime_runs
    assert ("COPY", "--from=builder /opt/reconciler /opt/reconciler") in runtime
    user = next(arg for word, arg in runtime if word == "USER")
    assert not user.startswith(("0", "root"))
    assert keys.index("USER") < keys.index("ENTRYPOINT")
    assert json.loads(dict(runtime)["ENTRYPOINT"]) == ["reconciler"]
    assert json.loads(dict(runtime)["CMD"]) == ["run", "--config", "/etc/reconciler/config.yaml"]
    assert dict(runtime)["EXPOSE"] == "9464"
    healthcheck = dict(runtime)["HEALTHCHECK"]
    assert "/healthz" in healthcheck
    assert "curl" not in healthcheck
    assert "wget" not in healthcheck


def test_healthcheck_command_is_valid_python() -> None:
    healthcheck = dict(stages()[1])["HEALTHCHECK"]
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]
    compile(command[2], "<healthcheck>", "exec")


def copied(stage: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(source, destination) of each COPY from the build context in a stage."""
    pairs: list[tuple[str, str]] = []
    for word, arg in stage:
        if word == "COPY" and not arg.startswith("--from"):
            *sources, destination = arg.split()
            pairs.extend((source, destination) for source in sources)
    return pairs


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last matching rule wins)."""
    verdict = False
    for rule in DOCKERIGNORE.read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            verdict = not negate
    return verdict


def test_dockerignore_lets_in_what_the_dockerfile_copies_and_nothing_heavy() -> None:
    for builder_or_runtime in stages():
        for source, _ in copied(builder_or_runtime):
            assert not ignored(source), f".dockerignore excludes {source}, which the Dockerfile copies"
    for heavy in (".venv", ".git", "tests", "connection.json", "emulator-state.json", "build"):
        assert ignored(heavy), heavy


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The builder stage, repeated: context copy → wheel → fresh venv from binary wheels only.

    pip's cache makes the second run of this ~30 s on a CI machine (the first one downloads).
    """
    work = tmp_path_factory.mktemp("image")
    context = work / "src"
    context.mkdir()
    builder = stages()[0]
    for source, destination in copied(builder):
        target = context / destination if destination not in ("./", ".") else context
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)
    started = time.monotonic()
    wheels = work / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("*.whl")
    venv = work / "opt-reconciler"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--only-binary=:all:", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    print(f"wheel + fresh venv in {time.monotonic() - started:.1f} s")
    return venv


def entrypoint(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """ENTRYPOINT ["reconciler"] + args, with only the venv on PATH as the image's ENV sets it."""
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "HOME": str(venv)}
    return subprocess.run(
        ["reconciler", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_entrypoint_prints_the_version(image_venv: Path) -> None:
    from reconciler import __version__

    result = entrypoint(image_venv, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"reconciler {__version__}"


def test_entrypoint_validates_the_baked_in_example(image_venv: Path, tmp_path: Path) -> None:
    runtime = stages()[1]
    ((source, destination),) = [pair for pair in copied(runtime) if pair[0] == "config/example.yaml"]
    baked = tmp_path / destination.lstrip("/")
    baked.parent.mkdir(parents=True)
    shutil.copy2(ROOT / source, baked)
    result = entrypoint(image_venv, "validate", str(baked))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK:")


def test_entrypoint_run_rejects_a_broken_config(image_venv: Path, tmp_path: Path) -> None:
    """The image's CMD (`run --config ...`) exists in the installed wheel and fails in one clear line."""
    broken = tmp_path / "config.yaml"
    broken.write_text("pools: [\n")
    result = entrypoint(image_venv, "run", "--config", str(broken))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "config.yaml" in result.stderr


def test_wheel_carries_no_compiled_code_of_ours(image_venv: Path) -> None:
    """The builder needs no compiler: the project's own wheel is pure Python."""
    site = next((image_venv / "lib").glob("python3*/site-packages"))
    (record,) = site.glob("azure_reconciler-*.dist-info/WHEEL")
    assert "Root-Is-Purelib: true" in record.read_text()


def test_the_installed_wheel_runs_the_demo_on_its_own_config(image_venv: Path, tmp_path: Path) -> None:
    """`reconciler demo` finds `demo.yaml` as package data, with no checkout near (as in the image)."""
    code = "from reconciler.commands.demo import DEMO_CONFIG; print(DEMO_CONFIG)"
    found = subprocess.run(
        [str(image_venv / "bin" / "python"), "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    config = Path(found.stdout.strip())
    assert image_venv in config.parents
    assert config.read_text() == (ROOT / "reconciler" / "commands" / "demo.yaml").read_text()
    result = entrypoint(image_venv, "demo", "--duration", "2", "--metrics-port", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("reconciler demo:")
    assert "daemon stopped" in result.stdout
