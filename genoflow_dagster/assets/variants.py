"""Variants: reads aligned to the reference, variants called, then annotated into a table.

Each asset writes its artifacts under `processed/<sample>/<asset>/` plus a
`manifest.json` naming them; the next asset reads the manifest, never a pickle.
A sample with nothing to align (a VCF upload) passes through with `source: none`.
"""


import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pysam

from genoflow_dagster import settings, verdicts, zones
from genoflow_dagster.assets.artifacts import (
    frame_rows,
    gate_check_result,
    reference_file,
    report_metadata,
    scratch_dir,
    write_parquet,
    write_report_if_stopped,
)
from genoflow_dagster.assets.metadata import code_version, count, labelled, number, present, table
from genoflow_dagster.assets.transient import retry_storage_outages
from genoflow_dagster.partitions import samples_partitions
from genoflow_dagster.qc.alignment import alignment_metrics
from genoflow_dagster.qc.alignment_gate import grade_alignment
from genoflow_dagster.qc.reference_match import reference_label
from genoflow_dagster.qc.variants import vcf_metrics
from genoflow_dagster.references import IndexedReference, indexed_reference
from genoflow_dagster.reports.render import metadata_plots
from genoflow_dagster.resources.compute import Compute
from genoflow_dagster.resources.reference import ReferenceData
from genoflow_dagster.resources.storage import Storage
from genoflow_dagster.sample_record import (
    AlignmentManifest,
    CallSetManifest,
    ReferenceFile,
    ValidatedFile,
    VariantResults,
    read_alignment,
    read_calls,
    read_qc_summary,
    read_validation,
    write_alignment,
    write_calls,
    write_variant_results,
)
from genoflow_dagster.sample_targets import sample_targets
from genoflow_dagster.samples import ALIGNMENT_FORMATS, VARIANT_FORMATS, ReadGroup
from genoflow_dagster.variants.annotate import annotate_variants, empty_variants, summarise_variants
from genoflow_dagster.variants.call import normalise_vcf

VARIANTS = "variants"
CHECK_CALLSET = verdicts.CALLSET_WITHIN_PROFILE
CHECK_ALIGNED = verdicts.ALIGNMENT_WITHIN_PROFILE
# the aligned BAM's figures in the asset's metadata: (label with unit, count | number)
_ALIGNMENT_METADATA = {
    "total": ("alignment records", "count"),
    "mapped_percent": ("mapped (%)", "number"),
    "properly_paired_percent": ("properly paired (%)", "number"),
    "mean_depth": ("mean depth (x)", "number"),
    "mean_mapq": ("mean mapping quality (MAPQ)", "number"),
    "breadth_10x": ("reference at >= 10x (%)", "number"),
    "on_target_reads_percent": ("reads on target (%)", "number"),
    "target_mean_depth": ("mean target depth (x)", "number"),
    "target_breadth_20x": ("target bases at >= 20x (%)", "number"),
    "amplicons_below_floor": ("amplicons below the depth floor", "count"),
}
_VARIANT_PREVIEW_COLUMNS = [("chrom", "string"), ("pos", "int"), ("ref", "string"), ("alt", "string"),
                            ("variant_type", "string"), ("genotype", "string"), ("gene", "string"),
                            ("known", "bool")]


def _put_with_index(storage: Storage, local: Path, key: str) -> tuple[str, str | None]:
    """Upload a BAM/VCF and whichever index sits beside it (.bai/.csi/.tbi); returns (key, index key)."""
    storage.put_file(local, key)
    for suffix in (".bai", ".csi", ".tbi", ".crai"):
        index = Path(str(local) + suffix)
        if index.is_file():
            storage.put_file(index, key + suffix)
            return key, key + suffix
    return key, None


class AlignedReadsConfig(dg.Config):
    # a targets BED for this run (exome/panel targets, amplicon or primer scheme); else the sample's
    # samplesheet `targets`, else GENOFLOW_TARGETS (see sample_targets.py)
    targets: str | None = None


