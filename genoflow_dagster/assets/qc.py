"""QC: metrics for every valid input file, graded against the sample's QC profile.

Metrics are stored per file content (`metrics/<sha256>.json`), so re-grading a
sample under another profile reads them back instead of recomputing them. The
contamination screen of FASTQ inputs is stored beside them, keyed by the file
and by the references and parameters it used (`contamination-...json`), so a
new contaminant list re-screens without recomputing the other metrics.
"""

import hashlib
import json
from typing import Any

import dagster as dg
import pandas as pd

from genoflow_dagster import settings, verdicts, zones
from genoflow_dagster.assets.artifacts import markdown_table, read_json, write_json, write_parquet
from genoflow_dagster.assets.ingestion import validated_files, validation_key
from genoflow_dagster.assets.reference import indexed_reference
from genoflow_dagster.assets.transient import retry_storage_outages
from genoflow_dagster.partitions import samples_partitions
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
from genoflow_dagster.qc.pairs import pair_figures
from genoflow_dagster.qc.profiles import grade
from genoflow_dagster.qc.reference_match import (
    FAIL,
    ReferenceContigs,
    alignment_contigs,
    match_contigs,
    sample_verdict,
    vcf_contigs,
)
from genoflow_dagster.reports.render import metadata_plots
from genoflow_dagster.resources.reference import ReferenceData
from genoflow_dagster.resources.storage import Storage
from genoflow_dagster.samples import ALIGNMENT_FORMATS, VARIANT_FORMATS

QC = "qc"
CHECK_WITHIN_PROFILE = verdicts.QC_WITHIN_PROFILE
CHECK_REFERENCE = verdicts.REFERENCE_CONSISTENT
# Bump when metric definitions change, so cached per-file metrics are recomputed.
METRICS_VERSION = "1"

_STATUS_RANK = {"pass": 0, "warn": 1, "fail": 2}


class QCConfig(dg.Config):
    profile: str | None = None  # a shipped profile (standard, strict, exome, panel, amplicon) or a YAML path
    # reads taken from the start of each R1 for the contamination screen (when contaminants are configured)
    contamination_sample_reads: int = DEFAULT_SAMPLE_READS


def metrics_key(sample_id: str, sha256: str) -> str:
    return zones.processed_key(sample_id, "qc_metrics", f"metrics-v{METRICS_VERSION}-{sha256}.json")


def contamination_key(sample_id: str, sha256: str, screen_digest: str) -> str:
    name = f"contamination-v{METHOD_VERSION}-{sha256}-{screen_digest}.json"
    return zones.processed_key(sample_id, "qc_metrics", name)


def summary_key(sample_id: str) -> str:
    return zones.processed_key(sample_id, "qc_metrics", "qc.json")


def verdict_table_key(sample_id: str) -> str:
    return zones.processed_key(sample_id, "qc_metrics", "verdict.parquet")


def gate_check_result(outcome: verdicts.GateOutcome) -> dg.AssetCheckResult:
    """A gate's check result, read from its stored outcome (verdicts.py decides; this only translates)."""
    fields = outcome.check_fields()
    metadata = dict(fields["metadata"])
    metadata["problems"] = dg.MetadataValue.md(metadata["problems"])
    metadata["outcome"] = dg.MetadataValue.json(outcome.to_dict())  # the stored outcome, for the notifier
    return dg.AssetCheckResult(
        check_name=fields["check_name"], passed=fields["passed"], description=fields["description"],
        severity=dg.AssetCheckSeverity.ERROR if fields["severity"] == "ERROR" else dg.AssetCheckSeverity.WARN,
        metadata=metadata)


def worst(statuses: list[str]) -> str:
    return max(statuses, key=lambda s: _STATUS_RANK.get(s, 0), default="pass")


