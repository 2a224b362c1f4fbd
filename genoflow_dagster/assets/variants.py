"""Variants: reads aligned to the reference, variants called, then annotated into a table.

Each asset writes its artifacts under `processed/<sample>/<asset>/` plus a
`manifest.json` naming them; the next asset reads the manifest, never a pickle.
A sample with nothing to align (a VCF upload) passes through with `source: none`.
"""


import contextlib
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pysam

from genoflow_dagster import settings, verdicts, zones
from genoflow_dagster.assets.artifacts import (
    markdown_table,
    read_json,
    scratch_dir,
    write_json,
    write_parquet,
)
from genoflow_dagster.assets.ingestion import validation_key
from genoflow_dagster.assets.qc import gate_check_result, qc_metrics, summary_key, write_report_if_stopped
from genoflow_dagster.assets.reference import (
    gene_annotation,
    indexed_reference,
    known_sites,
    reference_genome,
)
from genoflow_dagster.assets.transient import retry_storage_outages
from genoflow_dagster.partitions import samples_partitions
from genoflow_dagster.qc.alignment import alignment_metrics
from genoflow_dagster.qc.alignment_gate import grade_alignment
from genoflow_dagster.qc.reference_match import reference_label
from genoflow_dagster.qc.variants import vcf_metrics
from genoflow_dagster.reports.render import metadata_plots
from genoflow_dagster.resources.compute import Compute
from genoflow_dagster.resources.reference import ReferenceData
from genoflow_dagster.resources.storage import Storage
from genoflow_dagster.sample_targets import sample_targets
from genoflow_dagster.samples import ALIGNMENT_FORMATS, VARIANT_FORMATS
from genoflow_dagster.variants.annotate import annotate_variants, summarise_variants
from genoflow_dagster.variants.call import normalise_vcf

VARIANTS = "variants"
CHECK_CALLSET = verdicts.CALLSET_WITHIN_PROFILE
CHECK_ALIGNED = verdicts.ALIGNMENT_WITHIN_PROFILE


def manifest_key(sample_id: str, stage: str) -> str:
    return zones.processed_key(sample_id, stage, "manifest.json")


def variants_table_key(sample_id: str) -> str:
    return zones.processed_key(sample_id, "variant_results", "variants.parquet")


def variants_summary_key(sample_id: str) -> str:
    return zones.processed_key(sample_id, "variant_results", "summary.json")