@dg.asset(
    group_name=VARIANTS,
    partitions_def=samples_partitions,
    deps=["qc_metrics", "reference_genome"],
    kinds={"python", "bam"},
    code_version=code_version(),
    pool="compute",
    description="Reads aligned with minimap2 (mappy, short-read preset): coordinate-sorted, indexed BAM. "
    "An uploaded BAM/SAM/CRAM is sorted and indexed and passes through.",
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_ALIGNED,
            asset="aligned_reads",
            blocking=True,
            partitions_def=samples_partitions,  # one result per sample in the UI
            description="The aligned BAM meets the alignment floors of the sample's QC profile (mapped %, "
            "properly paired %, depth), graded like an uploaded BAM; a failed floor stops calling.",
        )
    ],
)
@retry_storage_outages
def aligned_reads(context: dg.AssetExecutionContext, config: AlignedReadsConfig, storage: Storage,
                  reference: ReferenceData, compute: Compute) -> dg.MaterializeResult:
    sample_id = zones.validate_sample_id(context.partition_key)
    validation = read_validation(storage, sample_id)
    valid = validation.valid_files
    uploaded = [f for f in valid.values() if f.format in ALIGNMENT_FORMATS]
    manifest = AlignmentManifest(sample_id=sample_id, source="none", bam_key=None, index_key=None, verdict={},
                                 gates=())
    ref_name = ""
    if validation.read_groups or uploaded:
        ref = indexed_reference(reference.fasta())
        ref_name = reference_label(ref.contigs, reference.fasta().name)
        manifest = _align(context, storage, compute, config, reference, ref, validation.read_groups, uploaded,
                          validation.samplesheet, valid)
    else:
        context.log.info("no reads or alignments among the valid files; nothing to align")
    # graded with the profile qc_metrics chose and stored (never chosen twice)
    verdict = grade_alignment(manifest.metrics, read_qc_summary(storage, sample_id).graded_profile(),
                              reference=ref_name)
    gate = verdicts.alignment_within_profile(verdict)
    manifest = dataclasses.replace(manifest, verdict=verdict, gates=(gate,), run_id=context.run.run_id)
    write_alignment(storage, manifest)
    report = write_report_if_stopped(context, storage, sample_id, [gate])
    metadata = _alignment_metadata(storage, manifest) if manifest.bam_key else {}
    return dg.MaterializeResult(
        metadata=present({"source": manifest.source, "gate": gate.status, **metadata, **report_metadata(report)}),
        check_results=[gate_check_result(gate)])


def _align(context: dg.AssetExecutionContext, storage: Storage, compute: Compute, config: AlignedReadsConfig,
           reference: ReferenceData, ref: IndexedReference, groups: tuple[ReadGroup, ...],
           uploaded: list[ValidatedFile], sheet_row: dict[str, Any] | None,
           valid: dict[str, ValidatedFile]) -> AlignmentManifest:
    """The sample's reads aligned (or its uploaded alignment sorted and indexed), stored with their index and
    measured (within the targets, when the sample has some); the manifest before its grading."""
    sample_id = zones.validate_sample_id(context.partition_key)
    bam_key = zones.aligned_bam_key(sample_id)
    with scratch_dir("align", sample_id=sample_id, run_id=context.run.run_id) as tmp, sample_targets(
            storage, run_config=config.targets, sheet_row=sheet_row, valid={n: f.to_json() for n, f in valid.items()},
            configured=reference.targets(), tmp=tmp) as targets:
        out = tmp / f"{sample_id}.bam"
        if groups:
            aligner = _align_groups(context, storage, compute, groups, valid, ref, out, tmp, sample_id)
            how: dict[str, Any] = {"source": "aligned", "read_groups": groups, "aligner": aligner}
        else:
            how = {"source": f"uploaded {uploaded[0].format}", "uploaded": _pass_through(context, storage,
                                                                                          uploaded[0], ref, out)}
        stored, index_key = _put_with_index(storage, out, bam_key)
        metrics = alignment_metrics(out, reference_fasta=str(ref.fasta), targets_bed=targets.targets)
        if targets.regions_bed is not None:  # the regions variant_calls restricts calling to
            targets.record["regions_key"] = storage.put_file(targets.regions_bed,
                                                             zones.targets_bed_key(sample_id)).key
        return AlignmentManifest(sample_id=sample_id, bam_key=stored, index_key=index_key, verdict={}, gates=(),
                                 reference_sha256=ref.sha256, targets=targets.record, metrics=metrics,
                                 reference_genome=reference_file(reference.fasta(), ref.sha256), **how)


