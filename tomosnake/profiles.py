"""Make the workflow's Snakemake profiles (`profiles/`) findable by name.

``snakemake --profile NAME`` looks for ``NAME`` only in the current directory, the user's
Snakemake config directory (``~/.config/snakemake``) and the site one, never in the
package's ``profiles/``. `install_profiles` links every ``profiles/<name>/`` into the
user directory so that ``snakemake --profile maxiv`` works as users type it. Run it with
``python -m tomosnake.profiles``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tomosnake.workflow import PROFILES


def user_profile_dir() -> Path:
    """The directory where Snakemake looks up profiles by name for this user."""
    from snakemake.common import get_appdirs

    return Path(get_appdirs().user_config_dir)


def install_profiles(target: Path | None = None, source: Path = PROFILES) -> list[Path]:
    """Symlink each ``source/<name>/`` holding a ``profile.yaml`` to ``target/<name>``.

    ``target`` defaults to `user_profile_dir`. A link that already points elsewhere (an old
    checkout) is replaced; an existing file or directory of the same name is left alone and
    reported with `FileExistsError`. Returns the links, sorted by name.
    """
    if not source.is_dir():
        raise FileNotFoundError(f"no profiles directory at {source}")
    target = user_profile_dir() if target is None else target
    target.mkdir(parents=True, exist_ok=True)
    links = []
    for profile in sorted(p for p in source.iterdir() if (p / "profile.yaml").is_file()):
        link = target / profile.name
        if link.is_symlink():
            if link.resolve() == profile.resolve():
                links.append(link)
                continue
            link.unlink()
        elif link.exists():
            raise FileExistsError(f"{link} exists and is not a link to {profile}; move it away first")
        link.symlink_to(profile.resolve(), target_is_directory=True)
        links.append(link)
    return links


if __name__ == "__main__":
    for path in install_profiles(Path(sys.argv[1]) if len(sys.argv) > 1 else None):
        print(f"{path} -> {path.resolve()}")
