"""Check the registered data against its registries: every file present with its recorded sha256, every place
with a source, a licence and its attribution; the aliases byte-identical to the samples they name.

    python data_pipelines/check_registries.py            # samples and corpus; exit 1 on any problem

Run it after vendoring (vendor_samples.py, vendor_corpus.py) and before committing data.
"""

from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path

from citygen.core import settings
from citygen.core.errors import SourceError
from citygen.data.samples import aliases, check_file, list_corpus, list_samples, samples_dir
from citygen.data.sources import sha256_file


@cache
def provenance_sums(folder: Path) -> dict[str, str]:
    """``file path -> sha256 (prefix)`` from the table rows of ``folder/PROVENANCE.md``."""
    text = (folder / "PROVENANCE.md").read_text() if (folder / "PROVENANCE.md").is_file() else ""
    rows = re.findall(r"^\|\s*`([^`]+)`\s*\|.*\|\s*([0-9a-f]{16,64})\s*\|\s*$", text, flags=re.M)
    return dict(rows)


def main() -> int:
    problems: list[str] = []
    places = [*list_samples(), *list_corpus()]
    n_files = 0
    for place in places:
        if not place.source:
            problems.append(f"{place.id}: no source recorded")
        if place.licence != "ODbL-1.0":
            problems.append(f"{place.id}: licence {place.licence!r}, expected ODbL-1.0 (OpenStreetMap data)")
        for item in place.files:
            full = Path(place.root) / item.path
            n_files += 1
            actual = sha256_file(full) if full.is_file() else None
            # the sample registry leaves checksums to PROVENANCE.md (first 16 hex digits); the corpus records them
            recorded = item.sha256 or provenance_sums(Path(place.root)).get(item.path)
            if recorded is None:
                problems.append(f"{place.id}: {item.path} has no sha256 in the registry or PROVENANCE.md")
                continue
            try:
                check_file(full, sha256=recorded, origin=place.id, actual_sha256=actual and actual[: len(recorded)])
            except SourceError as exc:
                problems.append(exc.problem)
    by_id = {p.id: p for p in places}
    for alias, sample in aliases().items():
        if sample not in by_id:
            problems.append(f"alias {alias} names {sample}, which is not registered")
    for folder in (samples_dir(), settings.corpus_dir()):
        text = (folder / "PROVENANCE.md").read_text() if (folder / "PROVENANCE.md").is_file() else ""
        if "OpenStreetMap contributors" not in text:
            problems.append(
                f"{folder / 'PROVENANCE.md'}: missing, or without the attribution (c) OpenStreetMap contributors"
            )
    for line in problems:
        print(f"PROBLEM {line}")
    print(f"{len(places)} places, {n_files} files, {len(aliases())} aliases: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