def _alignment_metadata(storage: Storage, manifest: AlignmentManifest) -> dict[str, Any]:
    metrics = manifest.metrics or {}
    assert manifest.bam_key is not None
    genome = manifest.reference_genome
    metadata: dict[str, Any] = {
        "bam_uri": dg.MetadataValue.path(storage.uri(manifest.bam_key)),
        "reference_genome": _identity(genome) if genome else None,
        **labelled({name: metrics.get(name) for name in _ALIGNMENT_METADATA}, _ALIGNMENT_METADATA),
        "targets": (manifest.targets or {}).get("name"),
    }
    plots = metadata_plots("bam", metrics)
    if plots:
        metadata["plots"] = dg.MetadataValue.md(plots)
    return metadata


def _align_groups(context: dg.AssetExecutionContext, storage: Storage, compute: Compute,
                  groups: tuple[ReadGroup, ...], valid: dict[str, ValidatedFile], ref: IndexedReference, out: Path,
                  tmp: Path, sample_id: str) -> list[dict[str, Any]]:
    parts: list[Path] = []
    stats: list[dict[str, Any]] = []
    for part_number, group in enumerate(groups):
        part = out if len(groups) == 1 else tmp / f"part{part_number}.bam"
        with contextlib.ExitStack() as stack:
            r1 = stack.enter_context(storage.local_path(_raw_key(valid[group.r1])))
            r2 = stack.enter_context(storage.local_path(_raw_key(valid[group.r2]))) if group.r2 else None
            context.log.info(f"aligning {group.r1}" + (f" + {group.r2}" if group.r2 else " (single-end)"))
            stats.append(compute.run(context, "align_reads", reference=ref.mmi, r1=r1, r2=r2, out_bam=part,
                                     sample_id=sample_id, reference_fasta=ref.fasta,
                                     threads=settings.compute_threads()))
        parts.append(part)
    if len(parts) > 1:
        pysam.merge("-f", "-o", str(out), *[str(p) for p in parts], catch_stdout=False)
        pysam.index(str(out))
    return stats


def _pass_through(context: dg.AssetExecutionContext, storage: Storage, upload: ValidatedFile,
                  ref: IndexedReference, out: Path) -> str:
    context.log.info(f"passing through uploaded {upload.format} {upload.path} (sort + index)")
    with storage.local_path(_raw_key(upload)) as path:
        pysam.sort("-o", str(out), "-O", "bam", "--reference", str(ref.fasta), str(path), catch_stdout=False)
    pysam.index(str(out))
    return upload.path


def _raw_key(file: ValidatedFile) -> str:
    assert file.raw_key is not None  # a valid file always has its raw copy
    return file.raw_key


@dg.asset(
    group_name=VARIANTS,
    partitions_def=samples_partitions,
    deps=["aligned_reads"],
    kinds={"python", "vcf"},
    code_version=code_version(),
    pool="compute",
    description="Variant calls: bcftools mpileup + call on the aligned reads (or the uploaded VCF), "
    "normalised, bgzipped and indexed.",
)
@retry_storage_outages
def variant_calls(context: dg.AssetExecutionContext, storage: Storage,
                  reference: ReferenceData, compute: Compute) -> dg.MaterializeResult:
    sample_id = zones.validate_sample_id(context.partition_key)
    aligned = read_alignment(storage, sample_id)
    vcfs = [f for f in read_validation(storage, sample_id).valid_files.values() if f.format in VARIANT_FORMATS]
    manifest = CallSetManifest(sample_id=sample_id, source="none", vcf_key=None, index_key=None,
                               run_id=context.run.run_id)
    started = time.monotonic()
    with scratch_dir("call", sample_id=sample_id, run_id=context.run.run_id) as tmp:
        out = tmp / f"{sample_id}.vcf.gz"
        stats: dict[str, Any] = {}
        if aligned.bam_key:
            stats = _call(context, storage, reference, compute, aligned, out)
            manifest = dataclasses.replace(manifest, source="called")
        elif vcfs:
            upload = vcfs[0]
            with storage.local_path(_raw_key(upload)) as path:
                context.log.info(f"normalising uploaded VCF {upload.path}")
                stats = normalise_vcf(path, out, reference_fasta=_reference_if_present(reference))
            manifest = dataclasses.replace(manifest, source="uploaded vcf", uploaded=upload.path)
        if out.is_file():
            vcf_key, index_key = _put_with_index(storage, out, zones.calls_vcf_key(sample_id))
            manifest = dataclasses.replace(manifest, vcf_key=vcf_key, index_key=index_key, stats=stats)
    write_calls(storage, manifest)
    return dg.MaterializeResult(
        metadata=present(
            {
                "source": manifest.source,
                "records": count(stats.get("records")),
                "vcf_uri": dg.MetadataValue.path(storage.uri(manifest.vcf_key)) if manifest.vcf_key else None,
                "duration (s)": number(time.monotonic() - started),
            }
        )
    )


