"""`genoflow doctor`: check the configuration before a lab's samples meet it.

Every configured path (reference genome, annotation, known sites, contaminant
genomes, targets, QC profile) is looked at and validated with GenoFlow's own
validators; contig names of the annotation, known sites and targets are
compared with the genome's (`chr1` against `1` is the usual mismatch); storage
and the Dagster instance are checked for what a run needs. Each finding says,
in plain words, what is wrong and which setting to change.

A feature that is switched off on purpose (`GENOFLOW_ANNOTATION=off`) is
reported as off, not as a problem; a configured file that is missing is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from genoflow_dagster import settings

OK, OFF, WARNING, ERROR = "ok", "off", "warning", "error"
CONTIG_SAMPLE_RECORDS = 20_000  # records read from an annotation/VCF/BED to learn its contig names


@dataclass(frozen=True)
class Finding:
    item: str  # what was checked, e.g. "gene annotation"
    setting: str  # the variable that configures it
    value: str | None  # its path or value
    status: str  # ok | off | warning | error
    detail: str  # plain words: what was found, or what to do

    def to_json(self) -> dict[str, str | None]:
        return asdict(self)


def diagnose() -> list[Finding]:
    """Every finding, in the order a newcomer configures things."""
    findings: list[Finding] = []
    if _reference_in_use(findings):  # an unknown GENOFLOW_REFERENCE leaves no reference paths to check
        genome_contigs = _genome(findings)
        paths = settings.reference_paths()
        _optional_file(findings, "gene annotation", "GENOFLOW_ANNOTATION", paths["annotation_path"],
                       ("gtf", "gff"), genome_contigs)
        _optional_file(findings, "known-sites VCF", "GENOFLOW_KNOWN_SITES", paths["known_sites_path"], ("vcf",),
                       genome_contigs)
        _contaminants(findings)
        _optional_file(findings, "targets BED", "GENOFLOW_TARGETS", settings.targets_path(), ("bed",),
                       genome_contigs)
    _profile(findings)
    _storage(findings)
    _instance(findings)
    return findings


def has_problems(findings: list[Finding]) -> bool:
    return any(f.status == ERROR for f in findings)


def _validate(path: Path) -> tuple[bool, str | None, str]:
    """(valid, format, what is wrong in plain words), from the verdict the pipeline itself uses (and
    remembers per version of the file: `resources.reference.validated_once`)."""
    from genoflow_dagster.resources.reference import validated_once

    verdict = validated_once(path)
    if verdict["valid"]:
        return True, verdict["format"], ""
    where = f" at line {verdict['line']}" if verdict["line"] else ""
    return False, verdict["format"], f"{verdict['reason']}{where}: {verdict['message']}"


def _reference_in_use(findings: list[Finding]) -> bool:
    """Which added reference (`genoflow reference add`) is in use and why, or that no genome is configured;
    False when GENOFLOW_REFERENCE names no added reference (there are then no reference paths to check)."""
    from genoflow_dagster.references import ReferenceProblem, chosen_reference, no_reference_message

    try:
        chosen = chosen_reference()
    except ReferenceProblem as problem:
        findings.append(Finding("reference", "GENOFLOW_REFERENCE", os.environ.get("GENOFLOW_REFERENCE"), ERROR,
                                problem.message))
        return False
    if chosen is not None:
        overridden = [v for v in ("GENOFLOW_REFERENCE_FASTA", "GENOFLOW_ANNOTATION", "GENOFLOW_KNOWN_SITES",
                                  "GENOFLOW_CONTAMINANTS") if os.environ.get(v) is not None]
        note = f"; {', '.join(overridden)} override its files" if overridden else ""
        findings.append(Finding("reference", "GENOFLOW_REFERENCE", chosen.name, OK,
                                f"added reference '{chosen.name}' ({chosen.folder}), {chosen.how}{note}"))
    elif os.environ.get("GENOFLOW_REFERENCE_FASTA"):
        findings.append(Finding("reference", "GENOFLOW_REFERENCE_FASTA", os.environ["GENOFLOW_REFERENCE_FASTA"], OK,
                                "a genome FASTA given by path (not an added reference)"))
    else:
        findings.append(Finding("reference genome", "GENOFLOW_REFERENCE", None, ERROR, no_reference_message()))
    return True


def _genome(findings: list[Finding]) -> set[str]:
    raw = settings.reference_paths()["fasta_path"]
    if not raw:  # no genome configured at all: `_reference_in_use` said what to do
        return set()
    path = Path(str(raw))
    if not path.is_file():
        findings.append(Finding("reference genome", "GENOFLOW_REFERENCE_FASTA", str(path), ERROR,
                                "no file there: set GENOFLOW_REFERENCE_FASTA to your genome FASTA (plain or "
                                "bgzip), or add it with `genoflow reference add FASTA` and set GENOFLOW_REFERENCE"))
        return set()
    valid, fmt, problem = _validate(path)
    if not valid or fmt != "fasta":
        findings.append(Finding("reference genome", "GENOFLOW_REFERENCE_FASTA", str(path), ERROR,
                                problem or f"it is a {fmt} file, not FASTA"))
        return set()
    contigs = dict(_fasta_contigs(path))
    total = sum(contigs.values())
    findings.append(Finding("reference genome", "GENOFLOW_REFERENCE_FASTA", str(path), OK,
                            f"{len(contigs):,} contig(s), {total:,} bp; names like {_examples(contigs)}"))
    return set(contigs)


def _fasta_contigs(path: Path) -> Iterator[tuple[str, int]]:
    from genoflow_dagster.formats.io import open_decompressed

    name, length = None, 0
    with open_decompressed(path) as stream:
        for line in stream:
            if line.startswith(b">"):
                if name is not None:
                    yield name, length
                name, length = line[1:].split(None, 1)[0].decode(errors="replace") if line[1:].strip() else "", 0
            else:
                length += len(line.strip())
    if name is not None:
        yield name, length


def _optional_file(findings: list[Finding], item: str, variable: str, configured: str | list[str] | None,
                   formats: tuple[str, ...], genome_contigs: set[str]) -> None:
    if not configured:
        explicit = os.environ.get(variable) is not None
        findings.append(Finding(item, variable, None, OFF, "switched off" if explicit else
                                f"not configured (set {variable} to use one)"))
        return
    path = Path(str(configured))
    if not path.is_file():
        findings.append(Finding(item, variable, str(path), ERROR,
                                f"no file there: fix {variable}, or set {variable}=off to run without it"))
        return
    valid, fmt, problem = _validate(path)
    if not valid:
        findings.append(Finding(item, variable, str(path), ERROR, f"{problem}; fix the file or {variable}"))
        return
    if fmt not in formats:
        findings.append(Finding(item, variable, str(path), ERROR,
                                f"it is a {fmt} file; expected {' or '.join(f.upper() for f in formats)}"))
        return
    names = _contig_names(path, fmt)
    if genome_contigs and names and not names & genome_contigs:
        hint = _naming_hint(names, genome_contigs)
        findings.append(Finding(item, variable, str(path), ERROR,
                                f"none of its contigs ({_examples(names)}) is in the reference genome "
                                f"({_examples(genome_contigs)}){hint}"))
        return
    missing = names - genome_contigs if genome_contigs else set()
    if missing:
        findings.append(Finding(item, variable, str(path), WARNING,
                                f"valid {fmt}; {len(missing):,} of its {len(names):,} contigs are not in the "
                                f"reference genome ({_examples(missing)}): their records are not used"))
        return
    findings.append(Finding(item, variable, str(path), OK, f"valid {fmt}, contigs match the reference genome"))


def _contig_names(path: Path, fmt: str | None) -> set[str]:
    """Contig names in the first records of an annotation, VCF or BED."""
    from genoflow_dagster.formats.io import open_decompressed

    names: set[str] = set()
    seen = 0
    with open_decompressed(path) as stream:
        for line in stream:
            if line.startswith(b"#") or not line.strip() or (fmt == "bed" and line.startswith((b"track", b"browser"))):
                continue
            names.add(line.split(b"\t", 1)[0].decode(errors="replace"))
            seen += 1
            if seen >= CONTIG_SAMPLE_RECORDS:
                break
    return names


def _naming_hint(names: set[str], genome: set[str]) -> str:
    prefixed = {n[3:] if n.startswith("chr") else f"chr{n}" for n in names}
    if prefixed & genome:
        return ": the files differ in the 'chr' prefix (chr1 against 1); use files of one naming convention"
    return ": is it for another genome?"


def _examples(names: set[str] | dict[str, int], n: int = 3) -> str:
    listed = sorted(names)[:n]
    return ", ".join(listed) + (", ..." if len(names) > n else "")


def _contaminants(findings: list[Finding]) -> None:
    paths = settings.contaminant_paths()
    if not paths:
        findings.append(Finding("contaminant genomes", "GENOFLOW_CONTAMINANTS", None, OFF,
                                "no contamination screen (set GENOFLOW_CONTAMINANTS to FASTA paths)"))
        return
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            findings.append(Finding("contaminant genome", "GENOFLOW_CONTAMINANTS", raw, ERROR,
                                    "no file there: fix GENOFLOW_CONTAMINANTS"))
            continue
        valid, fmt, problem = _validate(path)
        status, detail = (OK, "valid FASTA") if valid and fmt == "fasta" else (ERROR, problem or f"a {fmt} file")
        findings.append(Finding("contaminant genome", "GENOFLOW_CONTAMINANTS", raw, status, detail))


def _profile(findings: list[Finding]) -> None:
    from genoflow_dagster.qc.profiles import ProfileError, load_profile

    name = settings.default_qc_profile()
    try:
        profile = load_profile(name)
    except (ProfileError, OSError, ValueError) as exc:
        findings.append(Finding("QC profile", "GENOFLOW_QC_PROFILE", name, ERROR, str(exc)))
        return
    findings.append(Finding("QC profile", "GENOFLOW_QC_PROFILE", name, OK,
                            f"{profile.name} v{profile.version}, {len(profile.thresholds)} checks"))


def _storage(findings: list[Finding]) -> None:
    from genoflow_dagster import zones
    from genoflow_dagster.errors import StorageError

    try:
        kind = settings.storage_kind()
    except ValueError as exc:
        findings.append(Finding("storage", "GENOFLOW_STORAGE", os.environ.get("GENOFLOW_STORAGE"), ERROR, str(exc)))
        return
    if kind == "local":
        folder = settings.data_dir()
        problem = _writable(folder)
        findings.append(Finding("storage (local)", "GENOFLOW_DATA_DIR", str(folder), ERROR if problem else OK,
                                problem or "writable; files dropped into landing/<sample>/ are picked up"))
        return
    from genoflow_dagster.resources.storage import storage_from_settings

    target = f"s3://{settings.s3_settings()['bucket']}"
    try:
        next(iter(storage_from_settings().list(zones.landing_prefix())), None)
    except StorageError as exc:
        findings.append(Finding("storage (S3)", "GENOFLOW_S3_BUCKET", target, ERROR, exc.message))
        return
    findings.append(Finding("storage (S3)", "GENOFLOW_S3_BUCKET", target, OK, "bucket reachable and listable"))


def _writable(folder: Path) -> str:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".doctor-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"cannot write there ({exc.strerror})"
    return ""


def _instance(findings: list[Finding]) -> None:
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        findings.append(Finding("Dagster instance", "DAGSTER_HOME", None, WARNING,
                                "not set: runs would use a temporary instance that forgets them; `make dev` "
                                "and `make demo` set it to ./.dagster_home"))
        return
    config = Path(home) / "dagster.yaml"
    if not config.is_file():
        findings.append(Finding("Dagster instance", "DAGSTER_HOME", home, WARNING,
                                "no dagster.yaml there: Dagster's defaults apply (no run queue limits, no run "
                                "monitoring); copy the repository's dagster.yaml (SQLite) or "
                                "deploy/postgres/dagster.yaml"))
        return
    text = config.read_text()
    if "postgres" in text:
        unset = [v for v in _POSTGRES_VARIABLES if v in text and not os.environ.get(v) and v != "DAGSTER_PG_PASSWORD"]
        if unset:
            findings.append(Finding("Dagster instance (PostgreSQL)", "DAGSTER_HOME", home, ERROR,
                                    f"dagster.yaml reads {', '.join(unset)}, which are not set"))
            return
        findings.append(Finding("Dagster instance (PostgreSQL)", "DAGSTER_HOME", home, OK, "settings present"))
        return
    findings.append(Finding("Dagster instance (SQLite)", "DAGSTER_HOME", home, OK, "dagster.yaml present"))


_POSTGRES_VARIABLES = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD",
                       "DAGSTER_PG_DB")


def report_lines(findings: list[Finding]) -> list[str]:
    """Human text: one line per finding, the status first."""
    width = max((len(f.item) for f in findings), default=0)
    lines = []
    for f in findings:
        where = f" [{f.setting}={f.value}]" if f.value else f" [{f.setting}]"
        lines.append(f"{f.status.upper():8} {f.item:<{width}}  {f.detail}{where}")
    return lines
