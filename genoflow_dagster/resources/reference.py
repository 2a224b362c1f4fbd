"""The `reference` resource: where the reference genome, annotation, known sites and contaminants live.

Reference files are local paths (a lab keeps them on a shared volume); the
`reference_*` assets fingerprint them so a new reference version marks the
per-sample assets that used the old one as stale.
"""


from pathlib import Path

import dagster as dg

from genoflow_dagster.qc.targets import Targets, load_targets


class ReferenceData(dg.ConfigurableResource):
    fasta_path: str
    annotation_path: str | None = None
    known_sites_path: str | None = None
    # FASTAs the QC contamination screen compares reads against (GENOFLOW_CONTAMINANTS); none = not screened
    contaminant_paths: list[str] = []
    # the lab's targets BED (GENOFLOW_TARGETS): capture targets or an amplicon/primer scheme; none = untargeted
    targets_path: str | None = None

    def fasta(self) -> Path:
        path = Path(self.fasta_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"reference FASTA not found at {path}; set GENOFLOW_REFERENCE_FASTA or run `genoflow demo`"
            )
        return path

    def annotation(self) -> Path | None:
        return _optional(self.annotation_path)

    def known_sites(self) -> Path | None:
        return _optional(self.known_sites_path)

    def contaminants(self) -> list[Path]:
        """The configured contaminant FASTAs; a configured path that is missing raises FileNotFoundError
        (a screen quietly run against fewer references would understate contamination)."""
        paths = [Path(p) for p in self.contaminant_paths if p]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"contaminant FASTA not found: {', '.join(missing)}; fix GENOFLOW_CONTAMINANTS"
            )
        return paths

    def targets(self) -> Targets | None:
        """The configured targets BED, validated and read (qc.targets.load_targets); None when not configured.
        A configured BED that is missing raises FileNotFoundError, an invalid one ValueError (target
        metrics quietly left out would let a targeted profile grade nothing)."""
        if not self.targets_path:
            return None
        path = Path(self.targets_path)
        if not path.is_file():
            raise FileNotFoundError(f"targets BED not found: {path}; fix GENOFLOW_TARGETS")
        return load_targets(path)


def _optional(path: str | None) -> Path | None:
    if not path:
        return None
    candidate = Path(path)
    return candidate if candidate.is_file() else None
