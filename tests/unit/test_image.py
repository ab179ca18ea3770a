"""The Dockerfile cannot be built here (no Docker engine), so the production image is kept honest from its inputs:
it installs requirements-runtime.lock only, that lock holds no test or development tool and pins every package as
requirements.lock does, and every third-party module the Python code in the image imports (read with ast) is
provided by a distribution of that lock. A service that starts importing a dev-only package fails here, not in
production."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import re
import shlex
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "Dockerfile"
RUNTIME_IN, RUNTIME_LOCK = ROOT / "requirements-runtime.in", ROOT / "requirements-runtime.lock"
DEV_IN, DEV_LOCK = ROOT / "requirements.in", ROOT / "requirements.lock"
#: Test and development tools: in the dev lock, never in the image.
DEV_ONLY = {
    "pytest",
    "pytest-timeout",
    "hypothesis",
    "playwright",
    "schemathesis",
    "ruff",
    "testcontainers",
    "honcho",
    "kubernetes-validate",
}
#: The image's own top-level packages (installed from the source tree, in no lock).
FIRST_PARTY = {"ticketstream_shared", "intake", "sla", "assignment", "reporting", "notify", "deploy"}
#: Modules loaded at run time without an import statement naming them: a string in the code stands for them.
LOADED_BY_STRING = {
    # clickhouse-connect opens a chdb:// DSN (reporting's default, without CLICKHOUSE_URL) with the chdb package
    "chdb://": "chdb",
}

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)")


def normalized(name: str) -> str:
    """A distribution's name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a requirements file (comments and `-r`/`-c` lines aside)."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if match := _PIN.match(line.split("#", 1)[0].strip()):
            found[normalized(match.group(1))] = match.group(2)
    return found


RUNTIME = pins(RUNTIME_LOCK)
DEV = pins(DEV_LOCK)

# --- the Dockerfile ------------------------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending.strip())
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]


def pip_installs() -> list[list[str]]:
    """The arguments after `pip install` of every (uv) pip command the Dockerfile runs."""
    commands = []
    for instruction, arguments in instructions():
        if instruction == "RUN":
            for command in re.split(r"&&|;|\|\|", arguments):
                words = shlex.split(command)
                for at in range(len(words) - 1):
                    if words[at : at + 2] == ["pip", "install"]:
                        commands.append(words[at + 2 :])
    return commands


def copied_sources() -> list[Path]:
    """What the COPY instructions take from the build context (files and directories)."""
    sources = []
    for instruction, arguments in instructions():
        if instruction in {"COPY", "ADD"}:
            words = [word for word in shlex.split(arguments) if not word.startswith("--")]
            assert not any(word.startswith("--from") for word in shlex.split(arguments)), "one stage only"
            sources += [ROOT / word for word in words[:-1]]
    return sources


def test_the_image_installs_the_runtime_lock_and_not_the_dev_lock():
    installed = []
    for arguments in pip_installs():
        words = iter(arguments)
        for word in words:
            if word in {"-r", "--requirement", "-c", "--constraint"}:
                installed.append(next(words))
            elif word.startswith("-"):
                continue
            else:
                # besides the lock, only uv itself and the image's own packages, without their dependencies
                assert re.fullmatch(r"uv==[\d.]+", word) or word in {".", "./shared"}, f"installs {word!r}"
                if word in {".", "./shared"}:
                    assert "--no-deps" in arguments, "the project's own packages must not pull dependencies"
    assert installed == [RUNTIME_LOCK.name]
    assert ROOT / RUNTIME_LOCK.name in copied_sources()
    assert ROOT / DEV_LOCK.name not in copied_sources()
    assert all(DEV_LOCK.name not in arguments for _, arguments in instructions())


def test_the_image_holds_the_services_and_the_contract():
    sources = copied_sources()
    assert ROOT / "shared" in sources
    assert ROOT / "services" in sources
    assert (ROOT / "deploy" / "clickhouse") in sources, "reporting applies its migrations from deploy/clickhouse"
    assert (ROOT / "deploy" / "mail_sink.py") in sources, "the compose file's mail service runs deploy.mail_sink"


def test_the_wheel_packages_every_service_with_its_data_files():
    """`uv pip install .` builds the wheel with hatch, which takes every file of a listed package (notify's Jinja2
    templates too) unless told to include or exclude; files the build context leaves out never reach it."""
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    services = {f"services/{main.parent.name}" for main in (ROOT / "services").glob("*/__main__.py")}
    assert "services/notify" in services
    assert set(wheel["packages"]) == services
    assert not {"include", "exclude", "only-include", "only-packages"} & wheel.keys()
    templates = [path.relative_to(ROOT) for path in (ROOT / "services" / "notify" / "templates").rglob("*.j2")]
    assert templates, "notify's mail templates"
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    ignored = [line for line in lines if line and not line.startswith("#")]
    for path in templates:
        assert not any(
            fnmatch.fnmatch(str(path), pattern) or str(path).startswith(pattern.rstrip("/") + "/")
            for pattern in ignored
        ), path


# --- the locks -----------------------------------------------------------------------------------------------------


def test_the_runtime_lock_holds_no_test_or_development_tool():
    assert RUNTIME, "requirements-runtime.lock pins nothing"
    assert not DEV_ONLY & RUNTIME.keys()


