"""Contamination screen: exact shares on generated references and reads, the tie rule, configuration, grading."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from genoflow_dagster import settings, zones
from genoflow_dagster.assets.ingestion import raw_files, validated_files
from genoflow_dagster.assets.qc import qc_metrics
from genoflow_dagster.formats.io import sha256_file
from genoflow_dagster.partitions import SAMPLES_PARTITION_NAME
from genoflow_dagster.qc.contamination import cached_screen_index, reference_name, screen_contamination
from genoflow_dagster.qc.profiles import grade, load_profile
from genoflow_dagster.resources.reference import ReferenceData
from genoflow_dagster.resources.storage import LocalStorage

READ_LENGTH = 100
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


def _genome(rng: np.random.Generator, length: int, gc: float) -> str:
    at, cg = (1 - gc) / 2, gc / 2
    return _BASES[rng.choice(4, size=length, p=[at, cg, cg, at])].tobytes().decode()


def _write_fasta(path: Path, name: str, seq: str) -> Path:
    path.write_text(f">{name}\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n")
    return path


def _write_fastq(path: Path, reads: list[str]) -> Path:
    text = "".join(f"@read{i}\n{r}\n+\n{'I' * len(r)}\n" for i, r in enumerate(reads))
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def _draw(rng: np.random.Generator, seq: str) -> str:
    start = int(rng.integers(0, len(seq) - READ_LENGTH))
    return seq[start : start + READ_LENGTH]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A human-like target (45% GC), a bacterial-like contaminant (65% GC), and 1,000 reads: read i
    comes from the contaminant exactly when i % 20 == 0 (50 reads), from the target otherwise."""
    root = tmp_path_factory.mktemp("screen")
    rng = np.random.default_rng(11)
    target_seq = _genome(rng, 60_000, 0.45)
    bug_seq = _genome(rng, 30_000, 0.65)
    reads = [_draw(rng, bug_seq if i % 20 == 0 else target_seq) for i in range(1_000)]
    return {
        "root": root,
        "target_seq": target_seq,
        "bug_seq": bug_seq,
        "target": _write_fasta(root / "target.fa", "chrT", target_seq),
        "bug": _write_fasta(root / "bugbacter.fasta", "bug1", bug_seq),
        "reads": reads,
        "fastq": _write_fastq(root / "reads.fastq", reads),
    }


def test_fifty_contaminant_reads_in_a_thousand_give_exactly_five_percent(world: dict) -> None:
    result = screen_contamination(world["fastq"], world["target"], [world["bug"]])
    assert result["reads_sampled"] == 1_000 and result["whole_file"] is True
    assert result["contamination_percent"] == 5.0
    assert result["unmapped_percent"] == 0.0
    assert result["target_percent"] == 95.0
    assert result["classification"] == {"unmapped": 0, "target_only": 950, "contaminant_only": 50,
                                        "both_target_best": 0, "both_contaminant_best": 0}
    target, bug = result["references"]
    assert (target["name"], target["role"], target["reads_best_hit"], target["percent"]) == \
        ("target", "target", 950, 95.0)
    assert (bug["name"], bug["role"], bug["reads_best_hit"], bug["percent"]) == \
        ("bugbacter", "contaminant", 50, 5.0)
    assert bug["sha256"] == sha256_file(world["bug"]) and bug["path"] == str(world["bug"])
    method = result["method"]
    assert (method["preset"], method["sample_reads"], method["threads"]) == ("sr", 100_000, 1)
    assert "target wins a tie" in method["ties"]


def test_the_sample_is_the_first_n_reads_and_gzip_reads_the_same(world: dict, tmp_path: Path) -> None:
    first = screen_contamination(world["fastq"], world["target"], [world["bug"]], sample_reads=300)
    assert first["reads_sampled"] == 300 and first["whole_file"] is False
    assert first["classification"]["contaminant_only"] == 15  # reads 0, 20, ..., 280
    assert first["contamination_percent"] == 5.0
    gz = _write_fastq(tmp_path / "reads.fastq.gz", world["reads"])
    assert screen_contamination(gz, world["target"], [world["bug"]])["classification"] == \
        screen_contamination(world["fastq"], world["target"], [world["bug"]])["classification"]


