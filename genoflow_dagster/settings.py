"""Environment logic, in one place: every GENOFLOW_* variable is read here and only here.

Plain functions, evaluated when called (never at import), so tests and the CLI
can change the environment before building definitions.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MAX_FILE_BYTES = 5 * 1024**3


def data_dir() -> Path:
    """Root of the local storage zones (landing/, raw/, processed/...)."""
    return Path(os.environ.get("GENOFLOW_DATA_DIR", "./data")).resolve()


def work_dir() -> Path:
    """Scratch space for heavy steps that need local files (alignment, calling)."""
    path = Path(os.environ.get("GENOFLOW_WORK_DIR", str(data_dir() / ".work"))).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def storage_kind() -> str:
    kind = os.environ.get("GENOFLOW_STORAGE", "local").strip().lower()
    if kind not in ("local", "s3"):
        raise ValueError(f"GENOFLOW_STORAGE must be 'local' or 's3', not {kind!r}")
    return kind


def s3_settings() -> dict[str, str | None]:
    return {
        "bucket": os.environ.get("GENOFLOW_S3_BUCKET", "genoflow"),
        "prefix": os.environ.get("GENOFLOW_S3_PREFIX", ""),
        "endpoint_url": os.environ.get("GENOFLOW_S3_ENDPOINT_URL") or None,
        "region_name": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
    }


CONTAMINANT_SUFFIXES = (".fa", ".fasta", ".fna", ".fa.gz", ".fasta.gz", ".fna.gz")


OFF_WORDS = ("", "off", "none")


def optional_reference_path(variable: str, default: Path | None) -> str | None:
    """An optional reference file (annotation, known sites): the path the variable names, kept even when
    nothing is there (the resource then fails naming it: a misspelt path must not quietly switch a feature
    off); `off`, `none` or empty switch it off explicitly; unset, the chosen reference's file, if it has one."""
    raw = os.environ.get(variable)
    if raw is None:
        return str(default) if default is not None else None
    return None if raw.strip().lower() in OFF_WORDS else raw.strip()


def reference_paths() -> dict[str, str | list[str] | None]:
    """Reference FASTA, annotation (GTF/GFF3), known-sites VCF, contaminant FASTAs and targets BED.

    Each explicit variable (GENOFLOW_REFERENCE_FASTA, GENOFLOW_ANNOTATION, ...) wins; the rest come from the
    added reference in use (`references.chosen_reference`: GENOFLOW_REFERENCE, or the only one added other
    than the demo's). No genome configured leaves fasta_path empty: the resource then says how to add one.
    Raises references.UnknownReference when GENOFLOW_REFERENCE names no added reference.
    """
    from genoflow_dagster.references import chosen_reference

    chosen = chosen_reference()
    return {
        "fasta_path": os.environ.get("GENOFLOW_REFERENCE_FASTA") or (str(chosen.fasta) if chosen else ""),
        "annotation_path": optional_reference_path("GENOFLOW_ANNOTATION", chosen.annotation if chosen else None),
        "known_sites_path": optional_reference_path("GENOFLOW_KNOWN_SITES", chosen.known_sites if chosen else None),
        "contaminant_paths": contaminant_paths(),
        "targets_path": targets_path(),
    }


def targets_path() -> str | None:
    """The lab's targets BED (GENOFLOW_TARGETS): exome/panel capture targets, or an amplicon or
    ARTIC-style primer scheme. Unset means no targets: target metrics are not computed and the
    exome/panel/amplicon profiles list their target checks as not graded. No data-dir default:
    a stray file must not turn a WGS lab's samples into targeted ones."""
    return os.environ.get("GENOFLOW_TARGETS", "").strip() or None


def contaminant_dir() -> Path:
    """Where contaminant FASTAs are picked up when GENOFLOW_CONTAMINANTS is unset."""
    return data_dir() / "reference" / "contaminants"


