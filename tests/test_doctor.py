"""`genoflow doctor` and the reference resource on real files (SARS-CoV-2 MN908947.3 genome and annotation,
../shared/realdata): configured files are checked and named, a misspelt or invalid one is an error, `off`
switches a feature off on purpose, and a contig-naming mismatch is explained."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genoflow_dagster import settings
from genoflow_dagster.resources.reference import ReferenceData

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
GENOFLOW = Path(sys.executable).with_name("genoflow")


@pytest.fixture
def lab(tmp_path, monkeypatch):
    for name in ("MN908947.3.fasta", "MN908947.3.gff"):
        shutil.copyfile(REALDATA / name, tmp_path / name)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GENOFLOW_", "DAGSTER_"))}
    env.update(GENOFLOW_DATA_DIR=str(tmp_path / "data"), DAGSTER_HOME=str(tmp_path / "home"),
               GENOFLOW_REFERENCE_FASTA=str(tmp_path / "MN908947.3.fasta"),
               GENOFLOW_ANNOTATION=str(tmp_path / "MN908947.3.gff"))
    for key in [k for k in os.environ if k.startswith(("GENOFLOW_", "DAGSTER_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith(("GENOFLOW_", "DAGSTER_")):
            monkeypatch.setenv(key, value)
    return tmp_path, env


def _doctor(env: dict[str, str]) -> tuple[int, dict[str, dict]]:
    done = subprocess.run([str(GENOFLOW), "doctor", "--json"], env=env, capture_output=True, text=True, timeout=120)
    findings = [json.loads(line) for line in done.stdout.splitlines()]
    return done.returncode, {f["item"]: f for f in findings}


def test_a_real_genome_and_annotation_pass(lab):
    _, env = lab
    code, found = _doctor(env)
    assert code == 0, found
    assert found["reference genome"]["status"] == "ok" and "29,903 bp" in found["reference genome"]["detail"]
    assert found["gene annotation"]["status"] == "ok"
    assert found["known-sites VCF"]["status"] == "off"


def test_a_misspelt_annotation_path_is_an_error_naming_the_file(lab, monkeypatch):
    root, env = lab
    env["GENOFLOW_ANNOTATION"] = str(root / "MN908947.gff")  # ".3" forgotten
    code, found = _doctor(env)
    assert code == 1
    assert found["gene annotation"]["status"] == "error" and found["gene annotation"]["value"].endswith("MN908947.gff")
    monkeypatch.setenv("GENOFLOW_ANNOTATION", env["GENOFLOW_ANNOTATION"])
    with pytest.raises(FileNotFoundError, match=r"MN908947\.gff; fix GENOFLOW_ANNOTATION"):
        ReferenceData(**settings.reference_paths()).annotation()


def test_an_invalid_annotation_is_an_error_with_its_reason_and_line(lab, monkeypatch):
    root, env = lab
    broken = root / "broken.gff"
    lines = (root / "MN908947.3.gff").read_text().splitlines()
    body = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    fields = lines[body[2]].split("\t")
    fields[3], fields[4] = fields[4], str(int(fields[4]) - 100)  # end before start
    lines[body[2]] = "\t".join(fields)
    broken.write_text("\n".join(lines) + "\n")
    env["GENOFLOW_ANNOTATION"] = str(broken)
    code, found = _doctor(env)
    assert code == 1 and found["gene annotation"]["status"] == "error"
    assert f"line {body[2] + 1}" in found["gene annotation"]["detail"], found["gene annotation"]
    monkeypatch.setenv("GENOFLOW_ANNOTATION", str(broken))
    with pytest.raises(ValueError, match=f"broken.gff is not usable: .* at line {body[2] + 1}"):
        ReferenceData(**settings.reference_paths()).annotation()


def test_off_switches_a_feature_off_and_a_chr_prefix_mismatch_is_explained(lab, monkeypatch):
    root, env = lab
    env["GENOFLOW_ANNOTATION"] = "off"
    bed = root / "targets.bed"
    bed.write_text("chrMN908947.3\t100\t500\n")
    env["GENOFLOW_TARGETS"] = str(bed)
    code, found = _doctor(env)
    assert code == 1
    assert found["gene annotation"]["status"] == "off" and found["gene annotation"]["detail"] == "switched off"
    assert found["targets BED"]["status"] == "error" and "'chr' prefix" in found["targets BED"]["detail"]
    monkeypatch.setenv("GENOFLOW_ANNOTATION", "off")
    assert ReferenceData(**settings.reference_paths()).annotation() is None