def test_every_runtime_pin_is_the_dev_lock_pin():
    differing = {name: (version, DEV.get(name)) for name, version in RUNTIME.items() if DEV.get(name) != version}
    assert not differing, f"runtime lock version vs dev lock version (run `make lock`): {differing}"


def test_the_dev_input_includes_the_runtime_input_and_adds_the_tools():
    lines = [line.split("#", 1)[0].strip() for line in DEV_IN.read_text().splitlines()]
    assert f"-r {RUNTIME_IN.name}" in lines
    assert pins(DEV_IN).keys() >= DEV_ONLY
    assert not DEV_ONLY & pins(RUNTIME_IN).keys()


@pytest.mark.parametrize(("source", "lock"), [(RUNTIME_IN, RUNTIME_LOCK), (DEV_IN, DEV_LOCK)], ids=["runtime", "dev"])
def test_every_lock_pins_its_direct_dependencies_as_its_input_does(source, lock):
    locked = pins(lock)
    stale = {name: (version, locked.get(name)) for name, version in pins(source).items() if locked.get(name) != version}
    assert not stale, f"{source.name} vs {lock.name} (run `make lock`): {stale}"


def test_the_project_metadata_depends_on_runtime_packages_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {normalized(re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0]) for requirement in requirements}

    runtime = names(project["dependencies"]) - {"ticketstream-shared"}  # installed from shared/, the image's own
    assert runtime <= RUNTIME.keys(), f"dependencies not in the runtime lock: {runtime - RUNTIME.keys()}"
    dev = names(project["optional-dependencies"]["dev"])
    assert dev <= DEV.keys(), f"dev extra not in the dev lock: {dev - DEV.keys()}"
    assert dev >= DEV_ONLY and not runtime & DEV_ONLY


# --- what the code in the image imports ----------------------------------------------------------------------------


def image_python_files() -> list[Path]:
    files = []
    for source in copied_sources():
        if source.is_dir():
            files += sorted(path for path in source.rglob("*.py") if "__pycache__" not in path.parts)
        elif source.suffix == ".py":
            files.append(source)
    return files


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _executed_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node but the bodies of `if TYPE_CHECKING:` (never run)."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for node in child.orelse:
                yield node
                yield from _executed_nodes(node)
            continue
        yield child
        yield from _executed_nodes(child)


def loaded_modules(source: str) -> set[str]:
    """The top-level modules a module's code imports or loads by name (absolute imports; relative ones are its
    own package), wherever the statement is: in a function it runs as surely, only later."""
    modules: set[str] = set()
    for node in _executed_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            # importlib.resources.files("plotly"), importlib.import_module("x"), __import__("x")
            function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if function in {"files", "import_module", "__import__"} and isinstance(node.args[0].value, str):
                modules.add(node.args[0].value.split(".")[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            modules |= {module for prefix, module in LOADED_BY_STRING.items() if node.value.startswith(prefix)}
    return modules


def third_party(modules: set[str]) -> set[str]:
    return {module for module in modules if module not in sys.stdlib_module_names and module not in FIRST_PARTY}


def missing_from_runtime_lock(modules: set[str]) -> dict[str, list[str]]:
    """module -> the distributions (of the dev venv) that provide it, for each module no runtime-lock
    distribution provides; a module the dev venv does not know maps to []."""
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module in sorted(modules):
        distributions = [normalized(name) for name in providers.get(module, [])]
        if not RUNTIME.keys() & set(distributions):
            missing[module] = distributions
    return missing


def test_every_third_party_module_the_image_runs_is_in_the_runtime_lock():
    files = image_python_files()
    assert ROOT / "services" / "intake" / "app.py" in files
    assert ROOT / "deploy" / "kafka" / "launcher.py" in files, "the topics job runs deploy.kafka.launcher"
    needed: dict[str, set[str]] = {}
    for path in files:
        for module in third_party(loaded_modules(path.read_text())):
            needed.setdefault(module, set()).add(str(path.relative_to(ROOT)))
    assert {"fastapi", "aiokafka", "pydantic", "clickhouse_connect", "plotly", "chdb"} <= needed.keys()
    missing = missing_from_runtime_lock(set(needed))
    assert not missing, "imported in the image but not in requirements-runtime.lock: " + "; ".join(
        f"{module} (from {', '.join(distributions) or 'no installed distribution'}) in {sorted(needed[module])}"
        for module, distributions in missing.items()
    )


def test_the_import_check_catches_a_dev_only_import():
    source = (
        "from __future__ import annotations\n"
        "import json\n"
        "from typing import TYPE_CHECKING\n"
        "from . import domain\n"
        "from ticketstream_shared.contract import codec\n"
        "if TYPE_CHECKING:\n"
        "    import hypothesis\n"
        "def run():\n"
        "    import pytest\n"
        "    from honcho.environ import parse_procfile\n"
        "    return files('playwright')\n"
    )
    modules = third_party(loaded_modules(source))
    assert modules == {"pytest", "honcho", "playwright"}
    assert missing_from_runtime_lock(modules).keys() == modules
    assert not missing_from_runtime_lock({"pydantic", "yaml", "pythonjsonlogger"})
