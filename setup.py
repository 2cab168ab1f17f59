"""The wheel ships the workflow: the repository's top-level ``Snakefile``, ``rules/``, ``scripts/``, ``config/``,
``profiles/`` and ``envs/`` (the design card's layout) are copied into the package's ``tomosnake/workflow/``, where
`tomosnake.workflow` finds them. An editable install copies nothing: the package finds them at the repository root.
Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
LAYOUT = ("Snakefile", "rules", "scripts", "config", "profiles", "envs", "report")  # tomosnake.workflow.LAYOUT


class BuildPyWithWorkflow(build_py):
    """``build_py``, then the workflow's top-level files into ``<build>/tomosnake/workflow/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "tomosnake" / "workflow"
        for name in LAYOUT:
            src = ROOT / name
            files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file() and
                                                         "__pycache__" not in p.parts and p.suffix != ".pyc")
            for path in files:
                dest = target / path.relative_to(ROOT)
                self.mkpath(str(dest.parent))
                self.copy_file(str(path), str(dest))


setup(cmdclass={"build_py": BuildPyWithWorkflow})
