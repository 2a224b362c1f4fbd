"""QC: metrics for every valid input file, graded against the sample's QC profile.

Metrics are stored per file content (`metrics/<sha256>.json`), so re-grading a
sample under another profile reads them back instead of recomputing them. The
contamination screen of FASTQ inputs is stored beside them, keyed by the file
and by the references and parameters it used (`contamination-...json`), so a
new contaminant list re-screens without recomputing the other metrics.
"""

import dataclasses
import hashlib
import json
from typing import Any

import dagster as dg

from genoflow_dagster import settings, verdicts, zones
from genoflow_dagster.assets.artifacts import (
    gate_check_result,
    read_json,
    reference_file,
    report_metadata,
    write_json,
    write_parquet,
    write_report_if_stopped,
)
from genoflow_dagster.assets.metadata import HEADLINE_LABELS, code_version, count, labelled, number, present, table
from genoflow_dagster.assets.transient import retry_storage_outages
from genoflow_dagster.partitions import samples_partitions
from genoflow_dagster.progress import Progress
from genoflow_dagster.qc import compute_metrics
from genoflow_dagster.qc.contamination import (
    DEFAULT_SAMPLE_READS,
    METHOD_VERSION,
    PRESET,
    ScreenReference,
    cached_screen_index,
    reference_name,
    screen_contamination,
)
from genoflow_dagster.qc.reference_match import (
    FAIL,
    ReferenceContigs,
    alignment_contigs,
    match_contigs,
    sample_verdict,
    vcf_contigs,
)
from genoflow_dagster.qc.sample_qc import METRICS_VERSION, MeasuredFile, key_numbers, summarise, unreadable_match
from genoflow_dagster.references import indexed_reference
from genoflow_dagster.reports.render import metadata_plots
from genoflow_dagster.resources.reference import ReferenceData
from genoflow_dagster.resources.storage import Storage
from genoflow_dagster.sample_record import ReferenceFile, ValidatedFile, read_validation, write_qc_summary
from genoflow_dagster.samples import ALIGNMENT_FORMATS, VARIANT_FORMATS, ReadGroup

QC = "qc"
CHECK_WITHIN_PROFILE = verdicts.QC_WITHIN_PROFILE
CHECK_REFERENCE = verdicts.REFERENCE_CONSISTENT


class QCConfig(dg.Config):
    profile: str | None = None  # a shipped profile (standard, strict, exome, panel, amplicon) or a YAML path
    # reads taken from the start of each R1 for the contamination screen (when contaminants are configured)
    contamination_sample_reads: int = DEFAULT_SAMPLE_READS


@dg.asset(
    group_name=QC,
    partitions_def=samples_partitions,
    deps=["validated_files"],
    kinds={"python"},
    code_version=code_version(f"metrics{METRICS_VERSION}", f"contamination{METHOD_VERSION}"),
    description="FastQC/samtools/bcftools-equivalent metrics per valid file, graded by the QC profile.",
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_WITHIN_PROFILE,
            asset="qc_metrics",
            blocking=True,
            partitions_def=samples_partitions,  # one result per sample in the UI, not the last run's
            description="No QC module fails the sample's profile (warnings are shown, they do not block).",
        ),
        dg.AssetCheckSpec(
            CHECK_REFERENCE,
            asset="qc_metrics",
            blocking=True,
            partitions_def=samples_partitions,
            description="Every uploaded BAM/CRAM/SAM/VCF names the configured reference's contigs (names, "
            "lengths, M5): a file made against another reference stops before alignment and calling.",
        ),
    ],
)
@retry_storage_outages
def qc_metrics(
    context: dg.AssetExecutionContext,
    config: QCConfig,
    storage: Storage,
    reference: ReferenceData,
):
    sample_id = zones.validate_sample_id(context.partition_key)
    validation = read_validation(storage, sample_id)
    # the one place a sample's profile is chosen; aligned_reads and variant_results read it from qc.json
    choice, profile = verdicts.choose_profile(config.profile, validation.samplesheet, settings.default_qc_profile())
    reference_check, genome = reference_consistency(context, storage, sample_id, reference, validation.files)
    off_reference = {m["file"] for m in reference_check["files"] if m["status"] == FAIL}
    screen = _Screen(reference, config.contamination_sample_reads, validation.read_groups)
    measured, reused = _measure(context, storage, sample_id, reference, screen, validation.files, off_reference)
    qc = summarise(sample_id, measured, read_groups=validation.read_groups, choice=choice, profile=profile,
                   reference_check=reference_check, run_id=context.run.run_id)
    obj = write_qc_summary(storage, dataclasses.replace(qc.summary, reference_genome=genome))
    write_parquet(storage, zones.verdict_table_key(sample_id), qc.verdict_frame())
    context.log.info(f"QC {qc.summary.status} under profile {choice.label} (from {choice.source}; "
                     f"{reused} file(s) reused)")
    report = write_report_if_stopped(context, storage, sample_id, list(qc.summary.gates))
    by_format = [(f.format, f.metrics) for f in measured]
    yield dg.MaterializeResult(
        metadata=present({
            "status": qc.summary.status,
            "profile": f"{profile.name} v{profile.version}",
            "profile_source": choice.source,
            "files_graded": len(measured),
            "metrics_reused": reused,
            "qc_uri": dg.MetadataValue.path(storage.uri(obj.key)),
            **labelled(key_numbers(qc.summary.headline, by_format), HEADLINE_LABELS),
            **contamination_metadata([f.to_json() for f in qc.summary.files]),
            **pair_metadata(qc.summary.pairs),
            **plot_metadata(by_format),
            **report_metadata(report),
            "modules": table(qc.verdict_rows, MODULE_COLUMNS),
        })
    )
    for gate in qc.summary.gates:  # emitted from the stored outcomes, never decided again here
        yield gate_check_result(gate)


