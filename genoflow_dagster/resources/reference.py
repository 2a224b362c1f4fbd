"""The `reference` resource: where the reference genome, annotation, known sites and contaminants live.

Reference files are local paths (a lab keeps them on a shared volume); the
`reference_*` assets fingerprint them so a new reference version marks the
per-sample assets that used the old one as stale.
"""


import json
from pathlib import Path

import dagster as dg

from genoflow_dagster import __version__, settings
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
        if not self.fasta_path:
            from genoflow_dagster.references import no_reference_message

            raise FileNotFoundError(no_reference_message())
        path = Path(self.fasta_path)
        if not path.is_file():
            raise FileNotFoundError(f"reference FASTA not found at {path}; fix GENOFLOW_REFERENCE_FASTA, or add the "
                                    "genome with `genoflow reference add FASTA` and set GENOFLOW_REFERENCE")
        return path

    def annotation(self) -> Path | None:
        """The gene annotation (GTF or GFF3), validated; None when switched off or not configured. A
        configured file that is missing raises FileNotFoundError, an invalid one ValueError, each naming
        the file: variants are never quietly left without gene names."""
        return _checked(self.annotation_path, "gene annotation", "GENOFLOW_ANNOTATION", ("gtf", "gff"))

    def known_sites(self) -> Path | None:
        """The known-sites VCF, validated; None when switched off or not configured (errors as for
        `annotation`)."""
        return _checked(self.known_sites_path, "known-sites VCF", "GENOFLOW_KNOWN_SITES", ("vcf",))

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


def _checked(configured: str | None, what: str, variable: str, formats: tuple[str, ...]) -> Path | None:
    if not configured:
        return None
    path = Path(configured)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found at {path}; fix {variable}, or set {variable}=off to run "
                                "without it")
    verdict = validated_once(path)
    if not verdict["valid"] or verdict["format"] not in formats:
        problem = (f"{verdict['reason']} at line {verdict['line']}: {verdict['message']}" if verdict["line"]
                   else f"{verdict['reason']}: {verdict['message']}") if not verdict["valid"] else \
            f"it is a {verdict['format']} file, not {' or '.join(f.upper() for f in formats)}"
        raise ValueError(f"{what} {path} is not usable: {problem}; fix the file, or set {variable}=off")
    return path


def validated_once(path: Path) -> dict:
    """`validate_file`'s verdict on a reference file, remembered per version of the file and of GenoFlow
    under the reference cache (`formats.io.remembered_per_version`): a 1 GB annotation is validated once,
    not in every run."""
    from genoflow_dagster.formats.io import remembered_per_version
    from genoflow_dagster.formats.validate import validate_file

    def verdict(file: Path) -> str:
        result = validate_file(file)
        return json.dumps({"valid": result.valid, "format": result.format, "reason": result.reason,
                           "line": result.line, "message": result.message, "records": result.records})

    memo_dir = settings.reference_cache_dir() / "validated"
    try:
        return json.loads(remembered_per_version(path, memo_dir, verdict, salt=__version__))
    except ValueError:  # a damaged memo: validate again
        return json.loads(remembered_per_version(path, memo_dir, verdict, salt=__version__, refresh=True))
