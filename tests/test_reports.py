"""The HTML reports: self-contained, escaped, and complete or gracefully partial."""

import re

from genoflow_dagster.qc.fastq import fastq_metrics
from genoflow_dagster.reports.render import render_cohort_report, render_sample_report, svg_histogram
from genoflow_dagster.resources.ai import Narrative


def _ctx(**overrides):
    ctx = {
        "sample_id": "S1", "run_id": "run-123", "generated_at": "2026-11-22T00:00:00+00:00",
        "qc": {"status": "pass", "profile": "standard", "profile_version": 1, "failing": [], "warnings": [],
               "files": [{"name": "r1.fq", "format": "fastq",
                          "verdict": {"status": "pass", "modules": [
                              {"name": "per base sequence quality", "status": "pass", "value": 38.0,
                               "warn": 25, "fail": 20, "message": None}]}}]},
        "file_metrics": [], "alignment": None, "alignment_source": None,
        "variant_summary": {"variants": 1, "snvs": 1, "indels": 0, "ts_tv": None, "het": 1, "hom_alt": 0,
                            "het_hom_ratio": None, "known": 0, "novel": 1, "genes_hit": 1},
        "variant_source": "called",
        "variants": [{"chrom": "chr1", "pos": 12345, "ref": "A", "alt": "G", "variant_type": "SNV",
                      "genotype": "0/1", "zygosity": "het", "depth": 31, "qual": 99.0, "gene": "<GENE1>",
                      "known": False}],
        "variants_total": 1,
        "gates": [{"check": "qc_metrics_within_profile", "severity": "ERROR (blocking)", "passed": True,
                   "detail": "pass"}],
        "validation": [{"path": "r1.fq", "format": "fastq", "valid": True, "records": 10, "size_bytes": 100}],
        "provenance": {"inputs": [{"name": "r1.fq", "format": "fastq", "size_bytes": 100, "sha256": "ab" * 32}],
                       "tools": {"genoflow": "0.1.0"}, "profile": "standard v1", "run_id": "run-123"},
        "narrative": Narrative("All good.", "offline", None),
    }
    ctx.update(overrides)
    return ctx


def test_sample_report_is_self_contained_and_escaped(tmp_path):
    fastq = tmp_path / "r1.fq"
    fastq.write_text("".join(f"@r{i}\nACGTACGTAC\n+\nIIIIIIII##\n" for i in range(50)))
    metrics = fastq_metrics(fastq)
    html = render_sample_report(_ctx(file_metrics=[{"name": "r1.fq", "format": "fastq", "metrics": metrics}]))
    assert "12,345" in html and "&lt;GENE1&gt;" in html and "<GENE1>" not in html
    assert "<svg" in html and "Per-position quality" in html
    assert not re.search(r"<script|https?://|<link ", html), "no scripts or external assets"
    assert "Narrative written by: offline" in html and "Signature" in html
    assert "ab" * 32 in html


def test_a_stopped_sample_still_renders():
    html = render_sample_report(_ctx(qc={"status": "fail", "profile": "standard", "profile_version": 1,
                                         "files": [], "failing": [], "warnings": []},
                                     variant_summary=None, variants=[], variants_total=0))
    assert "stopped by its QC gate" in html and "No variant results" in html


def test_cohort_report_lists_every_sample():
    rows = [{"sample_id": "A", "status": "pass", "stopped_at": None, "failing": None, "files": 2, "quarantined": 0,
             "total_reads": 1000.0, "q30_percent": 95.0, "gc_percent": 45.0, "mapped_percent": 99.0,
             "mean_depth": 30.0, "variants": 22.0, "ts_tv": 2.2, "profile": "standard"},
            {"sample_id": "B", "status": "fail", "stopped_at": "qc_metrics_within_profile",
             "failing": "per base sequence quality: 10 < 20", "files": 2, "quarantined": 0, "total_reads": 10.0,
             "q30_percent": 0.0, "gc_percent": 50.0, "mapped_percent": None, "mean_depth": None,
             "variants": None, "ts_tv": None, "profile": "standard"}]
    html = render_cohort_report(rows)
    assert html.count('class="badge fail"') == 1 and "qc_metrics_within_profile" in html
    assert "per base sequence quality: 10 &lt; 20" in html