def test_a_read_that_maps_equally_well_to_both_counts_as_target(world: dict, tmp_path: Path) -> None:
    # The contaminant carries an exact copy of 1 kb of the target, and a 1 kb copy with 2 mismatches
    # (40 bp apart, so both versions still share minimap2's 21-mer seeds).
    shared = world["target_seq"][10_000:11_000]
    diverged = list(world["target_seq"][20_000:21_000])
    for pos in (430, 470):
        diverged[pos] = {"A": "C", "C": "G", "G": "T", "T": "A"}[diverged[pos]]
    bug = _write_fasta(tmp_path / "chimera.fa", "bug", world["bug_seq"][:10_000] + shared + "".join(diverged))
    tie = shared[300:400]
    target_better = world["target_seq"][20_400:20_500]  # the target's version of the diverged copy
    bug_better = "".join(diverged[400:500])
    nowhere = _genome(np.random.default_rng(99), READ_LENGTH, 0.5)
    fastq = _write_fastq(tmp_path / "tie.fq", [tie, target_better, bug_better, nowhere])
    result = screen_contamination(fastq, world["target"], [bug])
    assert result["classification"] == {"unmapped": 1, "target_only": 0, "contaminant_only": 0,
                                        "both_target_best": 2, "both_contaminant_best": 1}
    assert result["contamination_percent"] == 25.0 and result["unmapped_percent"] == 25.0
    target, contaminant = result["references"]
    assert (target["reads_mapped"], contaminant["reads_mapped"]) == (3, 3)


def test_between_contaminants_the_better_one_and_on_a_tie_the_first_listed(world: dict, tmp_path: Path) -> None:
    again = _write_fasta(tmp_path / "bugbacter.fa", "bug1", world["bug_seq"])  # same name after suffixes
    result = screen_contamination(world["fastq"], world["target"], [world["bug"], again])
    names = [r["name"] for r in result["references"]]
    assert names == ["target", "bugbacter", "bugbacter#2"]
    assert [r["reads_best_hit"] for r in result["references"]] == [950, 50, 0]
    assert result["references"][2]["reads_mapped"] == 50
    assert result["contamination_percent"] == 5.0


