"""Pair-level figures from the two mates' real FASTQ metrics."""

from genoflow_dagster.qc.fastq import fastq_metrics
from genoflow_dagster.qc.pairs import pair_figures


def test_pair_figures_combine_the_mates_by_bases(tmp_path):
    r1 = tmp_path / "x_R1.fq"
    r2 = tmp_path / "x_R2.fq"
    # R1: 2 reads x 10 bases, all Q40 ('I'); R2: 2 reads x 5 bases, Q40 for 3 of 5 bases, Q2 ('#') for 2
    r1.write_text("@a/1\nGGGGGCCCCC\n+\nIIIIIIIIII\n@b/1\nAAAAATTTTT\n+\nIIIIIIIIII\n")
    r2.write_text("@a/2\nGGAAA\n+\nIII##\n@b/2\nGGAAA\n+\nIII##\n")
    figures = pair_figures(fastq_metrics(r1), fastq_metrics(r2))
    assert figures["pairs"] == 2 and figures["read_counts_match"]
    assert (figures["total_reads"], figures["total_bases"]) == (4, 30)
    assert (figures["r1_q30_percent"], figures["r2_q30_percent"]) == (100.0, 60.0)
    assert figures["q30_percent"] == round((20 + 6) / 30 * 100, 4)
    assert figures["q30_drop_r1_to_r2"] == 40.0
    assert figures["gc_percent"] == round((10 + 4) / 30 * 100, 4)
    assert figures["gc_difference_r1_r2"] == 10.0


def test_unequal_mates_say_so(tmp_path):
    r1 = tmp_path / "x_R1.fq"
    r2 = tmp_path / "x_R2.fq"
    r1.write_text("@a/1\nACGT\n+\nIIII\n@b/1\nACGT\n+\nIIII\n")
    r2.write_text("@a/2\nACGT\n+\nIIII\n")
    figures = pair_figures(fastq_metrics(r1), fastq_metrics(r2))
    assert figures["pairs"] == 1 and not figures["read_counts_match"]