def _measure(context: dg.AssetExecutionContext, storage: Storage, sample_id: str, reference: ReferenceData,
             screen: "_Screen", files: tuple[ValidatedFile, ...],
             off_reference: set[str]) -> tuple[list[MeasuredFile], int]:
    """Each valid file's metrics (read back when stored for this content, else computed and stored) and its
    contamination screen; returns them and how many were read back."""
    ref_fasta = reference.fasta_path or None
    known_sites = reference.known_sites()
    measured: list[MeasuredFile] = []
    reused = 0
    for row in files:
        if not row.valid:
            continue
        if row.format == "cram" and row.path in off_reference:
            context.log.warning(f"{row.path}: no metrics, a CRAM decodes only against its own reference")
            continue
        assert row.sha256 is not None and row.raw_key is not None and row.format is not None
        key = zones.metrics_key(sample_id, row.sha256, METRICS_VERSION)
        if storage.exists(key):
            metrics = read_json(storage, key)
            reused += 1
        else:
            with (storage.local_path(row.raw_key) as path,
                  Progress.for_file(f"{row.format} QC of {row.path}", path, context.log.info) as progress):
                context.log.info(f"computing {row.format} metrics for {row.path}")
                metrics = compute_metrics(path, row.format, quality_offset=row.quality_offset,
                                          reference_fasta=ref_fasta,
                                          known_sites=str(known_sites) if known_sites else None, progress=progress)
            write_json(storage, key, metrics)
        screened: tuple[str | None, dict[str, Any] | None] = (
            screen.result(context, storage, sample_id, row) if row.format == "fastq" else (None, None))
        measured.append(MeasuredFile(row.path, row.format, row.sha256, key, metrics, *screened))
    return measured, reused


def reference_consistency(context: dg.AssetExecutionContext, storage: Storage, sample_id: str,
                          reference: ReferenceData,
                          rows: tuple[ValidatedFile, ...]) -> tuple[dict[str, Any], ReferenceFile | None]:
    """The sample's reference-consistency verdict (qc/reference_match.py), decided once and stored in qc.json,
    and the identity of the genome it compared with (None when there was nothing to compare).

    Each uploaded alignment or call set is compared with the configured reference; the comparison is
    cached per (file, reference) content, so a re-run does not download the file again.
    """
    try:
        fasta = reference.fasta()
    except FileNotFoundError:
        return sample_verdict([], reference=None, not_graded_reason=f"no reference FASTA at "
                              f"{reference.fasta_path or '(unset)'} (GENOFLOW_REFERENCE_FASTA)"), None
    compared = [r for r in rows if r.valid and r.format in ALIGNMENT_FORMATS | VARIANT_FORMATS]
    if not compared:
        return sample_verdict([], reference=fasta.name), None
    ref = indexed_reference(fasta)
    contigs = ReferenceContigs.from_fasta(ref.fasta, name=fasta.name)
    matches = []
    for row in compared:
        assert row.sha256 is not None and row.raw_key is not None
        key = zones.reference_match_key(sample_id, row.sha256, ref.sha256)
        if storage.exists(key):
            matches.append(read_json(storage, key))
            continue
        with storage.local_path(row.raw_key) as path:
            try:
                found = alignment_contigs(path) if row.format in ALIGNMENT_FORMATS else vcf_contigs(path)
                match = match_contigs(found, contigs, file=row.path).to_dict()
            except ValueError as exc:
                match = unreadable_match(row.path, str(exc))
        write_json(storage, key, match)
        context.log.info(match["message"])
        matches.append(match)
    return sample_verdict(matches, reference=contigs.label), reference_file(fasta, ref.sha256)


