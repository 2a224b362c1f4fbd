"""Which targets BED applies to a sample, decided once (in `aligned_reads`) and stored. Plain Python.

In order: the run config (a path, trusted like a custom profile path), the
sample's samplesheet row (`targets`: a BED uploaded with the sample, by file
name; a sheet comes from outside and never names a path), then the lab's
GENOFLOW_TARGETS (the `reference` resource). None of them means an untargeted
sample: no target metrics, and a targeted profile lists its target checks as
not graded.

The BED is validated (qc.targets.load_targets runs the project's BED
validator) and its regions are written out as a plain BED (amplicons, for a
primer scheme): the measure of the target metrics and the regions variant
calling is restricted to, stored beside the BAM so `variant_calls` reads the
same regions instead of deciding again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genoflow_dagster.qc.targets import Targets, load_targets


@dataclass(frozen=True)
class SampleTargets:
    """The sample's targets: loaded regions, the regions as a BED file, and a record for the manifest."""

    targets: Targets | None = None
    regions_bed: Path | None = None
    record: dict[str, Any] = field(default_factory=lambda: {"source": None})


@contextlib.contextmanager
def sample_targets(storage: Any, *, run_config: str | None, sheet_row: dict[str, Any] | None,
                   valid: dict[str, dict[str, Any]], configured: Targets | None, tmp: Path) -> Iterator[SampleTargets]:
    """Resolve, fetch and load the sample's targets BED; yields SampleTargets (empty when there are none).

    `valid` maps the sample's valid files (by name) to their validation rows; `configured`
    is `reference.targets()` (already validated and read). Raises ValueError for a samplesheet
    `targets` that is not one of the sample's valid BED files, or a BED that does not validate or
    has no usable region.
    """
    with contextlib.ExitStack() as stack:
        targets = None
        if run_config:
            path, name, source = Path(run_config), Path(run_config).name, "run config"
        elif sheet_row and sheet_row.get("targets"):
            name = sheet_row["targets"]
            row = valid.get(name)
            if row is None or row.get("format") != "bed":
                raise ValueError(f"samplesheet line {sheet_row.get('line')} names targets {name!r}, which is not "
                                 "among the sample's valid BED files")
            path = stack.enter_context(storage.local_path(row["raw_key"]))
            source = f"samplesheet line {sheet_row.get('line')}"
        elif configured is not None:
            targets, name, source = configured, Path(configured.path).name, "GENOFLOW_TARGETS"
        else:
            yield SampleTargets()
            return
        if targets is None:
            targets = load_targets(path)
        regions_bed = tmp / "targets.bed"
        regions_bed.write_text("".join(f"{r.chrom}\t{r.start}\t{r.end}\t{r.name}\n" for r in targets.regions))
        record = {"source": source, "name": name, "kind": targets.kind, "regions": len(targets.regions)}
        yield SampleTargets(targets=targets, regions_bed=regions_bed, record=record)