def _valid_files(storage: Storage, sample_id: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    validation = read_json(storage, validation_key(sample_id))
    return validation, {r["path"]: r for r in validation["files"] if r["valid"]}


def _put_with_index(storage: Storage, local: Path, key: str) -> dict[str, str | None]:
    """Upload a BAM/VCF and whichever index sits beside it (.bai/.csi/.tbi)."""
    storage.put_file(local, key)
    for suffix in (".bai", ".csi", ".tbi", ".crai"):
        index = Path(str(local) + suffix)
        if index.is_file():
            storage.put_file(index, key + suffix)
            return {"key": key, "index_key": key + suffix}
    return {"key": key, "index_key": None}


class AlignedReadsConfig(dg.Config):
    # a targets BED for this run (exome/panel targets, amplicon or primer scheme); else the sample's
    # samplesheet `targets`, else GENOFLOW_TARGETS (see sample_targets.py)
    targets: str | None = None


@dg.asset(
    group_name=VARIANTS,
    partitions_def=samples_partitions,
    deps=[qc_metrics, reference_genome],
    kinds={"python", "bam"},
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
    validation, valid = _valid_files(storage, sample_id)
    groups = validation.get("read_groups", [])
    uploaded = [r for r in valid.values() if r["format"] in ALIGNMENT_FORMATS]
    bam_key = zones.processed_key(sample_id, "aligned_reads", f"{sample_id}.bam")
    manifest: dict[str, Any] = {"sample_id": sample_id, "source": "none", "bam_key": None, "index_key": None}
    metadata: dict[str, Any] = {}
    ref_name = ""

    if groups or uploaded:
        ref = indexed_reference(reference.fasta())
        ref_name = reference_label(ref.contigs, reference.fasta().name)
        with scratch_dir("align", sample_id=sample_id, run_id=context.run.run_id) as tmp, sample_targets(
                storage, run_config=config.targets, sheet_row=validation.get("samplesheet"), valid=valid,
                configured=reference.targets(), tmp=tmp) as targets:
            out = tmp / f"{sample_id}.bam"
            if groups:
                manifest.update(_align_groups(context, storage, compute, groups, valid, ref, out, tmp, sample_id))
            else:
                manifest.update(_pass_through(context, storage, uploaded[0], ref, out))
            stored = _put_with_index(storage, out, bam_key)
            manifest.update(bam_key=stored["key"], index_key=stored["index_key"], reference_sha256=ref.sha256)
            metrics = alignment_metrics(out, reference_fasta=str(ref.fasta), targets_bed=targets.targets)
            if targets.regions_bed is not None:  # the regions variant_calls restricts calling to
                targets.record["regions_key"] = storage.put_file(
                    targets.regions_bed, zones.processed_key(sample_id, "aligned_reads", "targets.bed")).key
            manifest["targets"] = targets.record
        manifest["metrics"] = metrics
        metadata = {
            "bam_uri": dg.MetadataValue.path(storage.uri(bam_key)),
            "total": metrics.get("total"),
            "mapped_percent": metrics.get("mapped_percent"),
            "properly_paired_percent": metrics.get("properly_paired_percent"),
            "mean_depth": metrics.get("mean_depth"),
            "mean_mapq": metrics.get("mean_mapq"),
            "breadth_10x": metrics.get("breadth_10x"),
            "targets": manifest["targets"].get("name"),
            "on_target_reads_percent": metrics.get("on_target_reads_percent"),
            "target_mean_depth": metrics.get("target_mean_depth"),
            "target_breadth_20x": metrics.get("target_breadth_20x"),
            "amplicons_below_floor": metrics.get("amplicons_below_floor"),
        }
        plots = metadata_plots("bam", metrics)
        if plots:
            metadata["plots"] = dg.MetadataValue.md(plots)
    else:
        context.log.info("no reads or alignments among the valid files; nothing to align")
    # graded with the profile qc_metrics chose and stored (never chosen twice)
    profile = verdicts.stored_profile(read_json(storage, summary_key(sample_id)))
    verdict = grade_alignment(manifest.get("metrics"), profile, reference=ref_name)
    gate = verdicts.alignment_within_profile(verdict)
    manifest["verdict"] = verdict
    manifest["gates"] = [gate.to_dict()]
    write_json(storage, manifest_key(sample_id, "aligned_reads"), manifest)
    report_uri = write_report_if_stopped(context, storage, sample_id, [gate])
    if report_uri:
        metadata["report_uri"] = dg.MetadataValue.path(report_uri)
    return dg.MaterializeResult(metadata={"source": manifest["source"], "gate": gate.status, **_clean(metadata)},
                                check_results=[gate_check_result(gate)])


def _align_groups(context, storage, compute: Compute, groups, valid, ref, out: Path, tmp: Path,
                  sample_id: str) -> dict[str, Any]:
    parts: list[Path] = []
    stats: list[dict[str, Any]] = []
    for number, group in enumerate(groups):
        part = out if len(groups) == 1 else tmp / f"part{number}.bam"
        with contextlib.ExitStack() as stack:
            r1 = stack.enter_context(storage.local_path(valid[group["r1"]]["raw_key"]))
            r2 = stack.enter_context(storage.local_path(valid[group["r2"]]["raw_key"])) if group["r2"] else None
            context.log.info(f"aligning {group['r1']}" + (f" + {group['r2']}" if group["r2"] else " (single-end)"))
            stats.append(compute.run(context, "align_reads", reference=ref.mmi, r1=r1, r2=r2, out_bam=part,
                                     sample_id=sample_id, reference_fasta=ref.fasta,
                                     threads=settings.compute_threads()))
        parts.append(part)
    if len(parts) > 1:
        pysam.merge("-f", "-o", str(out), *[str(p) for p in parts], catch_stdout=False)
        pysam.index(str(out))
    return {"source": "aligned", "read_groups": groups, "aligner": stats}


def _pass_through(context, storage, upload: dict[str, Any], ref, out: Path) -> dict[str, Any]:
    context.log.info(f"passing through uploaded {upload['format']} {upload['path']} (sort + index)")
    with storage.local_path(upload["raw_key"]) as path:
        pysam.sort("-o", str(out), "-O", "bam", "--reference", str(ref.fasta), str(path), catch_stdout=False)
    pysam.index(str(out))
    return {"source": f"uploaded {upload['format']}", "uploaded": upload["path"]}


@dg.asset(
    group_name=VARIANTS,
    partitions_def=samples_partitions,
    deps=[aligned_reads],
    kinds={"python", "vcf"},
    pool="compute",
    description="Variant calls: bcftools mpileup + call on the aligned reads (or the uploaded VCF), "
    "normalised, bgzipped and indexed.",
)
@retry_storage_outages
def variant_calls(context: dg.AssetExecutionContext, storage: Storage,
                  reference: ReferenceData, compute: Compute) -> dg.MaterializeResult:
    sample_id = zones.validate_sample_id(context.partition_key)
    aligned = read_json(storage, manifest_key(sample_id, "aligned_reads"))
    _, valid = _valid_files(storage, sample_id)
    vcfs = [r for r in valid.values() if r["format"] in VARIANT_FORMATS]
    vcf_key = zones.processed_key(sample_id, "variant_calls", f"{sample_id}.vcf.gz")
    manifest: dict[str, Any] = {"sample_id": sample_id, "source": "none", "vcf_key": None, "index_key": None}
    stats: dict[str, Any] = {}
    started = time.monotonic()
    with scratch_dir("call", sample_id=sample_id, run_id=context.run.run_id) as tmp:
        out = tmp / f"{sample_id}.vcf.gz"
        if aligned.get("bam_key"):
            ref = indexed_reference(reference.fasta())
            regions_key = (aligned.get("targets") or {}).get("regions_key")
            with storage.local_path(aligned["bam_key"], aligned.get("index_key")) as bam, (
                    storage.local_path(regions_key) if regions_key else contextlib.nullcontext()) as targets_bed:
                context.log.info("calling variants with bcftools mpileup | call"
                                 + (f" within {aligned['targets']['regions']} target regions" if targets_bed else ""))
                stats = compute.run(context, "call_variants", reference_fasta=ref.fasta, bam=bam,
                                    out_vcf_gz=out, sample_id=sample_id, targets_bed=targets_bed,
                                    threads=settings.compute_threads())
            manifest["source"] = "called"
        elif vcfs:
            upload = vcfs[0]
            ref_fasta = _reference_if_present(reference)
            with storage.local_path(upload["raw_key"]) as path:
                context.log.info(f"normalising uploaded VCF {upload['path']}")
                stats = normalise_vcf(path, out, reference_fasta=ref_fasta)
            manifest.update(source="uploaded vcf", uploaded=upload["path"])
        if out.is_file():
            stored = _put_with_index(storage, out, vcf_key)
            manifest.update(vcf_key=stored["key"], index_key=stored["index_key"], stats=stats)
    write_json(storage, manifest_key(sample_id, "variant_calls"), manifest)
    return dg.MaterializeResult(
        metadata=_clean(
            {
                "source": manifest["source"],
                "records": stats.get("records"),
                "vcf_uri": dg.MetadataValue.path(storage.uri(vcf_key)) if manifest["vcf_key"] else None,
                "seconds": round(time.monotonic() - started, 2),
            }
        )
    )


def _reference_if_present(reference: ReferenceData) -> str | None:
    try:
        return str(indexed_reference(reference.fasta()).fasta)
    except FileNotFoundError:
        return None


@dg.asset(
    group_name=VARIANTS,
    partitions_def=samples_partitions,
    deps=[variant_calls, gene_annotation, known_sites],
    kinds={"parquet"},
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
    calls = read_json(storage, manifest_key(sample_id, "variant_calls"))
    annotation = reference.annotation()
    known = reference.known_sites()
    if calls.get("vcf_key"):
        with storage.local_path(calls["vcf_key"]) as vcf:
            frame = annotate_variants(vcf, annotation_path=annotation, known_sites=known, sample_id=sample_id)
            metrics = vcf_metrics(vcf, known_sites=str(known) if known else None)
    else:
        frame = _empty_variants()
        metrics = {}
    summary = summarise_variants(frame)
    summary["source"] = calls.get("source")
    gate, callset_verdict = verdicts.callset_within_profile(
        metrics, verdicts.stored_profile(read_json(storage, summary_key(sample_id))))
    headline = verdicts.headline_numbers(callset=metrics, variant_summary=summary)
    table = write_parquet(storage, variants_table_key(sample_id), frame)
    write_json(storage, variants_summary_key(sample_id),
               {"summary": summary, "vcf_metrics": metrics, "verdict": callset_verdict, "gates": [gate.to_dict()]})
    context.log.info(f"{len(frame)} variants, {summary.get('genes_hit', 0)} gene(s) hit; call set {gate.label}: "
                     f"{gate.summary}")

    yield dg.MaterializeResult(
        metadata=_clean(
            {
                "variants": len(frame),
                "ts_tv": headline.ts_tv,  # the call set's bcftools-stats figures, as its gate grades them
                "het_hom_ratio": headline.het_hom_ratio,
                "call_rate": headline.call_rate,
                "known": summary.get("known"),
                "novel": summary.get("novel"),
                "table_uri": dg.MetadataValue.path(storage.uri(table.key)),
                "preview": dg.MetadataValue.md(
                    markdown_table(frame.head(20).to_dict("records"),
                                   ["chrom", "pos", "ref", "alt", "variant_type", "genotype", "gene", "known"])
                ),
            }
        )
    )
    yield gate_check_result(gate)


def _empty_variants() -> pd.DataFrame:
    return pd.DataFrame(
        columns=["sample_id", "chrom", "pos", "ref", "alt", "variant_type", "qual", "filter", "genotype",
                 "zygosity", "depth", "gene", "known", "variant_id"]
    )


def _clean(metadata: dict[str, Any]) -> dict[str, Any]:
    """Dagster metadata cannot hold None; drop what a stage did not measure."""
    return {k: v for k, v in metadata.items() if v is not None}