def test_cohort_page_reads_well_missing_text_empty_long_problems_folded_samples_linked():
    """What a lab saw on the demo's page: literal `nan` where pandas had a missing string, a stopped sample's four
    problems making its row ~730 px tall, no time it was made, no way to its reports."""
    rows = [{"sample_id": "A", "status": "pass", "stopped_at": float("nan"), "failing": float("nan"),
             "not_graded": float("nan"), "files": 2, "profile": "standard"},
            {"sample_id": "B", "status": "fail", "stopped_at": "qc_metrics_within_profile",
             "failing": "R1: quality 8 < 20; R1: mean quality 8 <= 20; R2: quality 8 < 20; R2: mean quality 8 <= 20",
             "not_graded": float("nan"), "files": 2, "profile": "standard"}]
    html = render_cohort_report(rows, generated_at="2026-12-03 19:55 UTC", multiqc_report="multiqc_report.html")
    assert ">nan<" not in html.lower()  # no cell holds the text nan
    assert "R1: quality 8 &lt; 20" in html and "<summary>3 more</summary>" in html
    assert '<a href="../A/report.html">A</a>' in html and '<a href="../B/report.html">B</a>' in html
    assert "generated 2026-12-03 19:55 UTC" in html and 'href="multiqc_report.html"' in html


def test_histogram_of_nothing_is_empty():
    assert svg_histogram([]) == "" and svg_histogram([0, 0]) == ""