class _Screen:
    """The contamination screen for one qc_metrics run: references prepared once, results cached per file.

    Not configured (no contaminants) means not computed: the file's entry says
    so and the profile's contamination floor is not graded. Paired-end samples
    are screened on R1 (see qc/contamination.py); R2 names its mate instead.
    """

    def __init__(self, reference: ReferenceData, sample_reads: int, read_groups: tuple[ReadGroup, ...]):
        self.reference = reference
        self.sample_reads = sample_reads
        self.contaminants = reference.contaminants()  # raises for a configured path that is missing
        self.mate_of = {g.r2: g.r1 for g in read_groups if g.r2}
        self._refs: list[ScreenReference] | None = None
        self._digest = ""

    def _prepare(self) -> None:
        if self._refs is not None:
            return
        target = indexed_reference(self.reference.fasta())
        refs = [ScreenReference(name=reference_name(self.reference.fasta()), fasta=self.reference.fasta(),
                                sha256=target.sha256, index=target.mmi)]
        cache = settings.reference_cache_dir()
        refs += [cached_screen_index(path, cache) for path in self.contaminants]
        self._refs = refs
        identity = {"references": [(r.name, r.sha256) for r in refs], "sample_reads": self.sample_reads,
                    "preset": PRESET}
        self._digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def result(self, context: dg.AssetExecutionContext, storage: Storage, sample_id: str,
               row: ValidatedFile) -> tuple[str | None, dict[str, Any]]:
        if not self.contaminants:
            return None, {"computed": False, "reason": "not configured"}
        if row.path in self.mate_of:
            return None, {"computed": False, "reason": f"screened on its mate {self.mate_of[row.path]}"}
        self._prepare()
        assert self._refs is not None
        assert row.sha256 is not None and row.raw_key is not None
        key = zones.contamination_key(sample_id, row.sha256, METHOD_VERSION, self._digest)
        if storage.exists(key):
            return key, read_json(storage, key)
        with (storage.local_path(row.raw_key) as path,
              Progress(f"contamination screen of {row.path}", self.sample_reads, context.log.info,
                       unit="reads") as progress):
            result = screen_contamination(path, self._refs[0], self._refs[1:], sample_reads=self.sample_reads,
                                          progress=progress)
        result = {"computed": True, **result}
        write_json(storage, key, result)
        context.log.info(
            f"contamination screen of {row.path}: {result['contamination_percent']}% of "
            f"{result['reads_sampled']:,} reads map better to {', '.join(r.name for r in self._refs[1:])} "
            f"({result['seconds']:.2f} s)"
        )
        return key, result


MODULE_COLUMNS = [("file", "string"), ("module", "string"), ("status", "string"), ("value", "float"),
                  ("warn", "float"), ("fail", "float"), ("message", "string")]
PAIR_COLUMNS = [("r1", "string"), ("r2", "string"), ("pairs", "int"), ("read_counts_match", "bool"),
                ("q30_percent", "float"), ("q30_drop_r1_to_r2", "float"), ("gc_difference_r1_r2", "float")]


def pair_metadata(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    if not pairs:
        return {}
    return {"read_pairs": table(pairs, PAIR_COLUMNS)}


def plot_metadata(headline: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Plots of the sample's first file of each plottable format (R1 for reads), as markdown images."""
    plots: dict[str, Any] = {}
    for fmt, metrics in headline:
        name = f"{fmt}_plots"
        if name not in plots:
            markdown = metadata_plots(fmt, metrics)
            if markdown:
                plots[name] = dg.MetadataValue.md(markdown)
    return plots


def contamination_metadata(files: list[dict[str, Any]]) -> dict[str, Any]:
    """The screen as metadata: the first screened file's percent (a float the UI plots) and a table."""
    screened = [f for f in files if (f.get("contamination") or {}).get("computed")]
    if not screened:
        reasons = {(f.get("contamination") or {}).get("reason") for f in files if f.get("contamination")}
        return {"contamination": ", ".join(sorted(r for r in reasons if r)) or "no FASTQ input"} if reasons else {}
    rows = []
    for f in screened:
        c = f["contamination"]
        for ref in c["references"]:
            rows.append({"file": f["name"], "reference": ref["name"], "role": ref["role"],
                         "reads_best_hit": ref["reads_best_hit"], "percent": ref["percent"],
                         "sha256": ref["sha256"][:12]})
        rows.append({"file": f["name"], "reference": "(unmapped)", "role": "", "reads_best_hit":
                     c["classification"]["unmapped"], "percent": c["unmapped_percent"], "sha256": ""})
    first = screened[0]["contamination"]
    metadata: dict[str, Any] = {
        "contamination": table(rows, [("file", "string"), ("reference", "string"), ("role", "string"),
                                      ("reads_best_hit", "int"), ("percent", "float"), ("sha256", "string")]),
        "contamination_references": ", ".join(r["name"] for r in first["references"] if r["role"] == "contaminant"),
        "contamination_reads_sampled": count(first["reads_sampled"]),
        "contamination_seconds": number(first["seconds"]),
    }
    if first["contamination_percent"] is not None:  # key kept: the UI plots it over materializations (%)
        metadata["fastq_contamination_percent"] = float(first["contamination_percent"])
    return metadata