def _call(context: dg.AssetExecutionContext, storage: Storage, reference: ReferenceData, compute: Compute,
          aligned: AlignmentManifest, out: Path) -> dict[str, Any]:
    """bcftools mpileup | call on the aligned BAM, within the target regions when it has some."""
    assert aligned.bam_key is not None
    sample_id = aligned.sample_id
    ref = indexed_reference(reference.fasta())
    regions_key = aligned.regions_key
    with storage.local_path(aligned.bam_key, aligned.index_key) as bam, (
            storage.local_path(regions_key) if regions_key else contextlib.nullcontext()) as targets_bed:
        context.log.info("calling variants with bcftools mpileup | call"
                         + (f" within {(aligned.targets or {})['regions']} target regions" if targets_bed else ""))
        return compute.run(context, "call_variants", reference_fasta=ref.fasta, bam=bam,
                           out_vcf_gz=out, sample_id=sample_id, targets_bed=targets_bed,
                           threads=settings.compute_threads())


def _identity(ref: ReferenceFile | None) -> str | None:
    """A reference file in one line for the metadata: its path and the start of its SHA-256, or "not used"."""
    if ref is None:
        return None
    if not ref.used:
        return "not used"
    return f"{ref.source} (SHA-256 {(ref.sha256 or '')[:12]}...)"


def _reference_if_present(reference: ReferenceData) -> str | None:
    try:
        return str(indexed_reference(reference.fasta()).fasta)
    except FileNotFoundError:
        return None


@dg.asset(
    group_name=VARIANTS,
    partitions_def=samples_partitions,
    deps=["variant_calls", "gene_annotation", "known_sites"],
    kinds={"parquet"},
    code_version=code_version(),
    description="Annotated variant table (gene, known/novel, genotype, depth, quality) and its summary.",
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_CALLSET,
            asset="variant_results",
            partitions_def=samples_partitions,
            description="Ts/Tv, het/hom ratio and call rate lie within the profile's expected ranges.",
        )
    ],
)
@retry_storage_outages
def variant_results(context: dg.AssetExecutionContext, storage: Storage, reference: ReferenceData):
    """Graded with the profile qc_metrics chose and stored (one choice per sample: the run config of
    qc_metrics, the samplesheet, or the default), never one chosen here."""
    sample_id = zones.validate_sample_id(context.partition_key)
    calls = read_calls(storage, sample_id)
    annotation = reference.annotation()
    known = reference.known_sites()
    if calls.vcf_key:
        with storage.local_path(calls.vcf_key) as vcf:
            frame = annotate_variants(vcf, annotation_path=annotation, known_sites=known, sample_id=sample_id)
            metrics = vcf_metrics(vcf, known_sites=str(known) if known else None)
    else:
        frame, metrics = empty_variants(), {}
    summary = {**summarise_variants(frame), "source": calls.source}
    gate, callset_verdict = verdicts.callset_within_profile(
        metrics, read_qc_summary(storage, sample_id).graded_profile())
    headline = verdicts.headline_numbers(callset=metrics, variant_summary=summary)
    stored = write_parquet(storage, zones.variants_table_key(sample_id), frame)
    results = VariantResults(summary, metrics, callset_verdict, (gate,), annotation=reference_file(annotation),
                             known_sites=reference_file(known), run_id=context.run.run_id)
    write_variant_results(storage, sample_id, results)
    context.log.info(f"{len(frame)} variants, {summary.get('genes_hit', 0)} gene(s) hit; call set {gate.label}: "
                     f"{gate.summary}")
    yield dg.MaterializeResult(
        metadata=present(
            {
                "variants": len(frame),
                # the call set's bcftools-stats figures, as its gate grades them
                "ts_tv": number(headline.ts_tv),
                "het_hom_ratio": number(headline.het_hom_ratio),
                "call_rate": number(headline.call_rate, 4),
                "known": count(summary.get("known")),
                "novel": count(summary.get("novel")),
                "annotation": _identity(results.annotation),
                "known_sites": _identity(results.known_sites),
                "table_uri": dg.MetadataValue.path(storage.uri(stored.key)),
                "preview": table(frame_rows(frame.head(20)), _VARIANT_PREVIEW_COLUMNS),
            }
        )
    )
    yield gate_check_result(gate)