def test_metadata_plots_are_standalone_svg_images(tmp_path):
    import base64

    from genoflow_dagster.reports.render import metadata_plots

    fastq = tmp_path / "r1.fq"
    fastq.write_text("".join(f"@r{i}\nACGTACGTAC\n+\nIIIIIIII##\n" for i in range(50)))
    markdown = metadata_plots("fastq", fastq_metrics(fastq))
    images = re.findall(r"!\[([a-z_]+)\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert [name for name, _ in images][:2] == ["per_position_quality", "per_sequence_gc"]
    svg = base64.b64decode(images[0][1]).decode()
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"') and svg.endswith("</svg>")
    assert metadata_plots("vcf", {"records": 3}) == ""
    bam = metadata_plots("bam", {"breadth_1x": 99.0, "breadth_10x": 80.0, "breadth_30x": 10.0,
                                 "mapq_distribution": {"0": 5, "60": 95}})
    assert "**breadth of coverage**" in bam and "**mapq distribution**" in bam


def test_report_lists_not_graded_checks_and_read_pairs():
    qc = _ctx()["qc"]
    qc["files"][0]["verdict"]["not_graded"] = [
        {"name": "contamination screen", "warn": 1, "fail": 5, "message": "contamination screen: not graded "
         "(not configured)"}]
    qc["pairs"] = [{"r1": "x_R1.fq", "r2": "x_R2.fq", "pairs": 1000, "read_counts_match": True,
                    "q30_percent": 91.25, "r1_q30_percent": 93.5, "r2_q30_percent": 89.0,
                    "q30_drop_r1_to_r2": 4.5, "gc_difference_r1_r2": 0.2}]
    page = render_sample_report(_ctx(qc=qc))
    assert '<span class="badge not_graded">not graded</span>' in page
    assert "not graded (not configured)" in page
    assert "<h2>Read pairs</h2>" in page and "x_R2.fq" in page and "4.50" in page


def test_sample_status_reads_every_stored_gate_outcome():
    from genoflow_dagster import verdicts
    from tests.records import sample_status

    def stored(*outcomes):
        return tuple(outcomes)

    validation = stored(verdicts.usable_inputs(analysable_files=1), verdicts.all_files_valid([]))
    ref_ok = verdicts.reference_consistent({"status": "pass", "message": "a.bam: 1 contig(s) match q", "files": []})
    qc_ok = verdicts.qc_within_profile([], "standard v1")  # nothing graded: not graded, never a pass
    qc = stored(ref_ok, verdicts.GateOutcome(verdicts.QC_WITHIN_PROFILE, "pass", "every module passes"))
    aligned = stored(verdicts.GateOutcome(verdicts.ALIGNMENT_WITHIN_PROFILE, "warn", "mean depth: 3 < 10"))
    assert sample_status({"validation": validation, "qc": qc, "aligned": aligned}) == ("warn", None)
    off = stored(verdicts.reference_consistent({"status": "fail", "message": "a.bam: none of its 85 contigs",
                                                "files": [{"status": "fail", "message": "a.bam: none"}]}))
    assert sample_status({"validation": validation, "qc": off}) == ("fail", "qc_metrics_reference_consistent")
    unmapped = stored(verdicts.GateOutcome(verdicts.ALIGNMENT_WITHIN_PROFILE, "fail", "0.0% of reads map to q"))
    assert sample_status({"validation": validation, "qc": qc, "aligned": unmapped}) == \
        ("fail", "aligned_reads_within_profile")
    assert sample_status({"validation": validation, "qc": stored(ref_ok, qc_ok)}) == ("pass", None)
    assert sample_status({"validation": validation, "qc": None}) == ("not_run", None)
    unusable = stored(verdicts.usable_inputs(analysable_files=0))
    assert sample_status({"validation": unusable, "qc": None}) == ("fail", "validated_files_usable")


def test_a_stopped_samples_report_says_fail_which_gate_and_each_failed_module():
    from genoflow_dagster import verdicts
    from genoflow_dagster.reports.context import report_context
    from tests.records import sample_record

    files = [{"name": "B_R1.fq", "verdict": {"modules": [
        {"name": "per base sequence quality", "status": "fail", "value": 12.0, "warn": 25, "fail": 20,
         "message": "median per-base quality 12 < fail threshold 20 (8 below) at position 40"},
        {"name": "adapter content", "status": "warn", "value": 6.0, "warn": 5, "fail": 10, "message": "6 > 5"}]}}]
    gate = verdicts.qc_within_profile(files, "strict v1")
    sample = sample_record("B", validation=(verdicts.usable_inputs(analysable_files=2),), qc=(gate,),
                           profile="strict", profile_source="samplesheet line 2")
    page = render_sample_report(report_context(sample, Narrative("-", "offline", None), run_id="r"))
    assert 'QC <span class="badge fail">FAIL</span>' in page
    assert "<h2>Stopped: qc_metrics_within_profile</h2>" in page and "under QC profile strict v1" in page
    assert "<td>per base sequence quality</td><td class=\"n\">12.00</td>\n<td class=\"n\">20</td>" in page
    assert "B_R1.fq: per base sequence quality: median per-base quality 12 &lt; fail threshold 20" in page
    assert "adapter content</td>" not in page.split("<h2>Quality gates</h2>")[0], "only failed modules stop it"
    assert "strict v1 (from samplesheet line 2)" in page


def test_validation_warnings_section_lists_each_reason_escaped():
    warnings = [{"file": "t.csv", "reason": "TABLE_BLANK_ROW", "line": 3, "message": "line 3: <blank>", "count": 4}]
    html = render_sample_report(_ctx(validation_warnings=warnings, validation_mode="strict"))
    assert "Validation warnings" in html and "TABLE_BLANK_ROW" in html and "&lt;blank&gt;" in html
    assert "strict mode" in html
    assert "Validation warnings" not in render_sample_report(_ctx())


def test_the_offline_narrative_says_where_a_stopped_sample_stopped():
    from genoflow_dagster.reports.narrative import deidentify_summary, offline_narrative

    aligned = deidentify_summary({"qc_status": "fail", "stopped_at": "aligned_reads_within_profile"})
    assert "stopped before variant calling" in offline_narrative(aligned)
    assert "before alignment" not in offline_narrative(aligned), "QC passed: it was not stopped before alignment"
    qc = deidentify_summary({"qc_status": "fail", "stopped_at": "qc_metrics_within_profile",
                             "qc_failing_modules": ["per base sequence quality"]})
    assert "failed its QC profile (per base sequence quality)" in offline_narrative(qc)
    assert "stopped_at" not in deidentify_summary({"stopped_at": "PATIENT_1 note"}), "gate names only"
