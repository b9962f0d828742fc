"""The install cell that opens every chapter, as Colab or Binder would run it.

`test_every_chapter_starts_with_the_install_cell` checks that each notebook of `_toc.yml` starts with the
current cell (`.ci/install_cell.py` writes it from `_config.yml`'s repository URL).

`test_a_chapter_runs_where_the_course_is_not_installed` simulates a Colab session: a fresh virtual
environment that has the course's dependencies (torch, numpy, ... seen through a `.pth` file pointing at
this environment's site-packages, so nothing is downloaded) but not `companion`. A chapter runs there in
a Jupyter kernel from top to bottom; its first cell, with the repository URL replaced by a copy of this
checkout, installs `companion`, and the chapter's own cells then import it from the fresh environment.
It takes about a minute; it is skipped when `COMPANION_KERNEL_RERUN=1` (the notebooks' second, seeded
run, which has no need to repeat it).
"""

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTER = "book/optimization/adadelta.ipynb"  # a short chapter; any chapter would do

_spec = importlib.util.spec_from_file_location(
    "install_cell", ROOT / ".ci" / "install_cell.py"
)
install_cell = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(install_cell)


def test_the_cell_is_tiny_and_reads_the_repository_url():
    source = install_cell.cell_source()
    url = install_cell.repository_url()
    assert url.startswith("https://") and f'"git+{url}"' in source
    assert source.count("\n") <= 5, (
        "the install cell should stay a few lines a reader can check at a glance"
    )
    compile(
        source.replace("%pip", "pass  #"), "<install cell>", "exec"
    )  # valid Python, the magic aside


@pytest.mark.parametrize(
    "notebook", [p.relative_to(ROOT).as_posix() for p in install_cell.toc_notebooks()]
)
def test_every_chapter_starts_with_the_install_cell(notebook):
    nb = json.loads((ROOT / notebook).read_text(encoding="utf-8"))
    assert install_cell.status(nb) == "ok", (
        f"{notebook}: run `.ci/install_cell.py` to add the install cell"
    )


def fresh_environment(where: pathlib.Path) -> pathlib.Path:
    """A venv without `companion` that sees this environment's packages (torch, ipykernel, pip, ...)."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(where)], check=True
    )
    python = where / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run(
        [
            str(python),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # A plain path line: that directory joins sys.path, but its own .pth files (among them the
    # editable install of companion) are not processed, so companion stays missing.
    ours = sysconfig.get_paths()["purelib"]
    pathlib.Path(purelib, "course_dependencies.pth").write_text(ours + "\n")
    return python


def copy_of_checkout(where: pathlib.Path) -> pathlib.Path:
    """The repository's working tree without build outputs, so installing it writes nothing into ours."""
    ignore = shutil.ignore_patterns(
        ".git",
        ".venv*",
        "venv",
        "_build",
        "build",
        "*.egg-info",
        "__pycache__",
        ".ipynb_checkpoints",
        ".pytest_cache",
    )
    shutil.copytree(ROOT, where, ignore=ignore, symlinks=True)
    return where


@pytest.mark.skipif(
    os.environ.get("COMPANION_KERNEL_RERUN") == "1",
    reason="run once, not on the second seeded run",
)
def test_a_chapter_runs_where_the_course_is_not_installed(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    python = fresh_environment(tmp_path / "colab")
    check = subprocess.run(
        [str(python), "-c", "import companion"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert check.returncode != 0, "the fresh environment must start without companion"
    repo = copy_of_checkout(tmp_path / "repo")

    kernels = tmp_path / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [
                    str(python),
                    "-m",
                    "ipykernel_launcher",
                    "-f",
                    "{connection_file}",
                ],
                "display_name": "fresh venv",
                "language": "python",
                "env": {
                    "PYTHONPATH": "",
                    "PIP_NO_INDEX": "1",
                    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                },
            }
        )
    )
    manager = KernelManager(
        kernel_name="colab",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels.parent)]),
    )

    path = repo / CHAPTER
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert "".join(first.source) == install_cell.cell_source(), (
        f"{CHAPTER} must start with the install cell"
    )
    # The same cell, installing from the copy instead of GitHub (offline, and the code under test).
    url = install_cell.repository_url()
    first.source = first.source.replace(
        f'"git+{url}"', f'--no-deps --no-build-isolation "{repo}"'
    )
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import companion, sys\nprint(sys.prefix, companion.__file__)\n"
            f"assert companion.__file__.startswith({str(tmp_path / 'colab')!r}), companion.__file__"
        )
    )
    client = nbclient.NotebookClient(
        nb, km=manager, timeout=600, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), (
        "every cell ran"
    )

    # companion imported from the fresh environment: the first cell installed it there
    last = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert str(tmp_path / "colab") in last, last
