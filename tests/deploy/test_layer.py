"""The Lambda layer ships the runtime code alone: none of the local stack or other development
modules, and every handler imports from it with nothing else of the repository on the path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from hookline_dev.local.lambdas import FUNCTIONS

REPO = Path(__file__).resolve().parents[2]

_IMPORT_HANDLERS = """
import importlib.util, json, sys
for name in sys.argv[2].split(","):
    spec = importlib.util.spec_from_file_location(f"fn_{name}", f"{sys.argv[1]}/{name}/app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
print(json.dumps({k: getattr(m, "__file__", None) for k, m in sys.modules.items()
                  if k == "hookline" or k.startswith("hookline.")}))
"""


def _build(artifacts: Path) -> Path:
    subprocess.run(  # noqa: S603 (make, on our own Makefile)
        [
            shutil.which("make") or "make",
            "--no-print-directory",
            "--makefile",
            str(REPO / "layers/hookline/Makefile"),
            "package-HooklineLayer",
            f"ARTIFACTS_DIR={artifacts}",
        ],
        check=True,
        capture_output=True,
    )
    return artifacts / "python"


def test_the_layer_holds_no_development_code(tmp_path: Path) -> None:
    layer = _build(tmp_path)
    shipped = {p.relative_to(layer).as_posix() for p in layer.rglob("*.py")}
    assert "hookline/domain/delivery.py" in shipped
    assert not (layer / "hookline_dev").exists(), "the development package ships in the layer"
    source = {p.relative_to(REPO).as_posix() for p in (REPO / "hookline").rglob("*.py")}
    assert shipped == source


def test_every_handler_imports_from_the_layer_alone(tmp_path: Path) -> None:
    layer = _build(tmp_path / "artifacts")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        "PYTHONPATH": str(layer),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-c", _IMPORT_HANDLERS, str(REPO / "functions"), ",".join(FUNCTIONS)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert "hookline.domain.dispatch" in modules
    for name, file in modules.items():
        assert file is None or file.startswith(str(layer)), f"{name} came from {file}"


def test_the_layer_ships_the_committed_openapi_document(tmp_path: Path) -> None:
    """The docs routes serve it from the layer, where the generator (api/openapi.py) is absent."""
    layer = _build(tmp_path)
    shipped = layer / "hookline/api/openapi.json"
    assert shipped.read_bytes() == (REPO / "docs/openapi.json").read_bytes()


#: CPython 3.12's bytecode magic number (importlib.util.MAGIC_NUMBER there): the runtime's.
_PYTHON_312_MAGIC = (3531).to_bytes(2, "little") + b"\r\n"


def test_the_layer_ships_bytecode_for_the_runtime(tmp_path: Path) -> None:
    """/opt is read-only in Lambda: a module without its .pyc is compiled on every cold start.
    Each module has python3.12 bytecode that is used without checking the source (flags 0b01,
    unchecked hash), so the mtimes the zip rounds cannot make it stale."""
    layer = _build(tmp_path)
    for source in layer.rglob("*.py"):
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        assert compiled.is_file(), f"{source.relative_to(layer)} ships without bytecode"
        header = compiled.read_bytes()[:8]
        assert header[:4] == _PYTHON_312_MAGIC, f"{compiled} is not python3.12 bytecode"
        assert int.from_bytes(header[4:8], "little") == 0b01, f"{compiled} checks its source"
