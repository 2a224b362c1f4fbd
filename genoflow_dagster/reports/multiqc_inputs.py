"""A sample's stored results written in the formats MultiQC reads, and the MultiQC cohort report over them.

GenoFlow's numbers already are FastQC's, samtools' and bcftools' (tests/test_qc_fastqc_equivalence.py,
tests/test_qc_alignment.py, tests/test_qc_variants.py), so each sample's per-sample JSON (the source of truth,
keys in `zones`) is rendered once more as the text those tools print, and MultiQC parses it as if the tools
had run:

| file | from | MultiQC module |
|---|---|---|
| `<fastq>_fastqc_data.txt` | a FASTQ's stored metrics + its graded modules (qc.json) | FastQC |
| `<sample>.flagstat` | aligned_reads manifest `metrics` | Samtools (flagstat) |
| `<sample>.samtools_stats.txt` | aligned_reads manifest `metrics` (SN section) | Samtools (stats) |
| `<sample>.bcftools_stats.txt` | variant_results summary `vcf_metrics` | Bcftools (stats) |
| `<sample>.verdict.tsv` | every stored gate outcome (verdicts) | custom content: the verdict table |
| `<sample>.contamination.tsv` | each FASTQ's contamination screen, target metrics | custom content |

Only what is stored is written: a line, module or file whose numbers GenoFlow did not measure is left out
(FastQC's per-tile module, its duplication-level histogram, samtools' coverage histograms, bcftools'
per-sample depth), never filled with made-up values. A gate-stopped sample still gets its verdict row.

No Dagster here: `storage` is any object with `exists` and `get_bytes` (resources.storage.Storage).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genoflow_dagster import verdicts, zones
from genoflow_dagster.sample_record import SampleRecord, read_sample

if TYPE_CHECKING:
    from genoflow_dagster.resources.storage import Storage

JsonDict = dict[str, Any]

# Above this many samples MultiQC draws plots as images (its flat/interactive switch): a 1,000-sample
# interactive line plot makes the page slow to open and heavy to load.
FLAT_PLOTS_ABOVE_SAMPLES = 100
MULTIQC_TIMEOUT_SECONDS = 3600

VERDICT_SECTION_ID = "genoflow_verdicts"
CONTAMINATION_SECTION_ID = "genoflow_contamination"

# GenoFlow's module names (qc.profiles FASTQ modules) -> FastQC's, in FastQC's order. Per tile sequence
# quality has no GenoFlow counterpart and is not written.
FASTQC_MODULES = {
    "basic statistics": "Basic Statistics",
    "per base sequence quality": "Per base sequence quality",
    "per sequence quality scores": "Per sequence quality scores",
    "per base sequence content": "Per base sequence content",
    "per sequence GC content": "Per sequence GC content",
    "per base N content": "Per base N content",
    "sequence length distribution": "Sequence Length Distribution",
    "sequence duplication levels": "Sequence Duplication Levels",
    "overrepresented sequences": "Overrepresented sequences",
    "adapter content": "Adapter Content",
}
# FastQC's name for the Phred offset it detected (the offset is all GenoFlow stores).
_ENCODINGS = {33: "Sanger / Illumina 1.9"}


@dataclass(frozen=True)
class SampleArtifacts:
    """What one sample stored, as the stages wrote it (None / empty for a stage that has not run)."""

    sample_id: str
    validation: JsonDict | None = None
    qc: JsonDict | None = None
    file_metrics: Mapping[str, JsonDict] = field(default_factory=dict)  # stored file name -> its metrics JSON
    aligned: JsonDict | None = None
    calls: JsonDict | None = None
    variant_results: JsonDict | None = None

    @classmethod
    def from_record(cls, record: SampleRecord) -> SampleArtifacts:
        """The stored JSON of each stage, from the sample's record (each record writes back its JSON as read)."""
        def stored(stage: Any) -> JsonDict | None:
            return None if stage is None else stage.to_json()

        return cls(sample_id=record.sample_id, validation=stored(record.validation), qc=stored(record.qc),
                   file_metrics={f.entry.name: f.metrics for f in record.file_metrics if f.metrics},
                   aligned=stored(record.aligned), calls=stored(record.calls),
                   variant_results=stored(record.variant_results))

    def verdict(self) -> verdicts.SampleVerdict:
        """The sample's verdict over the gate outcomes its stages stored (never re-graded here)."""
        return verdicts.sample_verdict(
            verdicts.stored_outcomes(self.validation, self.qc, self.aligned, self.variant_results))


