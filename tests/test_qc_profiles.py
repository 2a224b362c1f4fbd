"""Profiles and grading: FastQC default limits, messages, re-grading from stored metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from genoflow_dagster.qc import compute_metrics
from genoflow_dagster.qc.profiles import FASTQ_MODULES, ProfileError, grade, import_fastqc_limits, load_profile


def write_reads(path: Path, n: int = 2000, *, length: int = 100, low_tail_from: int | None = None,
                seed: int = 5) -> Path:
    rng = np.random.default_rng(seed)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    out = []
    for i in range(n):
        seq = bases[rng.integers(0, 4, length)].tobytes()
        q = rng.integers(30, 41, length)
        if low_tail_from is not None:
            q[low_tail_from:] = 10
        out.append(b"@r%d\n%s\n+\n%s\n" % (i, seq, (q + 33).astype(np.uint8).tobytes()))
    path.write_bytes(b"".join(out))
    return path


@pytest.fixture(scope="module")
def low_quality(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return compute_metrics(write_reads(tmp_path_factory.mktemp("q") / "low.fq", low_tail_from=29), "fastq")


def modules(verdict: dict) -> dict[str, dict]:
    return {m["name"]: m for m in verdict["modules"]}


def test_packaged_profiles_load() -> None:
    for name in ("standard", "strict"):
        profile = load_profile(name)
        assert profile.name == name and profile.version
        assert {t.module for t in profile.thresholds} >= set(FASTQ_MODULES)


def test_good_reads_pass_standard(tmp_path: Path) -> None:
    verdict = grade(compute_metrics(write_reads(tmp_path / "good.fq", 20000), "fastq"), load_profile("standard"))
    assert verdict["status"] == "pass", [m for m in verdict["modules"] if m["status"] != "pass"]
    assert [m["name"] for m in verdict["modules"]] == list(FASTQ_MODULES)


def test_low_quality_fails_per_base_quality_with_a_message(low_quality: dict) -> None:
    verdict = grade(low_quality, load_profile("standard"))
    assert verdict["status"] == "fail"
    module = modules(verdict)["per base sequence quality"]
    assert module["status"] == "fail"
    assert "per-base quality" in module["message"] and "< fail threshold" in module["message"]
    assert module["message"].startswith("median per-base quality 10 < fail threshold 20 (10 below) at position 30-31")
    assert module["value"] < module["fail"]


def test_regrading_from_stored_metrics_changes_the_verdict(tmp_path: Path) -> None:
    # a tail at Q22-24: a median below 25 warns under standard, below strict's fail of 25
    metrics = compute_metrics(write_reads(tmp_path / "mid.fq"), "fastq")
    for row in metrics["per_position_quality"][-5:]:
        row.update(median=23.0)
    stored = json.loads(json.dumps(metrics))  # as the asset stores it
    standard = modules(grade(stored, load_profile("standard")))["per base sequence quality"]
    strict = modules(grade(stored, load_profile("strict")))["per base sequence quality"]
    assert standard["status"] == "warn" and strict["status"] == "fail"


def test_custom_yaml_and_fastqc_limits(tmp_path: Path, low_quality: dict) -> None:
    limits = tmp_path / "limits.txt"
    limits.write_text("# FastQC limits\nquality_base_median\twarn\t5\nquality_base_median\terror\t2\n"
                      "quality_base_lower\tignore\t1\nquality_base_lower\twarn\t1\nadapter\twarn\t5\n"
                      "adapter\terror\t10\nkmer\tignore\t1\n")
    profile_dict = import_fastqc_limits(limits)
    path = tmp_path / "lenient.yaml"
    path.write_text(yaml.safe_dump(profile_dict))
    profile = load_profile(str(path))
    verdict = modules(grade(low_quality, profile))
    assert verdict["per base sequence quality"]["status"] == "pass"
    assert "adapter content" in verdict
    with pytest.raises(ProfileError):
        load_profile(str(tmp_path / "missing.yaml"))


def test_alignment_and_callset_grading() -> None:
    bam = {"format": "bam", "total": 100, "mapped_percent": 60.0, "paired": 0, "properly_paired_percent": None,
           "mean_depth": 35.0}
    v = modules(grade(bam, load_profile("standard")))
    assert v["mapped reads"]["status"] == "fail" and "70" in v["mapped reads"]["message"]
    assert v["properly paired reads"]["status"] == "pass"  # single-end: not graded
    vcf = {"format": "vcf", "snps": 500, "ts_tv": 0.7, "het_hom_ratio": 1.5, "call_rate": 0.99}
    v = modules(grade(vcf, load_profile("standard")))
    assert v["transition/transversion ratio"]["status"] == "fail"
    assert "outside fail range" in v["transition/transversion ratio"]["message"]
    assert v["het/hom ratio"]["status"] == "pass"


def test_metrics_without_read_lengths_leave_the_length_check_ungraded():
    verdict = grade({"format": "fastq", "total_reads": 10}, load_profile("standard"))
    lengths = [m for m in verdict["modules"] if m["name"] == "sequence length distribution"]
    assert all(m["status"] == "pass" for m in lengths)


def test_ungraded_entries_carry_an_explicit_flag_and_their_reason() -> None:
    few_snps = {"format": "vcf", "snps": 4, "ts_tv": 9.0, "het_hom_ratio": 9.0, "call_rate": 1.0}
    verdict = grade(few_snps, load_profile("standard"))
    entries = verdict["modules"] + verdict["not_graded"]
    ungraded = [m for m in entries if not m["graded"]]
    graded = [m for m in entries if m["graded"]]
    assert {m["metric"] for m in ungraded} >= {"ts_tv", "het_hom_ratio"}
    assert all(m["not_graded_reason"] == "too few snps" and m["message"].endswith("not graded (too few snps)")
               for m in ungraded if m["metric"] in ("ts_tv", "het_hom_ratio"))
    assert [m["metric"] for m in graded] == ["call_rate"] and "not_graded_reason" not in graded[0]
    # the flag survives the JSON round trip the stored verdict makes
    assert json.loads(json.dumps(verdict)) == verdict
