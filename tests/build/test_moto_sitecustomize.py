"""local/moto-python/sitecustomize.py composes with the interpreter's own sitecustomize.

jobs-local and the moto-harness tests put local/moto-python first on
PYTHONPATH, so Python imports the project's `sitecustomize` instead of any
other. nixpkgs' Python environments (`nix develop`, `nix flake check`) find
their packages through their own `sitecustomize`, which adds NIX_PYTHONPATH to
sys.path: shadowed, moto_server could not import flask, and the DynamoDB patch
would find no moto to patch. The project's file must run the next
`sitecustomize` on sys.path and still patch moto.

Each test runs a Python without moto on its path (a fresh venv, no system
site-packages) where moto is reachable only the way nixpkgs provides it: a
stand-in of nixpkgs' `sitecustomize` later on PYTHONPATH that adds
NIX_PYTHONPATH (here: the site directory holding this Python's moto).
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_SITECUSTOMIZE = ROOT / "local" / "moto-python"

# What nixpkgs' pkgs/development/interpreters/python/sitecustomize.py does
# (written here, not copied): pop NIX_PYTHONPATH and add each entry as a site
# directory. It also leaves a mark, so the test sees that it ran.
NIX_STYLE_SITECUSTOMIZE = """
import functools, os, site, sys
paths = os.environ.pop("NIX_PYTHONPATH", None)
if paths:
    functools.reduce(lambda k, p: site.addsitedir(p, k), paths.split(":"), site._init_pathinfo())
sys.nix_style_sitecustomize_ran = True
"""

# Reports what a moto server process would depend on.
PROBE = """
import json, sys
report = {"nix_style_sitecustomize_ran": getattr(sys, "nix_style_sitecustomize_ran", False)}
try:
    import flask  # moto_server's web framework (moto[server])
    from moto.moto_server.werkzeug_app import create_backend_app
    create_backend_app("dynamodb")  # what moto_server does for a DynamoDB request
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler
    report["moto_server_importable"] = True
    report["backend_atomic"] = getattr(DynamoDBBackend, "_jobs_atomic", False)
    report["handler_atomic"] = getattr(DynamoHandler, "_jobs_atomic", False)
    report["update_item_holds_the_lock"] = hasattr(DynamoDBBackend.update_item, "__wrapped__")
except ImportError as e:
    report["moto_server_importable"] = repr(e)
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def moto_site() -> str:
    """The site directory that holds this Python's moto (and flask)."""
    spec = importlib.util.find_spec("moto")
    assert spec and spec.origin, "moto is not installed for this Python: run through ./just or inside nix develop"
    return str(Path(spec.origin).parents[1])


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """A Python that does not see moto: a new venv without system site-packages."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import moto"], capture_output=True, text=True, env=clean_env())
    assert probe.returncode != 0, "the bare venv sees moto: the tests below would prove nothing"
    return python


@pytest.fixture
def nix_style_dir(tmp_path) -> Path:
    d = tmp_path / "nix-python"
    d.mkdir()
    (d / "sitecustomize.py").write_text(NIX_STYLE_SITECUSTOMIZE)
    return d


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NIX_PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def probe(python: str, code: str, **env) -> dict:
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=clean_env(**env), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_nix_sitecustomize_later_on_the_path_still_runs_and_moto_is_patched(bare_python, nix_style_dir, moto_site):
    report = probe(
        bare_python, PROBE,
        PYTHONPATH=os.pathsep.join([str(PROJECT_SITECUSTOMIZE), str(nix_style_dir)]),
        NIX_PYTHONPATH=moto_site,
    )
    assert report == {
        "nix_style_sitecustomize_ran": True,
        "moto_server_importable": True,
        "backend_atomic": True,
        "handler_atomic": True,
        "update_item_holds_the_lock": True,
    }


def test_moto_that_becomes_importable_after_start_up_is_patched_when_imported(bare_python, moto_site):
    # As in a nixpkgs-wrapped script, which adds its own paths when it starts.
    report = probe(
        bare_python, f"import site; site.addsitedir({moto_site!r})\n" + PROBE,
        PYTHONPATH=str(PROJECT_SITECUSTOMIZE),
    )
    assert report["moto_server_importable"] is True
    assert report["backend_atomic"] and report["handler_atomic"] and report["update_item_holds_the_lock"]


def test_a_failing_next_sitecustomize_is_reported_and_the_patch_still_applies(bare_python, nix_style_dir, moto_site):
    (nix_style_dir / "sitecustomize.py").write_text("raise RuntimeError('broken site')\n")
    proc = subprocess.run(
        [bare_python, "-c", f"import site; site.addsitedir({moto_site!r})\n" + PROBE],
        capture_output=True, text=True, timeout=120,
        env=clean_env(PYTHONPATH=os.pathsep.join([str(PROJECT_SITECUSTOMIZE), str(nix_style_dir)])),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Error in sitecustomize" in proc.stderr and "broken site" in proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["backend_atomic"] is True



def test_the_cognito_server_gets_both_the_moto_corrections_and_the_cognito_patch():
    # jobs-local's PYTHONPATH for the cognito-idp server: local/moto-python, then
    # local/moto-cognito, which the first runs. This Python has moto (as moto_server's).
    cognito_probe = """
import json
from moto.cognitoidp.models import CognitoIdpUserPool
from moto.core.common_models import BaseModel
print(json.dumps({
    "cognito_patched": hasattr(CognitoIdpUserPool.create_jwt, "__wrapped__"),
    "models_untracked": getattr(BaseModel, "_jobs_untracked", False),
}))
"""
    report = probe(
        sys.executable, cognito_probe,
        PYTHONPATH=os.pathsep.join([str(PROJECT_SITECUSTOMIZE), str(ROOT / "local" / "moto-cognito")]),
        JOBS_LOCAL_MOTO_SERVICE="cognito-idp",
    )
    assert report == {"cognito_patched": True, "models_untracked": True}