def read_sample_artifacts(storage: Storage, sample_id: str) -> SampleArtifacts:
    """A sample's stored JSON artifacts (per-file FASTQ metrics through the keys qc.json names), read by
    `sample_record.read_sample` (without the variants table, which MultiQC does not show)."""
    return SampleArtifacts.from_record(read_sample(storage, sample_id, variants=False))


# ---------------------------------------------------------------- number formatting

def _number(value: Any) -> str:
    """A number as the tools print it: integers bare, floats in full precision, missing as NaN (FastQC)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _cell(text: Any) -> str:
    """A text cell of a tab-separated table: one line, no tabs."""
    return " ".join(str(text).replace("\t", " ").split())


# ---------------------------------------------------------------- FastQC

def fastqc_data(file_name: str, metrics: JsonDict, statuses: Mapping[str, str]) -> str:
    """`fastqc_data.txt` for one FASTQ from its stored metrics (qc.fastq) and module statuses (GenoFlow names,
    as graded under the sample's profile). A module whose numbers are not stored is left out."""
    out: list[str] = []

    def module(genoflow_name: str, header: list[str], rows: Iterable[list[Any]], meta: Iterable[str] = ()) -> None:
        status = statuses.get(genoflow_name)
        if status not in ("pass", "warn", "fail"):
            return
        out.append(f">>{FASTQC_MODULES[genoflow_name]}\t{status}")
        out.extend(meta)
        rows = list(rows)
        if rows or meta:  # FastQC leaves the column line out of a module with nothing to list
            out.append("#" + "\t".join(header))
        out.extend("\t".join(v if isinstance(v, str) else _number(v) for v in row) for row in rows)
        out.append(">>END_MODULE")

    low, high = metrics.get("min_length"), metrics.get("max_length")
    basic = [["Filename", _cell(file_name)], ["File type", "Conventional base calls"]]
    if metrics.get("quality_offset") in _ENCODINGS:
        basic.append(["Encoding", _ENCODINGS[metrics["quality_offset"]]])
    basic += [["Total Sequences", str(metrics["total_reads"])],
              ["Sequences flagged as poor quality", "0"],  # FastQC counts these only with --casava
              ["Sequence length", f"{low}-{high}" if low != high else str(high)]]
    if metrics.get("gc_percent") is not None:
        basic.append(["%GC", str(math.floor(metrics["gc_percent"]))])  # FastQC prints the integer part
    status = statuses.get("basic statistics")
    if status in ("pass", "warn", "fail"):
        out.append(f">>Basic Statistics\t{status}")
        out.append("#Measure\tValue")
        out.extend("\t".join(row) for row in basic)
        out.append(">>END_MODULE")

    if metrics.get("per_position_quality"):
        module("per base sequence quality",
               ["Base", "Mean", "Median", "Lower Quartile", "Upper Quartile", "10th Percentile", "90th Percentile"],
               [[r["base"], r["mean"], r["median"], r["lower_quartile"], r["upper_quartile"], r["p10"], r["p90"]]
                for r in metrics["per_position_quality"]])
    if metrics.get("per_sequence_quality"):
        module("per sequence quality scores", ["Quality", "Count"],
               [[str(q), float(n)] for q, n in metrics["per_sequence_quality"].items()])
    if metrics.get("per_base_content"):
        module("per base sequence content", ["Base", "G", "A", "T", "C"],
               [[r["base"], r["G"], r["A"], r["T"], r["C"]] for r in metrics["per_base_content"]])
    if metrics.get("per_sequence_gc"):
        module("per sequence GC content", ["GC Content", "Count"],
               [[str(i), float(v)] for i, v in enumerate(metrics["per_sequence_gc"])])
    if metrics.get("per_base_n"):
        module("per base N content", ["Base", "N-Count"], [[r["base"], r["N"]] for r in metrics["per_base_n"]])
    if metrics.get("length_distribution_groups"):
        module("sequence length distribution", ["Length", "Count"],
               [[r["length"], float(r["count"])] for r in metrics["length_distribution_groups"]])
    if metrics.get("deduplicated_percent") is not None:
        # only the total is stored, not FastQC's per-level histogram: the header without rows
        module("sequence duplication levels",
               ["Duplication Level", "Percentage of deduplicated", "Percentage of total"],
               [], meta=[f"#Total Deduplicated Percentage\t{_number(float(metrics['deduplicated_percent']))}"])
    if "overrepresented_sequences" in metrics:
        module("overrepresented sequences", ["Sequence", "Count", "Percentage", "Possible Source"],
               [[s["sequence"], int(s["count"]), float(s["percent"]), _cell(s.get("source") or "No Hit")]
                for s in metrics["overrepresented_sequences"]])
    adapters = metrics.get("adapter_content") or {}
    if adapters and metrics.get("adapter_content_positions"):
        names = list(adapters)
        module("adapter content", ["Position", *names],
               [[label, *(adapters[name][i] for name in names)]
                for i, label in enumerate(metrics["adapter_content_positions"])])
    return "\n".join(out) + "\n"


def _module_statuses(qc_file: JsonDict) -> dict[str, str]:
    """A stored file's graded module statuses (GenoFlow names)."""
    return {m["name"]: m["status"] for m in (qc_file.get("verdict") or {}).get("modules") or []}


# ---------------------------------------------------------------- samtools

_FLAGSTAT_LINES = (  # (metrics key, flagstat label, percent-of key or None)
    ("total", "in total (QC-passed reads + QC-failed reads)", None),
    ("primary", "primary", None),
    ("secondary", "secondary", None),
    ("supplementary", "supplementary", None),
    ("duplicates", "duplicates", None),
    ("primary_duplicates", "primary duplicates", None),
    ("mapped", "mapped", "total"),
    ("primary_mapped", "primary mapped", "primary"),
    ("paired", "paired in sequencing", None),
    ("read1", "read1", None),
    ("read2", "read2", None),
    ("properly_paired", "properly paired", "paired"),
    ("with_mate_mapped", "with itself and mate mapped", None),
    ("singletons", "singletons", "paired"),
    ("mate_on_other_chr", "with mate mapped to a different chr", None),
    ("mate_on_other_chr_mapq5", "with mate mapped to a different chr (mapQ>=5)", None),
)


def samtools_flagstat(metrics: JsonDict) -> str | None:
    """`samtools flagstat` text from the stored alignment metrics, or None.

    GenoFlow's categories sum QC-passed and QC-failed reads (qc/alignment.py); flagstat prints the two apart.
    With no QC-failed read the split is exact (every second column 0); with some it is unknown, so the
    flagstat text is not written (samtools stats' summary still is)."""
    if metrics.get("total") is None or metrics.get("qc_failed") is None or int(metrics["qc_failed"]) > 0:
        return None
    lines = []
    for key, label, percent_of in _FLAGSTAT_LINES:
        if metrics.get(key) is None:
            continue
        count = int(metrics[key])
        text = f"{count} + 0 {label}"
        if percent_of:
            base = metrics.get(percent_of)
            text += f" ({100.0 * count / base:.2f}% : N/A)" if base else " (N/A : N/A)"
        lines.append(text)
    return "\n".join(lines) + "\n"


# samtools stats SN label -> metrics key (only numbers GenoFlow measured the way samtools does)
_STATS_SN = (
    ("raw total sequences", "primary"),
    ("sequences", "primary"),
    ("1st fragments", "read1"),
    ("last fragments", "read2"),
    ("reads mapped", "primary_mapped"),
    ("reads mapped and paired", "with_mate_mapped"),
    ("reads properly paired", "properly_paired"),
    ("reads paired", "paired"),
    ("reads duplicated", "primary_duplicates"),
    ("reads QC failed", "qc_failed"),
    ("non-primary alignments", "secondary"),
    ("supplementary alignments", "supplementary"),
    ("bases mapped (cigar)", "bases_mapped_cigar"),
    ("mismatches", "mismatches"),
    ("error rate", "error_rate"),
    ("average length", "average_length"),
    ("average quality", "average_quality"),
    ("insert size average", "insert_size_mean"),
    ("insert size standard deviation", "insert_size_sd"),
)


def samtools_stats(metrics: JsonDict) -> str | None:
    """The SN (summary numbers) section of `samtools stats` from the stored alignment metrics.

    Three lines follow from stored counts: `reads unmapped` (primary minus primary mapped), `filtered
    sequences` (0: GenoFlow filters no read), `reads MQ0` (the MAPQ histogram's 0 bin, written only when the
    histogram covers every primary mapped read)."""
    rows = [(label, metrics[key]) for label, key in _STATS_SN if metrics.get(key) is not None]
    if metrics.get("primary") is not None and metrics.get("primary_mapped") is not None:
        rows.insert(1, ("filtered sequences", 0))
        rows.append(("reads unmapped", int(metrics["primary"]) - int(metrics["primary_mapped"])))
        mapq = {str(k): int(v) for k, v in (metrics.get("mapq_distribution") or {}).items()}
        if mapq and sum(mapq.values()) == int(metrics["primary_mapped"]):
            rows.append(("reads MQ0", mapq.get("0", 0)))
    if not any(label == "raw total sequences" for label, _ in rows):
        return None
    lines = ["# This file was produced by samtools stats and rendered by GenoFlow from its stored alignment metrics",
             "# Summary Numbers. Use `grep ^SN | cut -f 2-` to extract this part."]
    lines += [f"SN\t{label}:\t{_number(value)}" for label, value in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- bcftools

_BCFTOOLS_SN = (
    ("number of samples", "samples"),
    ("number of records", "records"),
    ("number of no-ALTs", "no_alts"),
    ("number of SNPs", "snps"),
    ("number of MNPs", "mnps"),
    ("number of indels", "indels"),
    ("number of others", "others"),
    ("number of multiallelic sites", "multiallelic_sites"),
    ("number of multiallelic SNP sites", "multiallelic_snp_sites"),
)


def bcftools_stats(sample_id: str, vcf_metrics: JsonDict) -> str | None:
    """`bcftools stats` text (ID, SN, TSTV, IDD) from the stored call-set metrics; None without records."""
    if vcf_metrics.get("records") is None:
        return None
    lines = ["# This file was produced by bcftools stats and rendered by GenoFlow from its stored call-set metrics",
             f"ID\t0\t{_cell(sample_id)}"]
    lines += [f"SN\t0\t{label}:\t{int(vcf_metrics[key])}" for label, key in _BCFTOOLS_SN
              if vcf_metrics.get(key) is not None]
    tstv = ("ts", "tv", "ts_tv", "ts_first_alt", "tv_first_alt", "ts_tv_first_alt")
    if all(vcf_metrics.get(key) is not None for key in tstv):
        lines.append("TSTV\t0\t" + "\t".join(
            str(int(vcf_metrics[k])) if k in ("ts", "tv", "ts_first_alt", "tv_first_alt")
            else f"{float(vcf_metrics[k]):.2f}" for k in tstv))
    for length, count in sorted(((int(k), int(v)) for k, v in (vcf_metrics.get("indel_length_distribution")
                                                               or {}).items())):
        lines.append(f"IDD\t0\t{length}\t{count}\t0\t.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- custom content

def verdict_row(artifacts: SampleArtifacts) -> dict[str, str]:
    """The sample's row of the verdict table: status, the gate that stopped it, and why in plain words (the
    stopping gate's problems first; for a sample that was not stopped, what its gates warned about)."""
    verdict = artifacts.verdict()
    stopped = verdict.stopped_by
    if stopped:
        why = "; ".join(verdict.problems()) or stopped.detail()
    else:
        why = "; ".join(o.detail() for o in verdict.outcomes if o.graded and o.status != verdicts.PASS)
    return {"Sample": artifacts.sample_id, "Status": verdict.status.upper().replace("_", " "),
            "Failing gate": verdict.stopped_at or "", "Why": why}


_VERDICT_HEADER = {
    "id": VERDICT_SECTION_ID,
    "section_name": "GenoFlow verdict",
    "description": "Each sample's verdict from the gates GenoFlow stored (gate-stopped samples included): "
                   "the gate that stopped it and why.",
    "plot_type": "table",
    # a table at any cohort size: MultiQC turns tables of more than max_table_rows (500) into violin plots
    "pconfig": {"id": f"{VERDICT_SECTION_ID}_table", "namespace": "GenoFlow", "col1_header": "Sample",
                "sort_rows": False, "no_violin": True},
    "headers": {"Status": {"title": "Status"}, "Failing gate": {"title": "Failing gate"},
                "Why": {"title": "Why"}},
}

_CONTAMINATION_COLUMNS = {  # key -> (title, description, suffix)
    "contamination_percent": ("Contamination", "reads whose best hit is a contaminant reference", "%"),
    "target_percent": ("Target genome", "reads whose best hit is the target reference", "%"),
    "unmapped_percent": ("No hit", "reads mapping to no screened reference", "%"),
    "reads_sampled": ("Reads screened", "reads of the file screened", ""),
}
_TARGET_COLUMNS = {
    "on_target_reads_percent": ("On target", "primary mapped reads overlapping a target", "%"),
    "target_mean_depth": ("Target depth", "mean depth over the target bases", "X"),
    "target_breadth_1x": ("Targets >=1X", "target bases covered at least once", "%"),
    "target_breadth_10x": ("Targets >=10X", "target bases covered at least 10 times", "%"),
    "target_breadth_20x": ("Targets >=20X", "target bases covered at least 20 times", "%"),
    "target_breadth_30x": ("Targets >=30X", "target bases covered at least 30 times", "%"),
    "amplicons_below_floor": ("Amplicons below floor", "regions whose mean depth is below the floor", ""),
}


def contamination_rows(artifacts: SampleArtifacts) -> list[dict[str, Any]]:
    """One row per screened FASTQ (its contamination screen) and one for the sample's target metrics."""
    rows = []
    for entry in (artifacts.qc or {}).get("files") or []:
        screen = entry.get("contamination") or {}
        if not screen.get("computed"):
            continue
        row: dict[str, Any] = {"Sample": _cell(entry["name"])}
        row.update({key: screen[key] for key in _CONTAMINATION_COLUMNS if screen.get(key) is not None})
        rows.append(row)
    aligned = (artifacts.aligned or {}).get("metrics") or {}
    targets = {key: aligned[key] for key in _TARGET_COLUMNS if aligned.get(key) is not None}
    if targets:
        rows.append({"Sample": artifacts.sample_id, **targets})
    return rows


def _custom_table(path: Path, header: JsonDict, columns: list[str], rows: Sequence[Mapping[str, Any]]) -> None:
    lines = ["# " + json.dumps(header)]  # MultiQC reads a '#'-line of JSON/YAML as the section's config
    lines.append("\t".join(columns))
    lines += ["\t".join(_cell(row.get(c, "")) if not isinstance(row.get(c), float) else _number(row[c])
                        for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------- one sample, then the cohort

def write_sample_inputs(artifacts: SampleArtifacts, out_dir: Path) -> list[Path]:
    """Write one sample's MultiQC inputs under `out_dir/<sample>/`; returns the files written."""
    sample = zones.validate_sample_id(artifacts.sample_id)
    folder = Path(out_dir) / sample
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    written: list[Path] = []

    def put(name: str, text: str | None) -> None:
        if text:
            path = folder / name
            path.write_text(text)
            written.append(path)

    for entry in (artifacts.qc or {}).get("files") or []:
        metrics = artifacts.file_metrics.get(entry["name"])
        if entry.get("format") == "fastq" and metrics and metrics.get("total_reads") is not None:
            put(f"{zones.safe_name(entry['name'])}_fastqc_data.txt",
                fastqc_data(entry["name"], metrics, _module_statuses(entry)))
    alignment = (artifacts.aligned or {}).get("metrics") or {}
    if (artifacts.aligned or {}).get("source") == "aligned" or alignment:
        put(f"{sample}.flagstat", samtools_flagstat(alignment))
        put(f"{sample}.samtools_stats.txt", samtools_stats(alignment))
    vcf_metrics = (artifacts.variant_results or {}).get("vcf_metrics") or {}
    put(f"{sample}.bcftools_stats.txt", bcftools_stats(sample, vcf_metrics) if vcf_metrics else None)

    verdict = folder / f"{sample}.genoflow_verdict_mqc.tsv"
    _custom_table(verdict, _VERDICT_HEADER, ["Sample", "Status", "Failing gate", "Why"], [verdict_row(artifacts)])
    written.append(verdict)
    rows = contamination_rows(artifacts)
    if rows:
        columns = ["Sample", *[c for c in (*_CONTAMINATION_COLUMNS, *_TARGET_COLUMNS) if any(c in r for r in rows)]]
        titles = {**_CONTAMINATION_COLUMNS, **_TARGET_COLUMNS}
        header = {
            "id": CONTAMINATION_SECTION_ID, "section_name": "GenoFlow contamination and targets",
            "description": "Each FASTQ's contamination screen (best hit per read among the target and the "
                           "contaminant references) and the sample's depth over its targets.",
            "plot_type": "table", "pconfig": {"id": f"{CONTAMINATION_SECTION_ID}_table", "namespace": "GenoFlow"},
            "headers": {c: {"title": titles[c][0], "description": titles[c][1], "suffix": titles[c][2]}
                        for c in columns[1:]},
        }
        path = folder / f"{sample}.genoflow_contamination_mqc.tsv"
        _custom_table(path, header, columns, rows)
        written.append(path)
    return written


def multiqc_config(title: str, n_samples: int) -> JsonDict:
    """MultiQC's configuration for the cohort report: GenoFlow's verdict first, flat plots above
    FLAT_PLOTS_ABOVE_SAMPLES samples, nothing fetched from the network."""
    config: JsonDict = {
        "title": title,
        "no_version_check": True,
        "ai_summary": False,
        "make_pdf": False,
        "data_format": "tsv",
        "data_dir_name": "multiqc_data",
        "plots_flat_numseries": FLAT_PLOTS_ABOVE_SAMPLES,
        "plots_force_flat": n_samples > FLAT_PLOTS_ABOVE_SAMPLES,
        "report_section_order": {VERDICT_SECTION_ID: {"order": 10_000},
                                 CONTAMINATION_SECTION_ID: {"order": 9_000}},
        "custom_content": {"order": [VERDICT_SECTION_ID, CONTAMINATION_SECTION_ID]},
        "run_modules": ["custom_content", "fastqc", "samtools", "bcftools"],
        "extra_fn_clean_exts": [".samtools_stats", ".bcftools_stats", ".genoflow_verdict_mqc", "_fastqc_data"],
    }
    return config


def build_multiqc_report(input_dir: str | Path, out_dir: str | Path, *, title: str) -> Path:
    """Run MultiQC over `input_dir` (what `write_sample_inputs` wrote) into `out_dir`; returns the HTML.

    MultiQC runs in a process of its own (`python -m multiqc`): its report state is global to the process,
    and a cohort of 1,000 samples should not grow the caller's memory. Raises RuntimeError with MultiQC's
    last lines when it fails.
    """
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_samples = sum(1 for p in input_dir.iterdir() if p.is_dir())
    config = out_dir / "multiqc_config.json"
    config.write_text(json.dumps(multiqc_config(title, n_samples), indent=2))
    report = out_dir / "multiqc_report.html"
    command = [sys.executable, "-m", "multiqc", "--force", "--no-ansi", "--quiet", "--no-version-check",
               "--config", str(config), "--outdir", str(out_dir), "--filename", report.name, str(input_dir)]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=MULTIQC_TIMEOUT_SECONDS,
                          env=_offline_env())
    if done.returncode != 0 or not report.is_file():
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-15:])
        raise RuntimeError(f"MULTIQC_FAILED: MultiQC could not build the cohort report (exit {done.returncode}):\n"
                           f"{tail}")
    (out_dir / "multiqc_build_seconds.txt").write_text(f"{time.monotonic() - started:.2f}\n")
    return report


def _offline_env() -> dict[str, str]:
    env = dict(os.environ)
    env["MULTIQC_NO_VERSION_CHECK"] = "1"
    env.setdefault("MPLBACKEND", "Agg")
    return env