def contaminant_paths() -> list[str]:
    """Contaminant reference FASTAs for the contamination screen, in the order given.

    GENOFLOW_CONTAMINANTS (comma-separated paths) when set, even to nothing (set
    and empty turns the screen off); unset, the contaminants of the added reference
    in use, if it has any, else every FASTA in `contaminant_dir()`, by name. No
    paths means the screen is not configured and not computed.
    """
    raw = os.environ.get("GENOFLOW_CONTAMINANTS")
    if raw is not None:
        return [path.strip() for path in raw.split(",") if path.strip()]
    from genoflow_dagster.references import chosen_reference

    chosen = chosen_reference()
    if chosen is not None and chosen.contaminants:
        return [str(p) for p in chosen.contaminants]
    folder = contaminant_dir()
    if not folder.is_dir():
        return []
    return [str(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name.lower().endswith(CONTAMINANT_SUFFIXES)]


def ai_settings() -> dict[str, str | None]:
    return {
        "provider": os.environ.get("GENOFLOW_AI_PROVIDER", "offline").strip().lower(),
        "model": os.environ.get("GENOFLOW_AI_MODEL") or None,
        "base_url": os.environ.get("GENOFLOW_AI_BASE_URL") or None,
    }


def webhook_urls() -> list[str]:
    raw = os.environ.get("GENOFLOW_WEBHOOK_URLS", "")
    return [url.strip() for url in raw.split(",") if url.strip()]


DEFAULT_OWNERS = "team:genoflow"


def owners() -> list[str]:
    """GENOFLOW_OWNERS: who answers for GenoFlow's assets (the UI's owner filter and the asset pages), as
    comma-separated e-mail addresses or `team:<name>`, the two forms Dagster accepts; default team:genoflow.
    One setting for the deployment: the lab that runs it owns every stage."""
    named = [o.strip() for o in os.environ.get("GENOFLOW_OWNERS", DEFAULT_OWNERS).split(",") if o.strip()]
    wrong = [o for o in named if not (o.startswith("team:") and len(o) > 5) and "@" not in o]
    if wrong:
        raise ValueError(f"GENOFLOW_OWNERS: {', '.join(wrong)} is neither an e-mail address nor team:<name> "
                         f"(e.g. GENOFLOW_OWNERS=team:sequencing-lab,lead@lab.org)")
    return named or [DEFAULT_OWNERS]


def default_qc_profile() -> str:
    return os.environ.get("GENOFLOW_QC_PROFILE", "standard")


def validation_strict() -> bool:
    """GENOFLOW_VALIDATION=strict: every run refuses files with warnings (a run's config can also ask)."""
    return os.environ.get("GENOFLOW_VALIDATION", "default").strip().lower() == "strict"


def max_file_bytes() -> int:
    return int(os.environ.get("GENOFLOW_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES))


def landing_settle_seconds() -> float:
    return float(os.environ.get("GENOFLOW_LANDING_SETTLE_SECONDS", "60"))


def reference_cache_dir() -> Path:
    """Where reference indexes (.fai, minimap2 .mmi) are built, one folder per FASTA checksum."""
    path = Path(os.environ.get("GENOFLOW_REFERENCE_CACHE", str(data_dir() / ".cache" / "reference")))
    return path.resolve()


def compute_mode() -> str:
    """`in_process` (default) or `subprocess` (Dagster Pipes) for alignment and calling."""
    return os.environ.get("GENOFLOW_COMPUTE", "in_process").strip().lower()


def compute_threads() -> int:
    """Worker processes for alignment and calling (GENOFLOW_THREADS; default: the CPUs this process may use)."""
    raw = os.environ.get("GENOFLOW_THREADS", "").strip()
    if raw:
        threads = int(raw)
        if threads < 1:
            raise ValueError(f"GENOFLOW_THREADS must be a positive number, not {raw!r}")
        return threads
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


DEFAULT_S3_TIMEOUT_SECONDS = 10.0
DEFAULT_S3_MAX_ATTEMPTS = 2


def s3_timeout_seconds() -> float:
    """How long S3 may stay silent (GENOFLOW_S3_TIMEOUT_SECONDS, default 10): the connect timeout and
    the timeout of each socket read, not of a whole transfer, so a 5 GB download still streams.

    With the default attempts a hung endpoint fails a call after about 2 x 10 s, well inside the
    landing sensor's 30 s interval and Dagster's 60 s sensor timeout (DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS).
    """
    raw = os.environ.get("GENOFLOW_S3_TIMEOUT_SECONDS", "").strip()
    seconds = float(raw) if raw else DEFAULT_S3_TIMEOUT_SECONDS
    if not seconds > 0:
        raise ValueError(f"GENOFLOW_S3_TIMEOUT_SECONDS must be a positive number of seconds, not {raw!r}")
    return seconds


def s3_max_attempts() -> int:
    """Attempts per S3 request, the first included (GENOFLOW_S3_MAX_ATTEMPTS, default 2: one retry)."""
    raw = os.environ.get("GENOFLOW_S3_MAX_ATTEMPTS", "").strip()
    attempts = int(raw) if raw else DEFAULT_S3_MAX_ATTEMPTS
    if attempts < 1:
        raise ValueError(f"GENOFLOW_S3_MAX_ATTEMPTS must be 1 or more, not {raw!r}")
    return attempts
