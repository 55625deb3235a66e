"""The wheel: it holds every package and config, and installed (not editable) into a fresh
virtualenv it gives commands that train, score, blend and rank from any folder."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from this checkout (setuptools as installed: no download)."""
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                        "-w", str(out), "-q"], capture_output=True, text=True, cwd=build, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (found,) = out.glob("prizenet-*.whl")
    return found


def test_the_wheel_holds_every_package_every_config_and_the_commands(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "prizenet").rglob("__init__.py")}
    for package in packages:  # pyproject.toml lists them: a new one must be added there
        assert f"{package}/__init__.py" in names, f"{package} is missing from the wheel: list it in pyproject.toml"
    for py in (ROOT / "prizenet").rglob("*.py"):
        assert str(py.relative_to(ROOT)) in names
    for yaml in (ROOT / "conf").rglob("*.yaml"):
        assert f"prizenet/conf/{yaml.relative_to(ROOT / 'conf')}" in names
    for static in (ROOT / "prizenet" / "judge" / "static").iterdir():  # the judge's pages' script
        assert str(static.relative_to(ROOT)) in names
    info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    entry_points = zipfile.ZipFile(wheel).read(info).decode()
    assert "prizenet = prizenet.cli:main" in entry_points and "prizenet-train = prizenet.cli.train:main" in entry_points
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "scripts/", "conf/")) for n in names)


def test_a_fresh_virtualenv_runs_the_commands_from_another_folder(wheel, tmp_path):
    # The venv sees this interpreter's site-packages for torch & co (CI installed them; no
    # download), but prizenet itself only from the wheel installed into it.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    bin_ = venv / "bin"
    r = subprocess.run([bin_ / "python", "-m", "pip", "install", "--no-deps", "-q", str(wheel)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PRIZENET_CACHE"] = str(tmp_path / "cache")

    def run(*args):
        return subprocess.run([str(a) for a in args], cwd=work, env=env, capture_output=True, text=True, timeout=600)

    where = run(bin_ / "python", "-c", "import prizenet, prizenet.config as c; print(prizenet.__file__, c.config_dir())")
    assert where.returncode == 0, where.stderr
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout  # the installed copy, its own configs

    r = run(bin_ / "prizenet", "make-synthetic", "--out", "s", "--users", 300, "--items", 60, "--ratings", 6000)
    assert r.returncode == 0, r.stderr
    r = run(bin_ / "prizenet-train", "data=netflix", "data.root=s", "model=baseline", "trainer.n_epochs=2",
            "trainer.progress=false", "hydra.run.dir=run")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((work / "run" / "metrics.json").read_text())["model"] == "Baseline"
    r = run(bin_ / "prizenet", "score", "run/submission.txt", "s/answers.csv")
    assert r.returncode == 0 and "quiz RMSE" in r.stdout, r.stderr
    r = run(bin_ / "prizenet", "leaderboard", "run")
    assert r.returncode == 0 and "Baseline" in r.stdout, r.stderr
    r = run(bin_ / "python", "-c", "import pathlib, prizenet.judge as j; "
            "print((pathlib.Path(j.__file__).parent / 'static' / 'judge.js').read_text()[:60])")
    assert r.returncode == 0 and "judging service" in r.stdout, r.stderr  # the judge's page script ships
    r = run(bin_ / "prizenet", "train", "--help")
    assert r.returncode == 0 and "model: " in r.stdout and "svdpp" in r.stdout  # the shipped config groups
    r = run(bin_ / "prizenet", "nonsense")
    assert r.returncode == 2 and "unknown command 'nonsense'" in r.stderr
