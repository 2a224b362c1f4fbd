"""A sample's record: the typed artifacts each stage stores, and the one place they are read and written.

Every sample-pipeline asset hands the next one nothing but storage keys; what it
learned is stored as JSON under `processed/<sample>/<asset>/` (keys in `zones`):

| record | key | written by |
|---|---|---|
| `Inventory` (of `RawFile`) | `raw_files/inventory.json` | raw_files |
| `Validation` (of `ValidatedFile`) | `validated_files/validation.json` | validated_files |
| `QCSummary` (of `QCFile`) | `qc_metrics/qc.json` | qc_metrics |
| `AlignmentManifest` | `aligned_reads/manifest.json` | aligned_reads |
| `CallSetManifest` | `variant_calls/manifest.json` | variant_calls |
| `VariantResults` | `variant_results/summary.json` | variant_results |

`SampleRecord` gathers whatever a sample has stored so far; the report, the cohort
table and the CLI read its gate outcomes (`verdicts`), never re-deriving them.

The stored JSON field names are contracts (earlier runs, the report, other tools):
`from_json(x).to_json() == x` for every artifact these stages write. A field a
stage writes only in some cases (a refusal, a release from quarantine) is left out
of the JSON when it does not apply, as the stage always did. Nested measurement
dicts (`qc --json` metrics, profile verdicts, aligner and caller stats) keep the
shapes DESIGN.md and their domain modules document.

No Dagster here: `storage` is any object with the `Storage` methods.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from genoflow_dagster import verdicts, zones
from genoflow_dagster.qc.profiles import QCProfile
from genoflow_dagster.samples import ReadGroup
from genoflow_dagster.verdicts import GateOutcome, Headline

if TYPE_CHECKING:
    from genoflow_dagster.resources.storage import ObjectInfo, Storage

JsonDict = dict[str, Any]


# ---------------------------------------------------------------- JSON and parquet artifacts

def write_json(storage: Storage, key: str, payload: Any) -> ObjectInfo:
    """Write `payload` as indented JSON with sorted keys (stable bytes for the same content)."""
    data = json.dumps(payload, indent=2, sort_keys=True, default=str).encode()
    return storage.put_bytes(data, key)


def read_json(storage: Storage, key: str) -> Any:
    return json.loads(storage.get_bytes(key))


def write_parquet(storage: Storage, key: str, frame: pd.DataFrame) -> ObjectInfo:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return storage.put_bytes(buffer.getvalue(), key)


def read_parquet(storage: Storage, key: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(storage.get_bytes(key)))


def _gates_json(gates: Iterable[GateOutcome]) -> list[JsonDict]:
    return [g.to_dict() for g in gates]


def _gates(data: JsonDict) -> tuple[GateOutcome, ...]:
    return tuple(verdicts.stored_gates(data))


def _groups_json(groups: Iterable[ReadGroup]) -> list[JsonDict]:
    return [{"r1": g.r1, "r2": g.r2} for g in groups]


def _groups(data: list[JsonDict]) -> tuple[ReadGroup, ...]:
    return tuple(ReadGroup(g["r1"], g.get("r2")) for g in data)


def _with_present(data: JsonDict, **optional: Any) -> JsonDict:
    """`data` plus the optional fields that apply (not None): a stage writes them only when they do."""
    data.update({k: v for k, v in optional.items() if v is not None})
    return data


@dataclass(frozen=True, slots=True)
class ReferenceFile:
    """The identity of a reference file a stage used (genome, gene annotation, known sites), stored by that
    stage: where it was read (`source`), its SHA-256, and the name it was added under (`genoflow reference
    add --name`; None for a file configured by path). `source` None: the stage ran without it (not
    configured, or switched off)."""

    source: str | None
    sha256: str | None
    name: str | None = None

    @property
    def used(self) -> bool:
        return self.source is not None

    def to_json(self) -> JsonDict:
        return _with_present({"source": self.source, "sha256": self.sha256}, name=self.name)

    @classmethod
    def from_json(cls, data: JsonDict) -> ReferenceFile:
        return cls(data.get("source"), data.get("sha256"), data.get("name"))


NOT_USED = ReferenceFile(source=None, sha256=None)


def _reference(data: JsonDict | None) -> ReferenceFile | None:
    return None if data is None else ReferenceFile.from_json(data)


def _reference_json(ref: ReferenceFile | None) -> JsonDict | None:
    return None if ref is None else ref.to_json()


# ---------------------------------------------------------------- raw_files: the inventory

@dataclass(frozen=True, slots=True)
class Refusal:
    """Why `raw_files` refused a file before validation: over the size limit (read from the listing, never
    downloaded; `max_bytes` set) or not a format GenoFlow reads (copied to quarantine, never to raw/)."""

    error_code: str
    reason: str | None
    message: str | None
    max_bytes: int | None = None

    def to_json(self) -> JsonDict:
        return _with_present({"error_code": self.error_code, "reason": self.reason, "message": self.message},
                             max_bytes=self.max_bytes)

    @classmethod
    def from_json(cls, data: JsonDict) -> Refusal:
        return cls(data["error_code"], data.get("reason"), data.get("message"), data.get("max_bytes"))


@dataclass(frozen=True, slots=True)
class RawFile:
    """One landed object: its checksum and raw copy (`raw_key`), or its refusal (`sha256` None when refused
    unread from its listed size; `quarantine_key` set when refused by type after the copy)."""

    landing_key: str
    etag: str
    name: str
    safe_name: str
    size_bytes: int
    sha256: str | None
    raw_key: str | None
    format: str | None
    compression: str | None
    detection_reason: str | None
    received_at: str
    run_id: str
    refused: Refusal | None = None
    quarantine_key: str | None = None

    @property
    def fingerprint(self) -> str:
        """What identifies this file's content: its checksum, or (unread) its landing key and etag."""
        return self.sha256 or f"{self.landing_key}@{self.etag}"

    def to_json(self) -> JsonDict:
        return _with_present(
            {"landing_key": self.landing_key, "etag": self.etag, "name": self.name, "safe_name": self.safe_name,
             "size_bytes": self.size_bytes, "sha256": self.sha256, "raw_key": self.raw_key, "format": self.format,
             "compression": self.compression, "detection_reason": self.detection_reason,
             "received_at": self.received_at, "run_id": self.run_id},
            refused=self.refused.to_json() if self.refused else None, quarantine_key=self.quarantine_key)

    @classmethod
    def from_json(cls, data: JsonDict) -> RawFile:
        return cls(landing_key=data["landing_key"], etag=data["etag"], name=data["name"],
                   safe_name=data["safe_name"], size_bytes=data["size_bytes"], sha256=data["sha256"],
                   raw_key=data["raw_key"], format=data["format"], compression=data["compression"],
                   detection_reason=data["detection_reason"], received_at=data["received_at"],
                   run_id=data["run_id"], refused=Refusal.from_json(data["refused"]) if data.get("refused") else None,
                   quarantine_key=data.get("quarantine_key"))