@dg.asset(
    group_name=QC,
    partitions_def=samples_partitions,
    deps=[validated_files],
    kinds={"python"},
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
    validation = read_json(storage, validation_key(sample_id))
    # the one place a sample's profile is chosen; aligned_reads and variant_results read it from qc.json
    choice, profile = verdicts.choose_profile(config.profile, validation.get("samplesheet"),
                                              settings.default_qc_profile())
    ref_fasta = _optional_str(reference.fasta_path)
    known_sites = reference.known_sites()
    screen = _Screen(reference, config.contamination_sample_reads, validation)

    files: list[dict[str, Any]] = []
    verdict_rows: list[dict[str, Any]] = []
    reused = 0
    headline_files: list[tuple[str, dict[str, Any]]] = []
    metrics_by_name: dict[str, dict[str, Any]] = {}
    reference_check = reference_consistency(context, storage, sample_id, reference, validation["files"])
    off_reference = {m["file"] for m in reference_check["files"] if m["status"] == FAIL}
    for row in validation["files"]:
        if not row["valid"]:
            continue
        if row["format"] == "cram" and row["path"] in off_reference:
            context.log.warning(f"{row['path']}: no metrics, a CRAM decodes only against its own reference")
            continue
        key = metrics_key(sample_id, row["sha256"])
        if storage.exists(key):
            metrics = read_json(storage, key)
            reused += 1
        else:
            with storage.local_path(row["raw_key"]) as path:
                context.log.info(f"computing {row['format']} metrics for {row['path']}")
                metrics = compute_metrics(
                    path,
                    row["format"],
                    quality_offset=64 if row.get("quality_encoding") in ("phred64", "solexa64") else 33,
                    reference_fasta=ref_fasta,
                    known_sites=str(known_sites) if known_sites else None,
                )
            write_json(storage, key, metrics)
        extra: dict[str, Any] = {}
        if row["format"] == "fastq":
            extra["contamination_key"], extra["contamination"] = screen.result(context, storage, sample_id, row)
        verdict = grade({**metrics, **({"contamination": extra["contamination"]} if extra else {})}, profile)
        files.append(
            {"name": row["path"], "format": row["format"], "sha256": row["sha256"],
             "metrics_key": key, **extra, "verdict": verdict}
        )
        headline_files.append((row["format"], metrics))
        metrics_by_name[row["path"]] = metrics
        for module in verdict["modules"]:
            verdict_rows.append(
                {
                    "sample_id": sample_id,
                    "file": row["path"],
                    "format": row["format"],
                    "module": module["name"],
                    "status": module["status"],
                    "value": _as_float(module.get("value")),
                    "warn": _as_float(module.get("warn")),
                    "fail": _as_float(module.get("fail")),
                    "message": module.get("message") or "",
                    "profile": verdict["profile"],
                    "profile_version": str(verdict["profile_version"]),
                }
            )

    status = worst([f["verdict"]["status"] for f in files])
    pairs = [{"r1": g["r1"], "r2": g["r2"], **pair_figures(metrics_by_name[g["r1"]], metrics_by_name[g["r2"]])}
             for g in validation.get("read_groups", [])
             if g.get("r2") and g["r1"] in metrics_by_name and g["r2"] in metrics_by_name]
    failing = [r for r in verdict_rows if r["status"] == "fail"]
    warning = [r for r in verdict_rows if r["status"] == "warn"]
    gates = [verdicts.reference_consistent(reference_check), verdicts.qc_within_profile(files, choice.label)]
    headline = verdicts.headline_numbers([m for fmt, m in headline_files if fmt == "fastq"])
    summary = {
        "sample_id": sample_id,
        "status": status,
        "profile": profile.name,
        "profile_version": profile.version,
        "profile_source": choice.source,
        "profile_choice": choice.choice,  # what load_profile() takes: later stages grade with the same profile
        "gates": [g.to_dict() for g in gates],
        "headline": headline.to_dict(),
        "reference_consistency": reference_check,
        "files": files,
        "pairs": pairs,
        "failing": failing,
        "warnings": warning,
        "run_id": context.run.run_id,
    }
    obj = write_json(storage, summary_key(sample_id), summary)
    write_parquet(storage, verdict_table_key(sample_id), _verdict_frame(verdict_rows))
    context.log.info(f"QC {status} under profile {choice.label} (from {choice.source}; {reused} file(s) reused)")
    report_uri = write_report_if_stopped(context, storage, sample_id, gates)

    yield dg.MaterializeResult(
        metadata={
            "status": status,
            "profile": f"{profile.name} v{profile.version}",
            "profile_source": choice.source,
            "files_graded": len(files),
            "metrics_reused": reused,
            "qc_uri": dg.MetadataValue.path(storage.uri(obj.key)),
            **key_numbers(headline, headline_files),
            **contamination_metadata(files),
            **pair_metadata(pairs),
            **plot_metadata(headline_files),
            **({"report_uri": dg.MetadataValue.path(report_uri)} if report_uri else {}),
            "modules": dg.MetadataValue.md(
                markdown_table(verdict_rows, ["file", "module", "status", "value", "warn", "fail"])
            ),
        }
    )
    for gate in gates:  # emitted from the stored outcomes, never decided again here
        yield gate_check_result(gate)


def write_report_if_stopped(context: dg.AssetExecutionContext, storage: Storage, sample_id: str,
                            gates: list[verdicts.GateOutcome]) -> str | None:
    """When one of this asset's blocking gates fails, write the sample's FAIL report now, from the stored
    outcomes: Dagster skips sample_report downstream of a failed blocking check, and a stopped sample must
    not be left without a report. Returns the report's URI, or None when the sample goes on."""
    if not any(g.stops_sample for g in gates):
        return None
    from genoflow_dagster.assets.reports import write_sample_report  # reports.py reads this module's keys

    report = write_sample_report(storage, sample_id, run_id=context.run.run_id, narrator=None)
    context.log.error(f"{sample_id} stopped at {', '.join(g.gate for g in gates if g.stops_sample)}; "
                      f"{report.status.upper()} report written to {report.uri}")
    return report.uri


def reference_match_key(sample_id: str, sha256: str, reference_sha256: str) -> str:
    return zones.processed_key(sample_id, "qc_metrics", f"reference-match-v1-{sha256}-{reference_sha256[:16]}.json")


def reference_consistency(context: dg.AssetExecutionContext, storage: Storage, sample_id: str,
                          reference: ReferenceData, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The sample's reference-consistency verdict (qc/reference_match.py), decided once and stored in qc.json.

    Each uploaded alignment or call set is compared with the configured reference; the comparison is
    cached per (file, reference) content, so a re-run does not download the file again.
    """
    try:
        fasta = reference.fasta()
    except FileNotFoundError:
        return sample_verdict([], reference=None, not_graded_reason=f"no reference FASTA at "
                              f"{reference.fasta_path or '(unset)'} (GENOFLOW_REFERENCE_FASTA)")
    compared = [r for r in rows if r["valid"] and r["format"] in ALIGNMENT_FORMATS | VARIANT_FORMATS]
    if not compared:
        return sample_verdict([], reference=fasta.name)
    ref = indexed_reference(fasta)
    contigs = ReferenceContigs.from_fasta(ref.fasta, name=fasta.name)
    matches = []
    for row in compared:
        key = reference_match_key(sample_id, row["sha256"], ref.sha256)
        if storage.exists(key):
            matches.append(read_json(storage, key))
            continue
        with storage.local_path(row["raw_key"]) as path:
            try:
                found = alignment_contigs(path) if row["format"] in ALIGNMENT_FORMATS else vcf_contigs(path)
                match = match_contigs(found, contigs, file=row["path"]).to_dict()
            except ValueError as exc:
                match = {"file": row["path"], "status": FAIL, "message": f"{row['path']}: {exc}", "source": "",
                         "contigs": 0, "matched": 0, "m5_compared": 0, "mismatches": []}
        write_json(storage, key, match)
        context.log.info(match["message"])
        matches.append(match)
    return sample_verdict(matches, reference=contigs.label)


# Per-format counts summed over a sample's files; read percentages come from verdicts.headline_numbers.
HEADLINE_FIELDS = {
    "fastq": ("total_reads", "total_bases"),
    "bam": ("total", "mapped_percent", "properly_paired_percent", "mean_depth"),
    "cram": ("total", "mapped_percent", "properly_paired_percent", "mean_depth"),
    "sam": ("total", "mapped_percent", "properly_paired_percent", "mean_depth"),
    "vcf": ("records", "snps", "indels", "ts_tv"),
}


def key_numbers(headline: verdicts.Headline, files: list[tuple[str, dict[str, Any]]]) -> dict[str, float]:
    """Headline numbers as float metadata, which the UI plots over a partition's materializations.

    Read figures are the sample's headline numbers (verdicts.headline_numbers: base-weighted over R1 and
    R2, as the report and the cohort table show them); counts of other formats are summed over the
    sample's files of that format, an uploaded file's percentages taken from the first one.
    """
    numbers: dict[str, float] = {}
    for name in ("q30_percent", "gc_percent", "mean_quality", "duplication_percent"):
        value = getattr(headline, name)
        if value is not None:
            numbers[f"fastq_{name}"] = value
    for fmt, metrics in files:
        for field in HEADLINE_FIELDS.get(fmt, ()):
            value = metrics.get(field)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            name = f"{fmt}_{field}"
            if name in numbers and field in ("total_reads", "total_bases", "total", "records", "snps", "indels"):
                numbers[name] += float(value)
            else:
                numbers.setdefault(name, float(value))
    return numbers


class _Screen:
    """The contamination screen for one qc_metrics run: references prepared once, results cached per file.

    Not configured (no contaminants) means not computed: the file's entry says
    so and the profile's contamination floor is not graded. Paired-end samples
    are screened on R1 (see qc/contamination.py); R2 names its mate instead.
    """

    def __init__(self, reference: ReferenceData, sample_reads: int, validation: dict[str, Any]):
        self.reference = reference
        self.sample_reads = sample_reads
        self.contaminants = reference.contaminants()  # raises for a configured path that is missing
        self.mate_of = {g["r2"]: g["r1"] for g in validation.get("read_groups") or [] if g.get("r2")}
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
               row: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        if not self.contaminants:
            return None, {"computed": False, "reason": "not configured"}
        if row["path"] in self.mate_of:
            return None, {"computed": False, "reason": f"screened on its mate {self.mate_of[row['path']]}"}
        self._prepare()
        assert self._refs is not None
        key = contamination_key(sample_id, row["sha256"], self._digest)
        if storage.exists(key):
            return key, read_json(storage, key)
        with storage.local_path(row["raw_key"]) as path:
            result = screen_contamination(path, self._refs[0], self._refs[1:], sample_reads=self.sample_reads)
        result = {"computed": True, **result}
        write_json(storage, key, result)
        context.log.info(
            f"contamination screen of {row['path']}: {result['contamination_percent']}% of "
            f"{result['reads_sampled']:,} reads map better to {', '.join(r.name for r in self._refs[1:])} "
            f"({result['seconds']:.2f} s)"
        )
        return key, result


def pair_metadata(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    if not pairs:
        return {}
    columns = ["r1", "r2", "pairs", "read_counts_match", "q30_percent", "q30_drop_r1_to_r2", "gc_difference_r1_r2"]
    return {"read_pairs": dg.MetadataValue.md(markdown_table(pairs, columns))}


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
        "contamination": dg.MetadataValue.md(
            markdown_table(rows, ["file", "reference", "role", "reads_best_hit", "percent", "sha256"])),
        "contamination_references": ", ".join(r["name"] for r in first["references"] if r["role"] == "contaminant"),
        "contamination_reads_sampled": first["reads_sampled"],
        "contamination_seconds": float(first["seconds"]),
    }
    if first["contamination_percent"] is not None:
        metadata["fastq_contamination_percent"] = float(first["contamination_percent"])
    return metadata


def _verdict_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = ["sample_id", "file", "format", "module", "status", "value", "warn", "fail", "message",
               "profile", "profile_version"]
    return pd.DataFrame(rows, columns=columns)


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def _optional_str(value: str | None) -> str | None:
    return value or None
