"""`genoflow reference add` on a real genome (SARS-CoV-2 MN908947.3 FASTA and its NCBI GFF3, ../shared/realdata):
the manifest's checksums, the .fai and the sequence dictionary agree with sha256sum and Debian's samtools, the
minimap2 index is where the pipeline looks and Debian's minimap2 maps real reads (ERR5069949) with it; bad input
is refused with a plain message; GENOFLOW_REFERENCE chooses, and the demo's reference is never chosen implicitly."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mappy
import pytest

from genoflow_dagster import references, settings
from genoflow_dagster.references import (
    DEMO_REFERENCE,
    ReferenceProblem,
    UnknownReference,
    add_reference,
    chosen_reference,
    indexed_reference,
    list_references,
)
from genoflow_dagster.resources.reference import ReferenceData

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
FASTA = REALDATA / "MN908947.3.fasta"
GFF = REALDATA / "MN908947.3.gff"
GENOFLOW = Path(sys.executable).with_name("genoflow")

pytestmark = pytest.mark.skipif(not FASTA.is_file(), reason="../shared/realdata not present")


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    for key in [k for k in os.environ if k.startswith("GENOFLOW_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("GENOFLOW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENOFLOW_", "DAGSTER_"))}
    env.update({k: v for k, v in os.environ.items() if k == "GENOFLOW_DATA_DIR"}, **(env_extra or {}))
    return subprocess.run([str(GENOFLOW), *args], env=env, capture_output=True, text=True, timeout=300)


def _renamed_copy(tmp_path: Path, name: str) -> Path:
    """The real genome with its one contig renamed (MN908947.3 -> `name`)."""
    copy = tmp_path / f"{name}.fasta"
    lines = FASTA.read_text().splitlines(keepends=True)
    copy.write_text(f">{name} renamed copy of MN908947.3\n" + "".join(lines[1:]))
    return copy


def test_add_records_checksums_and_indexes_that_agree_with_the_reference_tools(data_dir, tmp_path):
    manifest = add_reference(FASTA, name="sars2", annotation=GFF)
    folder = data_dir / "references" / "sars2"
    assert json.loads((folder / "reference.json").read_text()) == manifest

    stored = {manifest["fasta"]["path"]: manifest["fasta"]["sha256"],
              manifest["annotation"]["path"]: manifest["annotation"]["sha256"],
              **{e["path"]: e["sha256"] for e in manifest["fasta"]["indexes"].values()}}
    assert set(stored) == {"MN908947.3.fasta", "MN908947.3.gff", "MN908947.3.fasta.fai", "MN908947.3.dict"}
    for relative, sha in stored.items():
        sha256sum = subprocess.run(["sha256sum", str(folder / relative)], capture_output=True, text=True, check=True)
        assert sha256sum.stdout.split()[0] == sha, relative
    assert manifest["fasta"]["sha256"] == subprocess.run(["sha256sum", str(FASTA)], capture_output=True, text=True,
                                                         check=True).stdout.split()[0]  # the copy is the source

    # samtools (Debian) on a copy of the source gives the same .fai and the same per-contig MD5
    theirs = tmp_path / "samtools" / FASTA.name
    theirs.parent.mkdir()
    shutil.copyfile(FASTA, theirs)
    subprocess.run(["samtools", "faidx", str(theirs)], check=True)
    assert (folder / "MN908947.3.fasta.fai").read_text() == Path(f"{theirs}.fai").read_text()
    their_dict = subprocess.run(["samtools", "dict", str(theirs)], capture_output=True, text=True, check=True).stdout
    their_m5 = {f["SN"]: f["M5"] for f in (dict(t.split(":", 1) for t in line.split("\t")[1:])
                                          for line in their_dict.splitlines() if line.startswith("@SQ"))}
    assert their_m5 == {s["name"]: s["md5"] for s in manifest["sequences"]} == {
        "MN908947.3": "105c82802b67521950854a851fc6eefd"}
    assert manifest["sequences"] == [{"name": "MN908947.3", "length": 29903, "md5": their_m5["MN908947.3"]}]
    report = manifest["contig_report"]
    assert (report["contigs"], report["total_length"], report["alt"], report["decoy"]) == (1, 29903, 0, 0)
    assert report["convention"].startswith("other")  # an accession, neither chr1 nor 1

    # the minimap2 index is the one the pipeline uses: a run's indexed_reference finds it and builds nothing
    mmi = Path(manifest["minimap2_index"]["path"])
    built = mmi.stat().st_mtime_ns
    ref = indexed_reference(folder / "MN908947.3.fasta")
    assert ref.mmi == mmi and mmi.stat().st_mtime_ns == built and ref.sha256 == manifest["fasta"]["sha256"]
    assert mmi.is_relative_to(settings.reference_cache_dir())
    # ... and it is usable: Debian's minimap2 maps the real ERR5069949 reads with it, mappy finds a known stretch
    paf = subprocess.run(["minimap2", "-x", "sr", str(mmi), str(REALDATA / "ERR5069949_test_1.fastq.gz")],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(paf) > 10 and all(line.split("\t")[5] == "MN908947.3" for line in paf)
    genome = "".join(FASTA.read_text().splitlines()[1:])
    hit = next(mappy.Aligner(str(mmi)).map(genome[21_562:21_712]))  # the start of the spike (S) gene
    assert (hit.ctg, hit.r_st, hit.r_en) == ("MN908947.3", 21_562, 21_712)


def test_adding_the_same_files_again_changes_nothing_and_a_different_genome_needs_force(data_dir, tmp_path):
    first = add_reference(FASTA, name="sars2")
    assert add_reference(FASTA, name="sars2") == first
    other = _renamed_copy(tmp_path, "chrMN908947.3")
    with pytest.raises(ReferenceProblem, match=r"already added as 'sars2'.*--force") as refused:
        add_reference(other, name="sars2")
    assert refused.value.usage
    replaced = add_reference(other, name="sars2", force=True)
    assert [s["name"] for s in replaced["sequences"]] == ["chrMN908947.3"]
    assert sorted(p.name for p in (data_dir / "references").iterdir()) == ["sars2"]  # no staging or old copy left


def test_a_chr_prefix_mismatch_between_genome_and_annotation_is_refused_naming_both_conventions(data_dir, tmp_path):
    genome = _renamed_copy(tmp_path, "chrMN908947.3")
    with pytest.raises(ReferenceProblem) as refused:
        add_reference(genome, name="prefixed", annotation=GFF)
    problem = refused.value
    assert problem.reason == "CONTIG_NAMING_MISMATCH" and not problem.usage
    assert "'MN908947.3' where the genome has 'chrMN908947.3'" in problem.message
    assert "with the 'chr' prefix (UCSC style: chr1, chrM)" in problem.message
    assert "without the 'chr' prefix (Ensembl/NCBI style: 1, MT)" in problem.message
    assert not (data_dir / "references" / "prefixed").exists()
    assert [p.name for p in (data_dir / "references").iterdir()] == []  # the half-built copy is gone

    done = _cli("reference", "add", str(genome), "--gff", str(GFF))
    assert done.returncode == 1
    assert "CONTIG_NAMING_MISMATCH" in done.stderr and "chrMN908947.3" in done.stderr
    assert "Traceback" not in done.stderr


def test_known_sites_named_chrM_for_a_genome_naming_it_MT_are_refused(data_dir, tmp_path):
    """minimap2's orangutan mitochondrion (../shared/realworld) named MT as Ensembl does, and GATK's real chrM
    gVCF as known sites: the UCSC/Ensembl mitochondrion names are the same contig in two conventions."""
    realworld = REALDATA.parent / "realworld"
    genome = tmp_path / "mt.fa"
    lines = (realworld / "fasta" / "minimap2__test__MT-orang.fa").read_text().splitlines(keepends=True)
    genome.write_text(">MT\n" + "".join(lines[1:]))
    vcf = realworld / "vcf" / ("gatk__src__test__resources__org__broadinstitute__hellbender__tools__walkers__"
                               "CombineGVCFs__T-NGS_9009.chrM.gvcf.gz")
    with pytest.raises(ReferenceProblem, match="has 'chrM' where the genome has 'MT'") as refused:
        add_reference(genome, known_sites=vcf)
    assert refused.value.reason == "CONTIG_NAMING_MISMATCH"
    assert add_reference(genome)["contig_report"]["convention"] == "Ensembl/NCBI (1, MT)"


def test_an_invalid_fasta_is_refused_with_its_code_and_line(data_dir, tmp_path):
    lines = FASTA.read_text().splitlines(keepends=True)
    broken = tmp_path / "broken.fasta"
    broken.write_text("".join(lines[:100]) + ">\n" + "".join(lines[100:]))  # a header without a name, line 101
    with pytest.raises(ReferenceProblem) as refused:
        add_reference(broken)
    assert (refused.value.error_code, refused.value.reason, refused.value.line) == (
        "VALIDATION_ERROR", "FASTA_EMPTY_HEADER", 101)
    assert not (data_dir / "references" / "broken").exists()
    done = _cli("reference", "add", str(broken))
    assert done.returncode == 1
    assert "VALIDATION_ERROR/FASTA_EMPTY_HEADER" in done.stderr and "at line 101" in done.stderr
    assert _cli("reference", "add", str(tmp_path / "missing.fa")).returncode == 2
    assert _cli("reference", "add", str(FASTA), "--name", "../escape").returncode == 2


def test_the_cli_adds_lists_and_says_how_to_use_the_reference(data_dir):
    done = _cli("reference", "add", str(FASTA), "--gff", str(GFF))
    assert done.returncode == 0, done.stderr
    assert "export GENOFLOW_REFERENCE=MN908947.3" in done.stdout  # the name defaults to the FASTA's stem
    assert "1 contig(s), 29,903 bp" in done.stdout
    listed = [json.loads(line) for line in _cli("reference", "list", "--json").stdout.splitlines()]
    assert [(r["name"], r["in_use"], r["contigs"]) for r in listed] == [("MN908947.3", True, 1)]


def test_genoflow_reference_chooses_an_added_reference_and_explicit_variables_override(data_dir, tmp_path,
                                                                                       monkeypatch):
    add_reference(FASTA, name="sars2", annotation=GFF)
    add_reference(_renamed_copy(tmp_path, "other"), name="other")
    assert chosen_reference() is None  # two added, none named: the lab must choose
    with pytest.raises(FileNotFoundError, match="several: set GENOFLOW_REFERENCE"):
        ReferenceData(**settings.reference_paths()).fasta()

    monkeypatch.setenv("GENOFLOW_REFERENCE", "sars2")
    folder = data_dir / "references" / "sars2"
    paths = settings.reference_paths()
    assert paths["fasta_path"] == str(folder / "MN908947.3.fasta")
    assert paths["annotation_path"] == str(folder / "MN908947.3.gff")
    assert paths["known_sites_path"] is None
    assert ReferenceData(**paths).annotation() == folder / "MN908947.3.gff"
    monkeypatch.setenv("GENOFLOW_ANNOTATION", "off")
    assert settings.reference_paths()["annotation_path"] is None
    monkeypatch.setenv("GENOFLOW_REFERENCE_FASTA", str(FASTA))
    assert settings.reference_paths()["fasta_path"] == str(FASTA)

    monkeypatch.setenv("GENOFLOW_REFERENCE", "sars-2")
    with pytest.raises(UnknownReference, match=r"GENOFLOW_REFERENCE=sars-2: .*\(added: other, sars2\)"):
        settings.reference_paths()
    done = _cli("doctor", "--json", env_extra={"GENOFLOW_REFERENCE": "sars-2"})
    found = {f["item"]: f for f in map(json.loads, done.stdout.splitlines())}
    assert done.returncode == 1 and found["reference"]["status"] == "error"
    assert "added: other, sars2" in found["reference"]["detail"]


def test_the_demo_reference_is_never_chosen_implicitly(data_dir, tmp_path, monkeypatch):
    add_reference(FASTA, name=DEMO_REFERENCE, annotation=GFF)
    assert chosen_reference() is None
    paths = settings.reference_paths()
    assert paths["fasta_path"] == "" and paths["annotation_path"] is None
    with pytest.raises(FileNotFoundError, match=r"genoflow reference add FASTA .*GENOFLOW_REFERENCE") as missing:
        ReferenceData(**paths).fasta()
    assert "used only by `genoflow demo`" in str(missing.value)
    doctor = _cli("doctor", "--json")
    found = {f["item"]: f for f in map(json.loads, doctor.stdout.splitlines())}
    assert found["reference genome"]["status"] == "error"
    assert "genoflow reference add" in found["reference genome"]["detail"]
    run = _cli("run", "--sample", "S1", str(REALDATA / "ERR5069949_test_1.fastq.gz"),
               env_extra={"DAGSTER_HOME": str(tmp_path / "home")})
    assert run.returncode == 2 and "genoflow reference add" in run.stderr and "GENOFLOW_REFERENCE" in run.stderr
    assert not (data_dir / "landing").exists()  # refused before any file landed

    # one reference of the lab's own besides the demo's: that one is used, and doctor says why
    add_reference(_renamed_copy(tmp_path, "lab_genome"), name="lab")
    chosen = chosen_reference()
    assert chosen is not None and chosen.name == "lab" and "only added reference" in chosen.how
    doctor = _cli("doctor", "--json")
    found = {f["item"]: f for f in map(json.loads, doctor.stdout.splitlines())}
    assert found["reference"]["value"] == "lab" and "only added reference" in found["reference"]["detail"]
    monkeypatch.setenv("GENOFLOW_REFERENCE", DEMO_REFERENCE)  # named, the demo's reference is used
    assert chosen_reference().name == DEMO_REFERENCE
    assert [m["name"] for m in list_references()] == ["demo", "lab"]


def test_long_steps_report_progress_at_a_steady_cadence(data_dir, tmp_path, monkeypatch):
    """A genome of 400 contigs, each the real SARS-CoV-2 sequence (12 MB), with the cadence shortened to a few
    milliseconds: validating, copying, indexing and checksumming each print lines with MB done, a rate and
    an ETA (or, once an indexer has read everything, how long it has been working), and a closing line."""
    sequence = "".join(FASTA.read_text().splitlines(keepends=True)[1:])
    big = tmp_path / "many.fa"
    with open(big, "w") as out:
        for i in range(400):
            out.write(f">copy{i}\n{sequence}")
    monkeypatch.setattr(references, "PROGRESS_SECONDS", 0.002)
    lines: list[str] = []
    add_reference(big, progress=lines.append)
    text = "\n".join(lines)
    for step in ("validating the genome FASTA many.fa", "copying many.fa", "samtools faidx many.fa",
                 "samtools dict many.fa", "minimap2 index of many.fa"):
        assert f"{step}: done, 12 MB" in text, step  # the closing line of each
        during = [line for line in lines if line.startswith(f"{step}: ") and "done" not in line]
        assert during and all(" of 12 MB (" in line or line.endswith("so far") for line in during), (step, during)
        assert any("B/s, ETA" in line for line in during), (step, during)  # MB/s, or GB/s on a fast disk


def test_the_demo_removes_the_copies_earlier_demos_left_in_the_data_dirs_defaults(tmp_path):
    """Before `references/`, the demo copied its files into data/reference/, where they became every sample's
    defaults; the demo now removes those copies, but only where byte-identical to its own files."""
    from genoflow_dagster.demo.generate import generate_demo
    from genoflow_dagster.demo.run import _remove_copies_of_old_demos

    demo = generate_demo(tmp_path / "demo", contigs=(("chr1", 20_000),), coverage=1.0, n_snvs=2, n_indels=1)
    old = tmp_path / "data" / "reference"
    (old / "contaminants").mkdir(parents=True)
    shutil.copyfile(demo.reference_fasta, old / "genome.fa")
    shutil.copyfile(demo.known_sites_vcf, old / "known_sites.vcf.gz")
    shutil.copyfile(f"{demo.known_sites_vcf}.tbi", old / "known_sites.vcf.gz.tbi")
    shutil.copyfile(demo.contaminant_fasta, old / "contaminants" / demo.contaminant_fasta.name)
    shutil.copyfile(GFF, old / "annotation.gtf")  # a lab's own file under the demo's name: kept
    _remove_copies_of_old_demos(old, demo)
    assert sorted(str(p.relative_to(old)) for p in old.rglob("*")) == ["annotation.gtf", "contaminants"]


def test_a_bgzip_genome_gets_its_gzi_and_a_plain_gzip_one_is_refused_with_the_fix(data_dir, tmp_path):
    bgzipped = tmp_path / "MN908947.3.fa.gz"
    with open(bgzipped, "wb") as out:
        subprocess.run(["bgzip", "-c", str(FASTA)], stdout=out, check=True)
    manifest = add_reference(bgzipped)
    folder = data_dir / "references" / "MN908947.3"
    assert manifest["fasta"]["compression"] == "bgzip" and set(manifest["fasta"]["indexes"]) == {"fai", "dict", "gzi"}
    theirs = tmp_path / "theirs.fa.gz"
    shutil.copyfile(bgzipped, theirs)
    subprocess.run(["samtools", "faidx", str(theirs)], check=True)
    assert (folder / "MN908947.3.fa.gz.fai").read_bytes() == Path(f"{theirs}.fai").read_bytes()
    assert (folder / "MN908947.3.fa.gz.gzi").read_bytes() == Path(f"{theirs}.gzi").read_bytes()
    assert manifest["sequences"][0]["md5"] == "105c82802b67521950854a851fc6eefd"  # M5 of the sequence, not the bytes

    gzipped = tmp_path / "plain.fa.gz"
    subprocess.run(f"gzip -c {FASTA} > {gzipped}", shell=True, check=True)
    with pytest.raises(ReferenceProblem, match=r"compressed with gzip; .*bgzip > plain\.bgzip\.fa\.gz") as refused:
        add_reference(gzipped)
    assert refused.value.reason == "FASTA_NOT_BGZIP"