@dataclass(frozen=True, slots=True)
class SkippedKey:
    """A landing key raw_files would not map (traversal, nested folders...): `reason` is zones' code."""

    key: str
    reason: str

    def to_json(self) -> JsonDict:
        return {"key": self.key, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Inventory:
    sample_id: str
    files: tuple[RawFile, ...]
    skipped_keys: tuple[SkippedKey, ...] = ()

    @property
    def fingerprint(self) -> str:
        """The inventory's data version: its files' fingerprints, sorted (same files, same version)."""
        return ",".join(sorted(f.fingerprint for f in self.files))[:2000]

    def to_json(self) -> JsonDict:
        return {"sample_id": self.sample_id, "files": [f.to_json() for f in self.files],
                "skipped_keys": [s.to_json() for s in self.skipped_keys]}

    @classmethod
    def from_json(cls, data: JsonDict) -> Inventory:
        return cls(data["sample_id"], tuple(RawFile.from_json(f) for f in data["files"]),
                   tuple(SkippedKey(s["key"], s["reason"]) for s in data.get("skipped_keys") or ()))


# ---------------------------------------------------------------- validated_files: the validation

@dataclass(frozen=True, slots=True)
class ValidatedFile:
    """One file's validation: the `validate --json` fields (DESIGN.md), then what later stages use.

    A row for a file raw_files refused carries `landing_key` and `copied` (whether a copy sits in
    quarantine) instead of `read_name_digest`; `quarantine_key` is set for every invalid file,
    `samplesheet` for a samplesheet, `released_from_quarantine` for a file that was quarantined before.
    """

    path: str
    format: str | None
    valid: bool
    error_code: str | None
    reason: str | None
    message: str | None
    line: int | None
    records: int
    size_bytes: int
    sha256: str | None
    warnings: list[JsonDict]
    validation_mode: str
    warning_counts: dict[str, int]
    raw_key: str | None
    quality_encoding: str | None
    read_name_digest: str | None = None
    samplesheet: list[JsonDict] | None = None  # a samplesheet's rows (formats.samplesheet)
    quarantine_key: str | None = None
    released_from_quarantine: str | None = None
    landing_key: str | None = None
    copied: bool | None = None

    @property
    def refused_before_validation(self) -> bool:
        return self.landing_key is not None

    @property
    def quality_offset(self) -> int:
        """The FASTQ quality offset validation found (64 for the old Illumina encodings, else 33)."""
        return 64 if self.quality_encoding in ("phred64", "solexa64") else 33

    def to_json(self) -> JsonDict:
        data: JsonDict = {
            "path": self.path, "format": self.format, "valid": self.valid, "error_code": self.error_code,
            "reason": self.reason, "message": self.message, "line": self.line, "records": self.records,
            "size_bytes": self.size_bytes, "sha256": self.sha256, "warnings": self.warnings,
            "validation_mode": self.validation_mode, "warning_counts": self.warning_counts,
            "raw_key": self.raw_key, "quality_encoding": self.quality_encoding}
        if self.refused_before_validation:
            data.update(landing_key=self.landing_key, copied=self.copied)
        else:
            data["read_name_digest"] = self.read_name_digest
        return _with_present(data, samplesheet=self.samplesheet, quarantine_key=self.quarantine_key,
                             released_from_quarantine=self.released_from_quarantine)

    @classmethod
    def from_json(cls, data: JsonDict) -> ValidatedFile:
        return cls(path=data["path"], format=data["format"], valid=data["valid"], error_code=data["error_code"],
                   reason=data["reason"], message=data["message"], line=data["line"], records=data["records"],
                   size_bytes=data["size_bytes"], sha256=data["sha256"], warnings=list(data.get("warnings") or []),
                   validation_mode=data.get("validation_mode", "default"),
                   warning_counts=dict(data.get("warning_counts") or {}), raw_key=data.get("raw_key"),
                   quality_encoding=data.get("quality_encoding"), read_name_digest=data.get("read_name_digest"),
                   samplesheet=data.get("samplesheet"), quarantine_key=data.get("quarantine_key"),
                   released_from_quarantine=data.get("released_from_quarantine"),
                   landing_key=data.get("landing_key"), copied=data.get("copied"))


@dataclass(frozen=True, slots=True)
class PairProblem:
    """Two mate files that part ways: the first record (`line` in R1) where they do."""

    r1: str
    r2: str
    reason: str | None
    line: int | None
    message: str

    def to_json(self) -> JsonDict:
        return {"r1": self.r1, "r2": self.r2, "reason": self.reason, "line": self.line, "message": self.message}


@dataclass(frozen=True, slots=True)
class Validation:
    """Every file of the sample validated, its read pairs, its samplesheet row, and the two input gates."""

    sample_id: str
    validation_mode: str
    files: tuple[ValidatedFile, ...]
    warnings: list[JsonDict]  # formats.result.warning_table rows
    read_groups: tuple[ReadGroup, ...]
    orphan_mates: tuple[str, ...]
    pair_problems: tuple[PairProblem, ...]
    samplesheet: JsonDict | None
    validated_at: str
    gates: tuple[GateOutcome, ...]
    run_id: str | None = None  # the run that validated (absent in JSON stored before it was recorded)

    @property
    def valid_files(self) -> dict[str, ValidatedFile]:
        """The valid files by name."""
        return {f.path: f for f in self.files if f.valid}

    def to_json(self) -> JsonDict:
        return _with_present(
            {"sample_id": self.sample_id, "validation_mode": self.validation_mode,
             "files": [f.to_json() for f in self.files], "warnings": self.warnings,
             "read_groups": _groups_json(self.read_groups), "orphan_mates": list(self.orphan_mates),
             "pair_problems": [p.to_json() for p in self.pair_problems], "samplesheet": self.samplesheet,
             "validated_at": self.validated_at, "gates": _gates_json(self.gates)}, run_id=self.run_id)

    @classmethod
    def from_json(cls, data: JsonDict) -> Validation:
        return cls(sample_id=data["sample_id"], validation_mode=data.get("validation_mode", "default"),
                   files=tuple(ValidatedFile.from_json(f) for f in data["files"]),
                   warnings=list(data.get("warnings") or []),
                   read_groups=_groups(data.get("read_groups") or []),
                   orphan_mates=tuple(data.get("orphan_mates") or ()),
                   pair_problems=tuple(PairProblem(**p) for p in data.get("pair_problems") or ()),
                   samplesheet=data.get("samplesheet"), validated_at=data["validated_at"], gates=_gates(data),
                   run_id=data.get("run_id"))


# ---------------------------------------------------------------- qc_metrics: the QC summary

@dataclass(frozen=True, slots=True)
class QCFile:
    """One graded file: where its metrics are stored, and the profile's verdict (qc.profiles.grade).

    FASTQ entries carry the contamination screen (`contamination`: the result, or why it was not
    computed; `contamination_key` None when it was not)."""

    name: str
    format: str
    sha256: str
    metrics_key: str
    verdict: JsonDict
    contamination_key: str | None = None
    contamination: JsonDict | None = None

    @property
    def status(self) -> str:
        return str(self.verdict["status"])

    def to_json(self) -> JsonDict:
        data: JsonDict = {"name": self.name, "format": self.format, "sha256": self.sha256,
                          "metrics_key": self.metrics_key, "verdict": self.verdict}
        if self.contamination is not None:
            data.update(contamination_key=self.contamination_key, contamination=self.contamination)
        return data

    @classmethod
    def from_json(cls, data: JsonDict) -> QCFile:
        return cls(name=data["name"], format=data["format"], sha256=data["sha256"],
                   metrics_key=data["metrics_key"], verdict=data["verdict"],
                   contamination_key=data.get("contamination_key"), contamination=data.get("contamination"))


@dataclass(frozen=True, slots=True)
class QCSummary:
    """The sample's QC: the profile chosen for it (once, here; later gradings load it back with
    `graded_profile`), each file's verdict, read-pair figures, headline numbers and the two QC gates."""

    sample_id: str
    status: str
    profile: str
    profile_version: str
    profile_source: str
    profile_choice: str
    gates: tuple[GateOutcome, ...]
    headline: Headline
    reference_consistency: JsonDict  # qc.reference_match.sample_verdict
    files: tuple[QCFile, ...]
    pairs: list[JsonDict]  # qc.pairs.pair_figures per read pair, with r1 and r2
    failing: list[JsonDict]  # verdict rows (qc.sample_qc.verdict_rows) of failing modules
    warnings: list[JsonDict]  # ... and of warning modules
    run_id: str
    # the genome the reference-consistency check compared uploads with (None: it compared none)
    reference_genome: ReferenceFile | None = None

    @property
    def profile_label(self) -> str:
        return f"{self.profile} v{self.profile_version}"

    def graded_profile(self) -> QCProfile:
        """The profile this sample was graded with, for a later grading (verdicts.stored_profile)."""
        return verdicts.stored_profile({"profile": self.profile, "profile_version": self.profile_version,
                                        "profile_choice": self.profile_choice})

    def to_json(self) -> JsonDict:
        return _with_present(
            {"sample_id": self.sample_id, "status": self.status, "profile": self.profile,
             "profile_version": self.profile_version, "profile_source": self.profile_source,
             "profile_choice": self.profile_choice, "gates": _gates_json(self.gates),
             "headline": self.headline.to_dict(), "reference_consistency": self.reference_consistency,
             "files": [f.to_json() for f in self.files], "pairs": self.pairs, "failing": self.failing,
             "warnings": self.warnings, "run_id": self.run_id},
            reference_genome=_reference_json(self.reference_genome))

    @classmethod
    def from_json(cls, data: JsonDict) -> QCSummary:
        return cls(sample_id=data["sample_id"], status=data["status"], profile=data["profile"],
                   profile_version=str(data["profile_version"]), profile_source=data.get("profile_source", ""),
                   profile_choice=data.get("profile_choice") or data["profile"], gates=_gates(data),
                   headline=Headline(**(data.get("headline") or {})),
                   reference_consistency=data.get("reference_consistency") or {},
                   files=tuple(QCFile.from_json(f) for f in data.get("files") or ()),
                   pairs=list(data.get("pairs") or []), failing=list(data.get("failing") or []),
                   warnings=list(data.get("warnings") or []), run_id=data.get("run_id", ""),
                   reference_genome=_reference(data.get("reference_genome")))


# ---------------------------------------------------------------- aligned_reads and variant_calls: manifests

@dataclass(frozen=True, slots=True)
class AlignmentManifest:
    """The sample's aligned BAM (`bam_key` None when there was nothing to align), how it was made
    (`source`: aligned, "uploaded bam", none), its metrics and the alignment gate."""

    sample_id: str
    source: str
    bam_key: str | None
    index_key: str | None
    verdict: JsonDict  # qc.alignment_gate.grade_alignment
    gates: tuple[GateOutcome, ...]
    reference_sha256: str | None = None
    targets: JsonDict | None = None  # sample_targets' record; `regions_key` when calling is restricted
    metrics: JsonDict | None = None  # qc.alignment.alignment_metrics
    read_groups: tuple[ReadGroup, ...] | None = None  # aligned from these
    aligner: list[JsonDict] | None = None  # per read group, the aligner's stats
    uploaded: str | None = None  # passed through from this uploaded file
    reference_genome: ReferenceFile | None = None  # the genome aligned against (None: nothing was aligned)
    run_id: str | None = None  # the run that aligned (absent in JSON stored before it was recorded)

    @property
    def regions_key(self) -> str | None:
        return (self.targets or {}).get("regions_key")

    def to_json(self) -> JsonDict:
        return _with_present(
            {"sample_id": self.sample_id, "source": self.source, "bam_key": self.bam_key,
             "index_key": self.index_key, "verdict": self.verdict, "gates": _gates_json(self.gates)},
            reference_sha256=self.reference_sha256, targets=self.targets, metrics=self.metrics,
            read_groups=None if self.read_groups is None else _groups_json(self.read_groups),
            aligner=self.aligner, uploaded=self.uploaded, reference_genome=_reference_json(self.reference_genome),
            run_id=self.run_id)

    @classmethod
    def from_json(cls, data: JsonDict) -> AlignmentManifest:
        groups = data.get("read_groups")
        return cls(sample_id=data["sample_id"], source=data["source"], bam_key=data.get("bam_key"),
                   index_key=data.get("index_key"), verdict=data.get("verdict") or {}, gates=_gates(data),
                   reference_sha256=data.get("reference_sha256"), targets=data.get("targets"),
                   metrics=data.get("metrics"),
                   read_groups=None if groups is None else _groups(groups),
                   aligner=data.get("aligner"), uploaded=data.get("uploaded"),
                   reference_genome=_reference(data.get("reference_genome")), run_id=data.get("run_id"))


@dataclass(frozen=True, slots=True)
class CallSetManifest:
    """The sample's call set (`vcf_key` None when nothing was called), bgzipped and indexed, and the caller's
    or normaliser's stats."""

    sample_id: str
    source: str  # called | uploaded vcf | none
    vcf_key: str | None
    index_key: str | None
    uploaded: str | None = None
    stats: JsonDict | None = None
    run_id: str | None = None  # the run that called (absent in JSON stored before it was recorded)

    def to_json(self) -> JsonDict:
        return _with_present({"sample_id": self.sample_id, "source": self.source, "vcf_key": self.vcf_key,
                              "index_key": self.index_key}, uploaded=self.uploaded, stats=self.stats,
                             run_id=self.run_id)

    @classmethod
    def from_json(cls, data: JsonDict) -> CallSetManifest:
        return cls(sample_id=data["sample_id"], source=data["source"], vcf_key=data.get("vcf_key"),
                   index_key=data.get("index_key"), uploaded=data.get("uploaded"), stats=data.get("stats"),
                   run_id=data.get("run_id"))


@dataclass(frozen=True, slots=True)
class VariantResults:
    """The annotated table's counts (variants.annotate.summarise_variants, with `source`), the call set's
    bcftools-stats metrics (qc.variants.vcf_metrics), its profile verdict and the call-set gate."""

    summary: JsonDict
    vcf_metrics: JsonDict
    verdict: JsonDict
    gates: tuple[GateOutcome, ...]
    # the files the table was annotated with (`NOT_USED` when not configured); None in JSON stored before
    annotation: ReferenceFile | None = None
    known_sites: ReferenceFile | None = None
    run_id: str | None = None

    def to_json(self) -> JsonDict:
        return _with_present({"summary": self.summary, "vcf_metrics": self.vcf_metrics, "verdict": self.verdict,
                              "gates": _gates_json(self.gates)}, annotation=_reference_json(self.annotation),
                             known_sites=_reference_json(self.known_sites), run_id=self.run_id)

    @classmethod
    def from_json(cls, data: JsonDict) -> VariantResults:
        return cls(summary=data.get("summary") or {}, vcf_metrics=data.get("vcf_metrics") or {},
                   verdict=data.get("verdict") or {}, gates=_gates(data),
                   annotation=_reference(data.get("annotation")), known_sites=_reference(data.get("known_sites")),
                   run_id=data.get("run_id"))


# ---------------------------------------------------------------- reading and writing them

def write_inventory(storage: Storage, inventory: Inventory) -> ObjectInfo:
    return write_json(storage, zones.inventory_key(inventory.sample_id), inventory.to_json())


def read_inventory(storage: Storage, sample_id: str) -> Inventory:
    return Inventory.from_json(read_json(storage, zones.inventory_key(sample_id)))


def write_validation(storage: Storage, validation: Validation) -> ObjectInfo:
    return write_json(storage, zones.validation_key(validation.sample_id), validation.to_json())


def read_validation(storage: Storage, sample_id: str) -> Validation:
    return Validation.from_json(read_json(storage, zones.validation_key(sample_id)))


def write_qc_summary(storage: Storage, summary: QCSummary) -> ObjectInfo:
    return write_json(storage, zones.qc_summary_key(summary.sample_id), summary.to_json())


def read_qc_summary(storage: Storage, sample_id: str) -> QCSummary:
    return QCSummary.from_json(read_json(storage, zones.qc_summary_key(sample_id)))


def write_alignment(storage: Storage, manifest: AlignmentManifest) -> ObjectInfo:
    return write_json(storage, zones.aligned_manifest_key(manifest.sample_id), manifest.to_json())


def read_alignment(storage: Storage, sample_id: str) -> AlignmentManifest:
    return AlignmentManifest.from_json(read_json(storage, zones.aligned_manifest_key(sample_id)))


def write_calls(storage: Storage, manifest: CallSetManifest) -> ObjectInfo:
    return write_json(storage, zones.calls_manifest_key(manifest.sample_id), manifest.to_json())


def read_calls(storage: Storage, sample_id: str) -> CallSetManifest:
    return CallSetManifest.from_json(read_json(storage, zones.calls_manifest_key(sample_id)))


def write_variant_results(storage: Storage, sample_id: str, results: VariantResults) -> ObjectInfo:
    return write_json(storage, zones.variants_summary_key(sample_id), results.to_json())


def read_variant_results(storage: Storage, sample_id: str) -> VariantResults:
    return VariantResults.from_json(read_json(storage, zones.variants_summary_key(sample_id)))


# ---------------------------------------------------------------- everything a sample has stored

@dataclass(frozen=True, slots=True)
class FileMetrics:
    """A graded file with its stored metrics (`qc --json` fields)."""

    entry: QCFile
    metrics: JsonDict

    @property
    def format(self) -> str:
        return self.entry.format


@dataclass(frozen=True, slots=True, eq=False)
class SampleRecord:
    """Everything stored for a sample so far (None for a stage that has not run), and its verdict."""

    sample_id: str
    inventory: Inventory | None = None
    validation: Validation | None = None
    qc: QCSummary | None = None
    file_metrics: tuple[FileMetrics, ...] = ()
    aligned: AlignmentManifest | None = None
    calls: CallSetManifest | None = None
    variant_results: VariantResults | None = None
    variants: pd.DataFrame | None = field(default=None, repr=False)

    def gate_outcomes(self) -> list[GateOutcome]:
        """The gate outcomes each stage stored with its artifact, in pipeline order (never decided here)."""
        stages = (self.validation, self.qc, self.aligned, self.variant_results)
        order = list(verdicts.GATE_ASSETS)
        return sorted((g for stage in stages if stage is not None for g in stage.gates),
                      key=lambda g: order.index(g.gate))

    def verdict(self) -> verdicts.SampleVerdict:
        return verdicts.sample_verdict(self.gate_outcomes())

    def headline(self) -> Headline:
        """The sample's headline numbers (verdicts.headline_numbers) from its stored artifacts."""
        reads = [f.metrics for f in self.file_metrics if f.format == "fastq"]
        results = self.variant_results
        return verdicts.headline_numbers(reads, self.aligned.metrics if self.aligned else None,
                                         results.vcf_metrics if results else None,
                                         results.summary if results else None)


def read_sample(storage: Storage, sample_id: str, *, variants: bool = True) -> SampleRecord:
    """Read back everything stored for a sample so far (a stage that has not run is None); the variants table
    (the largest artifact) only when `variants`."""

    def maybe(key: str) -> Any:
        return read_json(storage, key) if storage.exists(key) else None

    def record(cls: Any, key: str) -> Any:
        data = maybe(key)
        return None if data is None else cls.from_json(data)

    qc: QCSummary | None = record(QCSummary, zones.qc_summary_key(sample_id))
    file_metrics = tuple(FileMetrics(entry, maybe(entry.metrics_key) or {}) for entry in (qc.files if qc else ()))
    table = zones.variants_table_key(sample_id)
    return SampleRecord(
        sample_id=sample_id,
        inventory=record(Inventory, zones.inventory_key(sample_id)),
        validation=record(Validation, zones.validation_key(sample_id)),
        qc=qc,
        file_metrics=file_metrics,
        aligned=record(AlignmentManifest, zones.aligned_manifest_key(sample_id)),
        calls=record(CallSetManifest, zones.calls_manifest_key(sample_id)),
        variant_results=record(VariantResults, zones.variants_summary_key(sample_id)),
        variants=read_parquet(storage, table) if variants and storage.exists(table) else None,
    )