def test_errors_are_named(world: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        screen_contamination(world["fastq"], world["target"], [])
    with pytest.raises(FileNotFoundError, match="reads file not found"):
        screen_contamination(tmp_path / "missing.fq", world["target"], [world["bug"]])
    with pytest.raises(FileNotFoundError, match="reference FASTA not found"):
        screen_contamination(world["fastq"], world["target"], [tmp_path / "missing.fa"])
    bad = tmp_path / "bad.fq"
    bad.write_text(">not fastq\nACGT\n")
    with pytest.raises(ValueError, match="does not start with '@'"):
        screen_contamination(bad, world["target"], [world["bug"]])


def test_cached_index_is_built_once_per_checksum(world: dict, tmp_path: Path) -> None:
    ref = cached_screen_index(world["bug"], tmp_path / "cache")
    assert ref.index is not None and ref.index.parent.name == sha256_file(world["bug"])[:16]
    built = ref.index.stat().st_mtime_ns
    assert cached_screen_index(world["bug"], tmp_path / "cache").index.stat().st_mtime_ns == built
    result = screen_contamination(world["fastq"], world["target"], [ref])
    assert result["contamination_percent"] == 5.0
    assert reference_name("x/E_coli.fna.gz") == "E_coli"


# --- configuration ------------------------------------------------------------------------------


def test_contaminants_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GENOFLOW_CONTAMINANTS", raising=False)
    assert settings.contaminant_paths() == []  # nothing configured: the screen is off
    folder = settings.contaminant_dir()
    folder.mkdir(parents=True)
    (folder / "phix.fa").write_text(">phix\nACGT\n")
    (folder / "README.txt").write_text("not a FASTA")
    assert settings.contaminant_paths() == [str(folder / "phix.fa")]
    assert settings.reference_paths()["contaminant_paths"] == [str(folder / "phix.fa")]
    monkeypatch.setenv("GENOFLOW_CONTAMINANTS", " /refs/a.fa, /refs/b.fa.gz ,")
    assert settings.contaminant_paths() == ["/refs/a.fa", "/refs/b.fa.gz"]
    monkeypatch.setenv("GENOFLOW_CONTAMINANTS", "")
    assert settings.contaminant_paths() == []  # set and empty: off, even with the folder present
    reference = ReferenceData(fasta_path="g.fa", contaminant_paths=[str(folder / "phix.fa"), str(tmp_path / "x.fa")])
    with pytest.raises(FileNotFoundError, match=r"x\.fa"):
        reference.contaminants()


# --- grading ------------------------------------------------------------------------------------


def _metrics(percent: float | None, **screen) -> dict:
    contamination = {"computed": percent is not None, "contamination_percent": percent, "reads_sampled": 1000,
                     "references": [{"name": "hg38", "role": "target", "percent": 90.0},
                                    {"name": "phix", "role": "contaminant", "percent": 0.0},
                                    {"name": "bug", "role": "contaminant", "percent": percent}], **screen}
    return {"format": "fastq", "total_reads": 1000, "min_length": 100, "max_length": 100,
            "contamination": contamination}


def _module(verdict: dict) -> dict | None:
    return next((m for m in verdict["modules"] if m["name"] == "contamination screen"), None)


@pytest.mark.parametrize(
    ("percent", "standard", "strict"),
    [(0.0, "pass", "pass"), (0.5, "pass", "pass"), (1.0, "pass", "warn"), (1.5, "warn", "warn"),
     (2.5, "warn", "fail"), (5.0, "warn", "fail"), (5.01, "fail", "fail")],
)
def test_floor_is_graded_like_the_other_floors(percent: float, standard: str, strict: str) -> None:
    assert _module(grade(_metrics(percent), load_profile("standard")))["status"] == standard
    assert _module(grade(_metrics(percent), load_profile("strict")))["status"] == strict


def test_floor_message_names_the_contaminant() -> None:
    module = _module(grade(_metrics(6.0), load_profile("standard")))
    assert module["message"] == ("reads mapping better to a contaminant % 6 > fail threshold 5 (1 above) "
                                 "of 1,000 reads vs hg38 (phix 0%, bug 6%)")
    assert (module["value"], module["warn"], module["fail"]) == (6.0, 1, 5)


@pytest.mark.parametrize("metrics", [
    {"format": "fastq", "total_reads": 1000, "min_length": 100, "max_length": 100},
    {"format": "fastq", "total_reads": 1000, "min_length": 100, "max_length": 100,
     "contamination": {"computed": False, "reason": "not configured"}},
])
def test_without_a_value_the_floor_is_not_graded_rather_than_passing(metrics: dict) -> None:
    verdict = grade(metrics, load_profile("standard"))
    assert _module(verdict) is None
    [skipped] = [m for m in verdict["not_graded"] if m["name"] == "contamination screen"]
    assert "status" not in skipped and "not graded" in skipped["message"]
    if "contamination" in metrics:
        assert skipped["message"].endswith("(not configured)")


# --- the asset ----------------------------------------------------------------------------------


def _materialize(tmp_path: Path, world: dict, contaminants: list[str]) -> tuple[LocalStorage, object]:
    storage = LocalStorage(base_dir=str(tmp_path / "zones"))
    storage.put_file(world["fastq"], zones.landing_key("S1", "s_R1.fastq"))
    r2 = _write_fastq(tmp_path / "s_R2.fastq", [read[::-1] for read in world["reads"]])  # same names, mates
    storage.put_file(r2, zones.landing_key("S1", "s_R2.fastq"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SAMPLES_PARTITION_NAME, ["S1"])
    reference = ReferenceData(fasta_path=str(world["target"]), contaminant_paths=contaminants)
    result = dg.materialize([raw_files, validated_files, qc_metrics], partition_key="S1", instance=instance,
                            resources={"storage": storage, "reference": reference}, raise_on_error=False)
    # the gate's outcome is whatever the other modules say of these synthetic reads; qc_metrics is stored anyway
    assert "qc_metrics" in {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    return storage, result


def _qc_metadata(result) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "qc_metrics"]
    return event.materialization.metadata


def test_qc_metrics_screens_r1_and_shows_it(tmp_path: Path, world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENOFLOW_REFERENCE_CACHE", str(tmp_path / "cache"))
    storage, result = _materialize(tmp_path, world, [str(world["bug"])])
    summary = json.loads(storage.get_bytes(zones.processed_key("S1", "qc_metrics", "qc.json")))
    files = {f["name"]: f for f in summary["files"]}
    r1, r2 = files["s_R1.fastq"], files["s_R2.fastq"]
    assert r1["contamination"]["contamination_percent"] == 5.0
    assert json.loads(storage.get_bytes(r1["contamination_key"]))["reads_sampled"] == 1_000
    assert r2["contamination"] == {"computed": False, "reason": "screened on its mate s_R1.fastq"}
    module = _module(r1["verdict"])
    assert module["status"] == "warn" and module["value"] == 5.0
    assert _module(r2["verdict"]) is None
    metadata = _qc_metadata(result)
    assert metadata["fastq_contamination_percent"].value == 5.0
    assert metadata["contamination_references"].value == "bugbacter"
    assert "bugbacter" in {r.data["reference"] for r in metadata["contamination"].records}


def test_qc_metrics_without_contaminants_says_not_configured(tmp_path: Path, world: dict) -> None:
    storage, result = _materialize(tmp_path, world, [])
    summary = json.loads(storage.get_bytes(zones.processed_key("S1", "qc_metrics", "qc.json")))
    for entry in summary["files"]:
        assert entry["contamination"] == {"computed": False, "reason": "not configured"}
        assert _module(entry["verdict"]) is None
    assert not list((tmp_path / "zones" / "processed" / "S1" / "qc_metrics").glob("contamination-*"))
    metadata = _qc_metadata(result)
    assert metadata["contamination"].value == "not configured"
    assert "fastq_contamination_percent" not in metadata


# --- the demo -----------------------------------------------------------------------------------


def test_demo_sample_a_carries_half_a_percent_of_contaminant_reads(tmp_path: Path) -> None:
    from genoflow_dagster.demo.generate import SAMPLE_A, generate_demo

    demo = generate_demo(tmp_path / "demo")
    r1 = demo.samples[SAMPLE_A][0]
    result = screen_contamination(r1, demo.reference_fasta, [demo.contaminant_fasta])
    pairs = result["reads_sampled"] - demo.contaminant_pairs
    assert demo.contaminant_pairs == round(0.005 * pairs) == 105
    assert result["whole_file"] is True
    assert result["references"][1]["name"] == "demo_bacterium"
    assert result["references"][1]["reads_best_hit"] == demo.contaminant_pairs
    assert result["contamination_percent"] == round(100 * 105 / result["reads_sampled"], 4) == 0.4975
    assert _module(grade({"format": "fastq", "total_reads": 1, "min_length": 100, "max_length": 100,
                          "contamination": result}, load_profile("standard")))["status"] == "pass"


def test_genoflow_qc_screens_with_contaminant_and_grades_the_floor(world: dict) -> None:
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "genoflow_dagster.cli", "qc", str(world["fastq"]), "--json",
                          "--reference", str(world["target"]), "--contaminant", str(world["bug"])],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)
    assert payload["contamination"]["contamination_percent"] == 5.0
    [floor] = [m for m in payload["modules"] if m["metric"] == "contamination_percent"]
    assert (floor["status"], floor["value"], floor["fail"]) == ("warn", 5.0, 5)

    no_target = subprocess.run([sys.executable, "-m", "genoflow_dagster.cli", "qc", str(world["fastq"]),
                                "--contaminant", str(world["bug"])], capture_output=True, text=True, timeout=120)
    assert no_target.returncode == 2 and "--contaminant needs --reference" in no_target.stderr
