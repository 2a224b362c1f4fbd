"""The zone layout and the key sanitiser: every unsafe key is refused with its own reason."""

import pytest

from genoflow_dagster import zones
from genoflow_dagster.samples import ReadGroup, group_reads


def test_landing_key_round_trip():
    key = zones.landing_key("SAMPLE_A", "reads_R1.fastq.gz")
    assert key == "landing/SAMPLE_A/reads_R1.fastq.gz"
    assert zones.parse_landing_key(key) == ("SAMPLE_A", "reads_R1.fastq.gz")


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("landing/../etc/passwd", "KEY_PATH_TRAVERSAL"),
        ("landing/S1/../../x", "KEY_PATH_TRAVERSAL"),
        ("/landing/S1/x.fq", "KEY_ABSOLUTE_PATH"),
        ("landing/S1/a\\b.fq", "KEY_ABSOLUTE_PATH"),
        ("landing/S1/bad\x07name.fq", "KEY_CONTROL_CHARACTERS"),
        ("landing/S1/sub/x.fq", "KEY_LAYOUT"),
        ("landing/S1", "KEY_LAYOUT"),
        ("landing/S|1/x.fq", "SAMPLE_ID_CHARACTERS"),
        ("landing/S,1/x.fq", "SAMPLE_ID_CHARACTERS"),
        ("landing/S1/" + "a" * 300, "KEY_TOO_LONG"),
        ("landing//x.fq", "KEY_PATH_TRAVERSAL"),
    ],
)
def test_unsafe_landing_keys_are_refused_with_a_reason(key, reason):
    with pytest.raises(zones.UnsafeKeyError) as info:
        zones.parse_landing_key(key)
    assert info.value.reason == reason


def test_safe_name_strips_directories_and_odd_characters():
    assert zones.safe_name("../../my reads (1).fastq.gz") == "my_reads_1_.fastq.gz"
    assert zones.safe_name("C:\\Users\\x\\r1.fq") == "r1.fq"
    long = zones.safe_name("x" * 500 + ".fastq")
    assert len(long) <= zones.MAX_NAME_LENGTH and long.endswith(".fastq")
    with pytest.raises(zones.UnsafeKeyError):
        zones.safe_name("...")


def test_keys_stay_inside_their_zone():
    sha = "a" * 64
    assert zones.raw_key("S1", sha, "../x.fq") == f"raw/S1/{sha}/x.fq"
    assert zones.quarantine_prefix("S1", sha) == f"quarantine/S1/{sha}/"
    assert zones.processed_key("S1", "qc_metrics", "qc.json") == "processed/S1/qc_metrics/qc.json"
    with pytest.raises(zones.UnsafeKeyError):
        zones.processed_key("..", "qc_metrics", "qc.json")


def test_read_pairs_are_grouped_by_mate_tag():
    groups, orphans = group_reads(
        ["A_R1.fastq.gz", "A_R2.fastq.gz", "L_S1_L001_R1_001.fq.gz", "L_S1_L001_R2_001.fq.gz",
         "x_1.fq", "x_2.fq", "single.fastq", "lone_R1.fq"]
    )
    assert ReadGroup("A_R1.fastq.gz", "A_R2.fastq.gz") in groups
    assert ReadGroup("L_S1_L001_R1_001.fq.gz", "L_S1_L001_R2_001.fq.gz") in groups
    assert ReadGroup("x_1.fq", "x_2.fq") in groups
    assert ReadGroup("single.fastq", None) in groups
    assert orphans == ["lone_R1.fq"]
