"""Assay profiles shipped with the package (exome, panel, amplicon): load, grade, targets not graded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from genoflow_dagster.qc import compute_metrics
from genoflow_dagster.qc.profiles import FASTQ_MODULES, grade, load_profile, shipped_profiles

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
ERR5069949 = [REALDATA / f"ERR5069949_test_{n}.fastq.gz" for n in (1, 2)]
TARGETED = ("exome", "panel", "amplicon")
# Every target check a profile makes, by profile.
TARGET_CHECKS = {
    "exome": {"on_target_reads_percent", "target_mean_depth", "target_breadth_20x"},
    "panel": {"on_target_reads_percent", "target_mean_depth", "target_breadth_20x"},
    "amplicon": {"on_target_reads_percent", "amplicons_below_floor_percent", "min_amplicon_depth"},
}
# An alignment with targets where every check of every profile passes, and one where they all fail.
GOOD_TARGETED_BAM = {
    "format": "bam", "total": 1000, "mapped": 990, "mapped_percent": 99.0, "paired": 1000,
    "properly_paired_percent": 97.0, "mean_depth": 1.0, "targets_bed": "targets.bed",
    "on_target_reads_percent": 95.0, "target_mean_depth": 400.0, "target_breadth_20x": 99.5,
    "amplicons": 98, "amplicon_floor": 20, "amplicons_below_floor": 1, "amplicons_below_floor_percent": 1.0204,
    "min_amplicon_depth": 15.0,
    "amplicon_depths": [{"name": "nCoV_64", "chrom": "MN908947.3", "start": 19204, "end": 19616, "mean_depth": 15.0}],
}
BAD_TARGETED_BAM = {**GOOD_TARGETED_BAM, "on_target_reads_percent": 20.0, "target_mean_depth": 5.0,
                    "target_breadth_20x": 10.0, "amplicons_below_floor": 40, "amplicons_below_floor_percent": 40.8,
                    "min_amplicon_depth": 0.0}


def modules(verdict: dict) -> dict[str, dict]:
    return {m["name"]: m for m in verdict["modules"]}


def test_shipped_profiles_are_read_from_the_package() -> None:
    assert set(shipped_profiles()) >= {"standard", "strict", *TARGETED}


@pytest.mark.parametrize("name", ["standard", "strict", *TARGETED])
def test_each_shipped_profile_loads_and_grades(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name and profile.version and profile.description
    assert {t.module for t in profile.thresholds} >= set(FASTQ_MODULES)
    for metrics in (GOOD_TARGETED_BAM, {"format": "vcf", "snps": 5000, "ts_tv": 2.9, "het_hom_ratio": 1.6,
                                        "call_rate": 1.0}):
        verdict = grade(metrics, profile)
        assert verdict["profile"] == name and verdict["modules"]
    graded = {t.metric for t in profile.thresholds if "alignment" in t.formats}
    assert graded >= TARGET_CHECKS.get(name, set())
    for t in profile.thresholds:
        if t.metric in TARGET_CHECKS.get(name, ()):
            assert t.if_missing == "not_graded", (name, t.metric)  # never a silent pass without targets


@pytest.mark.parametrize("name", TARGETED)
def test_target_checks_pass_and_fail_on_target_metrics(name: str) -> None:
    profile = load_profile(name)
    good = grade(GOOD_TARGETED_BAM, profile)
    assert good["status"] in ("pass", "warn") and not good["not_graded"]
    bad = grade(BAD_TARGETED_BAM, profile)
    failing = {m["metric"] for m in bad["modules"] if m["status"] == "fail"}
    assert failing & TARGET_CHECKS[name]


@pytest.mark.parametrize("name", TARGETED)
def test_targets_missing_are_not_graded_and_say_so(name: str) -> None:
    no_targets = {k: v for k, v in GOOD_TARGETED_BAM.items() if k in ("format", "total", "mapped", "mapped_percent",
                                                                      "paired", "properly_paired_percent")}
    no_targets["targets_bed"] = None
    verdict = grade(no_targets, load_profile(name))
    assert {m["metric"] for m in verdict["not_graded"]} == TARGET_CHECKS[name]
    assert all(m["message"].endswith("not graded (no targets BED configured)") for m in verdict["not_graded"])
    assert not {m["metric"] for m in verdict["modules"]} & TARGET_CHECKS[name]


def test_amplicon_messages_name_the_floor_and_the_weakest_amplicon() -> None:
    verdict = modules(grade(BAD_TARGETED_BAM, load_profile("amplicon")))
    assert verdict["amplicon depth"]["status"] == "fail"
    assert "(40 of 98 amplicons below 20x)" in verdict["amplicon depth"]["message"]
    dropout = {**GOOD_TARGETED_BAM, "min_amplicon_depth": 4.0,
               "amplicon_depths": [{**GOOD_TARGETED_BAM["amplicon_depths"][0], "mean_depth": 4.0}]}
    weakest = modules(grade(dropout, load_profile("amplicon")))["amplicon depth"]
    assert weakest["status"] == "warn" and weakest["metric"] == "min_amplicon_depth"
    assert "(nCoV_64, MN908947.3:19205-19616)" in weakest["message"]


def test_exome_ts_tv_range_is_the_exome_one() -> None:
    """An exome call set sits at Ts/Tv ~2.8-3.0; a WGS-like 2.05 is off-target or false calls there."""
    calls = {"format": "vcf", "snps": 20000, "het_hom_ratio": 1.6, "call_rate": 1.0}
    assert modules(grade({**calls, "ts_tv": 2.9}, load_profile("exome")))["transition/transversion ratio"][
        "status"] == "pass"
    assert modules(grade({**calls, "ts_tv": 2.05}, load_profile("exome")))["transition/transversion ratio"][
        "status"] == "warn"
    assert modules(grade({**calls, "ts_tv": 2.05}, load_profile("standard")))["transition/transversion ratio"][
        "status"] == "pass"
    small = grade({**calls, "snps": 30, "ts_tv": 0.5}, load_profile("amplicon"))  # a viral genome's few SNPs
    assert "transition/transversion ratio" not in {m["name"] for m in small["modules"] if m["status"] != "pass"}


@pytest.mark.skipif(not all(p.is_file() for p in ERR5069949), reason="realdata absent")
@pytest.mark.parametrize("path", ERR5069949, ids=lambda p: p.name)
def test_real_amplicon_reads_fail_no_fastq_module_under_amplicon(path: Path) -> None:
    metrics = compute_metrics(path, "fastq")
    standard = modules(grade(metrics, load_profile("standard")))
    amplicon = modules(grade(metrics, load_profile("amplicon")))
    assert {"per base sequence content", "overrepresented sequences"} <= {
        name for name, m in standard.items() if m["status"] == "fail"}
    assert [name for name, m in amplicon.items() if m["status"] == "fail"] == []
    assert set(amplicon) == set(FASTQ_MODULES)
    # the amplicon-shaped modules still show as warnings
    assert amplicon["per base sequence content"]["status"] == "warn"
    assert amplicon["overrepresented sequences"]["status"] == "warn"
    # quality is graded exactly as under standard
    for name in ("per base sequence quality", "per sequence quality scores", "per base N content"):
        assert amplicon[name]["status"] == standard[name]["status"]


@pytest.mark.skipif(not ERR5069949[0].is_file(), reason="realdata absent")
def test_cli_qc_with_the_amplicon_profile() -> None:
    out = subprocess.run([sys.executable, "-m", "genoflow_dagster.cli", "qc", "--json", "--profile", "amplicon",
                          str(ERR5069949[0])], check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    assert result["profile"] == "amplicon" and result["qc_status"] == "warn"
