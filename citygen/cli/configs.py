"""``citygen configs list|export DIR``: the configs installed with citygen (data, experiments, models, trainers,
compare groups), to read or to copy into a folder of your own and edit."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from citygen.core import settings
from citygen.core.errors import ConfigError


def _installed() -> list[Path]:
    root = settings.configs_dir()
    return sorted(p.relative_to(root) for p in root.rglob("*.yaml"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="citygen configs", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="print the installed configs, one path per line")
    export = sub.add_parser("export", help="copy every installed config into DIR (keeps existing files unless --force)")
    export.add_argument("dir", type=Path)
    export.add_argument("--force", action="store_true", help="overwrite files that exist in DIR")
    args = parser.parse_args(argv)
    root = settings.configs_dir()
    if args.action == "list":
        print(f"# {root}")
        for path in _installed():
            print(path.as_posix())
        return 0
    existing = [p for p in _installed() if (args.dir / p).exists()]
    if existing and not args.force:
        raise ConfigError(
            f"{len(existing)} config(s) already exist in {args.dir} (e.g. {existing[0].as_posix()})",
            "choose an empty folder, or pass --force to overwrite them",
        )
    for path in _installed():
        target = args.dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / path, target)
    print(f"copied {len(_installed())} configs from {root} to {args.dir}")
    return 0
