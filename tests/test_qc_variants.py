"""VCF metrics against `bcftools stats` SN, TSTV and PSC lines (skipped without bcftools)."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pysam
import pytest

from genoflow_dagster.qc import compute_metrics
from genoflow_dagster.qc.variants import vcf_metrics

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
DATA = Path(__file__).parent / "data" / "qc"
HAVE_BCFTOOLS = shutil.which("bcftools") is not None

SN_FIELDS = {
    "number of samples:": "samples",
    "number of records:": "records",
    "number of no-ALTs:": "no_alts",
    "number of SNPs:": "snps",
    "number of MNPs:": "mnps",
    "number of indels:": "indels",
    "number of others:": "others",
    "number of multiallelic sites:": "multiallelic_sites",
    "number of multiallelic SNP sites:": "multiallelic_snp_sites",
}


def bcftools_stats(path: Path) -> tuple[dict[str, int], dict[str, float], dict[str, dict[str, int]]]:
    """SN and TSTV from a plain run, PSC from a `-s -` run (sample subsetting can drop odd records)."""
    plain = subprocess.run(["bcftools", "stats", str(path)], capture_output=True, text=True, check=True)
    per_sample = subprocess.run(["bcftools", "stats", "-s", "-", str(path)], capture_output=True, text=True,
                                check=True)
    sn: dict[str, int] = {}
    tstv: dict[str, float] = {}
    psc: dict[str, dict[str, int]] = {}
    for line in plain.stdout.splitlines() + [x for x in per_sample.stdout.splitlines() if x.startswith("PSC")]:
        f = line.split("\t")
        if f[0] == "SN" and f[2] in SN_FIELDS:
            sn[SN_FIELDS[f[2]]] = int(f[3])
        elif f[0] == "TSTV":
            tstv = {"ts": int(f[2]), "tv": int(f[3]), "ts_first_alt": int(f[5]), "tv_first_alt": int(f[6])}
        elif f[0] == "PSC":
            psc[f[2]] = {"hom_ref": int(f[3]), "hom_alt": int(f[4]), "het": int(f[5]), "ts": int(f[6]),
                         "tv": int(f[7]), "indels": int(f[8]), "hap_ref": int(f[11]), "hap_alt": int(f[12]),
                         "missing": int(f[13])}
    return sn, tstv, psc


def assert_matches_bcftools(path: Path) -> dict:
    m = vcf_metrics(path)
    sn, tstv, psc = bcftools_stats(path)
    assert {k: m[k] for k in sn} == sn
    if tstv:
        assert {k: m[k] for k in tstv} == tstv
    for sample, counts in psc.items():
        assert {k: m["per_sample"][sample][k] for k in counts} == counts, sample
    return m


def write_random_vcf(path: Path, n: int = 600, samples: int = 4, seed: int = 11) -> Path:
    rnd = random.Random(seed)
    names = [f"S{i}" for i in range(samples)]
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chr1,length=100000>",
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names)]
    pos = 0
    for i in range(n):
        pos += rnd.randint(1, 150)
        ref = rnd.choice("ACGT")
        kind = rnd.random()
        if kind < 0.55:
            alts = [rnd.choice([b for b in "ACGT" if b != ref])]
        elif kind < 0.65:
            alts = rnd.sample([b for b in "ACGT" if b != ref], 2)
        elif kind < 0.75:
            alts = [ref + "".join(rnd.choice("ACGT") for _ in range(rnd.randint(1, 5)))]
        elif kind < 0.82:
            ref = ref + "".join(rnd.choice("ACGT") for _ in range(rnd.randint(1, 4)))
            alts = [ref[0]]
        elif kind < 0.87:
            ref = ref + rnd.choice("ACGT")
            alts = ["".join(rnd.choice([b for b in "ACGT" if b != r]) for r in ref)]
        elif kind < 0.9:
            alts = ["*", rnd.choice([b for b in "ACGT" if b != ref])]
        elif kind < 0.93:
            alts = [rnd.choice([b for b in "ACGT" if b != ref]), "<NON_REF>"]
        elif kind < 0.96:
            alts = ["."]
        else:
            alts = [ref + "T", rnd.choice([b for b in "ACGT" if b != ref])]
        n_alt = 0 if alts == ["."] else len(alts)
        gts = []
        for _ in names:
            r = rnd.random()
            if r < 0.08:
                gts.append(rnd.choice(["./.", ".", "./1", ".|0"]))
            elif r < 0.12:
                gts.append(str(rnd.randint(0, n_alt)))
            else:
                a, b = rnd.randint(0, n_alt), rnd.randint(0, n_alt)
                gts.append(f"{a}{rnd.choice('/|')}{b}")
        vid = f"rs{i}" if rnd.random() < 0.3 else "."
        lines.append(f"chr1\t{pos}\t{vid}\t{ref}\t{','.join(alts)}\t50\tPASS\t.\tGT\t" + "\t".join(gts))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.skipif(not HAVE_BCFTOOLS, reason="bcftools not installed")
def test_edge_cases_match_bcftools() -> None:
    m = assert_matches_bcftools(DATA / "edge_cases.vcf")
    # the hand-checked numbers, so the test still says something where bcftools is absent
    assert (m["snps"], m["mnps"], m["indels"], m["others"], m["no_alts"]) == (7, 3, 3, 1, 2)


def test_edge_cases_known_numbers() -> None:
    m = vcf_metrics(DATA / "edge_cases.vcf")
    assert (m["records"], m["multiallelic_sites"], m["multiallelic_snp_sites"], m["ts"], m["tv"]) == (14, 6, 3, 6, 3)
    assert m["per_sample"]["S1"] == {"hom_ref": 2, "hom_alt": 1, "het": 4, "hap_ref": 0, "hap_alt": 0,
                                     "missing": 2, "indels": 1, "ts": 4, "tv": 0}
    assert m["indel_length_distribution"] == {"-2": 1, "-1": 1, "1": 1}
    assert m["known"] == 1 and m["novel"] == 13


@pytest.mark.skipif(not HAVE_BCFTOOLS, reason="bcftools not installed")
@pytest.mark.parametrize("compress", [False, True])
def test_random_callset_matches_bcftools(tmp_path: Path, compress: bool) -> None:
    path = write_random_vcf(tmp_path / "calls.vcf")
    if compress:
        pysam.tabix_compress(str(path), str(path) + ".gz")
        path = Path(str(path) + ".gz")
    m = assert_matches_bcftools(path)
    assert m["het_hom_ratio"] == pytest.approx(
        sum(s["het"] for s in m["per_sample"].values()) / sum(s["hom_alt"] for s in m["per_sample"].values()),
        abs=1e-4)
    assert 0 < m["call_rate"] < 1


def test_known_sites(tmp_path: Path) -> None:
    calls = tmp_path / "calls.vcf"
    calls.write_text((DATA / "edge_cases.vcf").read_text().replace("rs1", "."))
    known = tmp_path / "known.vcf"
    known.write_text("##fileformat=VCFv4.2\n##contig=<ID=1,length=1000>\n"
                     "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                     "1\t10\trsA\tA\tG\t.\t.\t.\n1\t20\trsB\tC\tA\t.\t.\t.\n1\t30\trsC\tAC\tGG\t.\t.\t.\n")
    m = compute_metrics(calls, "vcf", known_sites=str(known))
    assert m["format"] == "vcf"
    assert m["known"] == 2 and m["novel"] == 12
    indexed = Path(str(known) + ".gz")
    pysam.tabix_compress(str(known), str(indexed))
    pysam.tabix_index(str(indexed), preset="vcf")
    assert vcf_metrics(calls, known_sites=str(indexed))["known"] == 2


def corpus_vcfs() -> list[Path]:
    folder = CORPORA / "vcf" / "valid"
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".bz2")) if folder.is_dir() else []


@pytest.mark.skipif(not HAVE_BCFTOOLS or not corpus_vcfs(), reason="bcftools or corpora absent")
@pytest.mark.parametrize("path", corpus_vcfs(), ids=lambda p: p.name)
def test_corpus_matches_bcftools(path: Path) -> None:
    try:
        bcftools_stats(path)
    except subprocess.CalledProcessError:
        pytest.skip("bcftools cannot read it")
    with pysam.VariantFile(str(path)) as vf:
        version = vf.header.version
    if version >= "VCFv4.4":
        # pysam bundles a newer htslib than bcftools 1.16's; they read 4.4 features (prefixed phasing,
        # SVLEN on symbolic alleles) differently, so neither is the reference there.
        pytest.skip(f"{version}: bcftools 1.16 predates VCF 4.4 support")
    try:
        assert_matches_bcftools(path)
    except (ValueError, OSError) as exc:
        pytest.skip(f"pysam rejects it: {exc}")
