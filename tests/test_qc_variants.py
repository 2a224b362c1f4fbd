"""VCF metrics against the `bcftools stats` CLI (skipped without bcftools) and a per-record oracle.

`vcf_metrics` runs pysam's bundled bcftools (1.24); the installed CLI is bcftools 1.16. They
agree on every field but per-sample ts/tv of het ALT/ALT calls, which 1.24 counts for both
ALTs: those two are checked against `oracle_metrics`, a per-genotype Python count written
from htslib's rules, which also checks everything else on every fixture that has no CLI.
"""

from __future__ import annotations

import bz2
import gzip
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import pysam
import pysam.bcftools
import pytest

from genoflow_dagster.qc import compute_metrics
from genoflow_dagster.qc import variants as variants_module
from genoflow_dagster.qc.variants import vcf_metrics

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
DATA = Path(__file__).parent / "data" / "qc"
HAVE_BCFTOOLS = shutil.which("bcftools") is not None
needs_bcftools = pytest.mark.skipif(not HAVE_BCFTOOLS, reason="bcftools not installed")

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
PSC_FIELDS = {3: "hom_ref", 4: "hom_alt", 5: "het", 6: "ts", 7: "tv", 8: "indels", 11: "hap_ref", 12: "hap_alt",
              13: "missing"}
# per-sample fields bcftools 1.16 counts as 1.24 does (ts/tv differ on het ALT/ALT calls)
PSC_SAME_IN_1_16 = ("hom_ref", "hom_alt", "het", "indels", "hap_ref", "hap_alt", "missing")


def bcftools_stats(path: Path) -> dict:
    """SN, TSTV and IDD from a plain CLI run, PSC from a `-s -` run (only when there are samples)."""
    plain = subprocess.run(["bcftools", "stats", str(path)], capture_output=True, text=True, check=True).stdout
    lines = plain.splitlines()
    if subprocess.run(["bcftools", "query", "-l", str(path)], capture_output=True, text=True,
                      check=True).stdout.strip():
        per_sample = subprocess.run(["bcftools", "stats", "-s", "-", str(path)], capture_output=True,
                                    text=True, check=True).stdout
        lines += [x for x in per_sample.splitlines() if x.startswith("PSC")]
    out: dict = {"sn": {}, "tstv": {}, "idd": {}, "psc": {}}
    for line in lines:
        f = line.split("\t")
        if f[0] == "SN" and f[2] in SN_FIELDS:
            out["sn"][SN_FIELDS[f[2]]] = int(f[3])
        elif f[0] == "TSTV":
            out["tstv"] = {"ts": int(f[2]), "tv": int(f[3]), "ts_first_alt": int(f[5]), "tv_first_alt": int(f[6])}
        elif f[0] == "IDD":
            out["idd"][f[2]] = int(f[3])
        elif f[0] == "PSC":
            out["psc"][f[2]] = {name: int(f[i]) for i, name in PSC_FIELDS.items()}
    return out


def assert_matches_bcftools(path: Path, **kwargs) -> dict:
    m = vcf_metrics(path, **kwargs)
    ref = bcftools_stats(path)
    assert {k: m[k] for k in ref["sn"]} == ref["sn"]
    if ref["tstv"]:
        assert {k: m[k] for k in ref["tstv"]} == ref["tstv"]
    assert m["indel_length_distribution"] == ref["idd"]
    assert set(m["per_sample"]) == set(ref["psc"])
    for sample, counts in ref["psc"].items():
        assert {k: m["per_sample"][sample][k] for k in PSC_SAME_IN_1_16} == \
            {k: counts[k] for k in PSC_SAME_IN_1_16}, sample
    assert m["known"] + m["novel"] == m["records"]
    return m


# --- the oracle: one record at a time, htslib's allele types via pysam ---------------------------

_TS = {frozenset("AG"), frozenset("CT")}
_BITS = {"REF": 0, "SNP": 1, "MNP": 2, "INDEL": 4, "OTHER": 8, "BND": 16, "OVERLAP": 32}
_SNP, _MNP, _INDEL, _OTHER = 1, 2, 4, 8


def oracle_metrics(path: Path, known: set[tuple[str, int, str, str]] = frozenset()) -> dict:
    """What the module docstring promises, counted per record and per genotype in Python."""
    c = dict.fromkeys(("records", "no_alts", "snps", "mnps", "indels", "others", "multiallelic_sites",
                       "multiallelic_snp_sites", "ts", "tv", "ts_first_alt", "tv_first_alt", "known", "novel"), 0)
    idd: dict[int, int] = {}
    with pysam.VariantFile(str(path)) as vf:
        samples = list(vf.header.samples)
        psc = {s: dict.fromkeys(("hom_ref", "hom_alt", "het", "hap_ref", "hap_alt", "missing", "indels",
                                 "ts", "tv"), 0) for s in samples}
        for rec in vf:
            c["records"] += 1
            alleles = rec.alleles or (rec.ref,)
            bits = [_BITS.get(t, _OTHER) for t in (rec.alleles_variant_types or ("REF",))]
            line = 0
            for b in bits[1:]:
                line |= b
            for key, bit in (("snps", _SNP), ("mnps", _MNP), ("indels", _INDEL), ("others", _OTHER)):
                c[key] += bool(line & bit)
            c["no_alts"] += line == 0
            if len(alleles) > 2:
                c["multiallelic_sites"] += 1
                c["multiallelic_snp_sites"] += line == _SNP
            ref = alleles[0].upper()
            for i in range(1, len(alleles)):
                if bits[i] == _SNP:
                    ts = frozenset((ref[0], alleles[i][0].upper())) in _TS
                    c["ts" if ts else "tv"] += 1
                    if i == 1:
                        c["ts_first_alt" if ts else "tv_first_alt"] += 1
                elif bits[i] & _INDEL:
                    d = max(-60, min(60, len(alleles[i]) - len(alleles[0])))  # IDD clips at +-60
                    idd[d] = idd.get(d, 0) + 1
            is_known = rec.id is not None or any(
                (rec.chrom, rec.pos, ref, a.upper()) in known for a in alleles[1:])
            c["known" if is_known else "novel"] += 1
            if samples and "GT" in rec.format:
                for name, call in rec.samples.items():
                    _oracle_call(call.get("GT"), alleles, bits, psc[name])
    return {"samples": len(samples), **c, "indel_length_distribution": {str(k): idd[k] for k in sorted(idd)},
            "per_sample": psc}


def _oracle_call(gt: tuple | None, alleles: tuple[str, ...], bits: list[int], d: dict[str, int]) -> None:
    """htslib's bcf_gt_type (ial/jal: the lowest ALT index and the last other one) and bcftools 1.24 PSC."""
    if not gt or any(a is None for a in gt):
        d["missing"] += 1
        return
    if len(gt) == 1:
        d["hap_ref" if gt[0] == 0 else "hap_alt"] += 1
        return
    ial = jal = 0
    for a in gt:
        if a > 0:
            if not ial:
                ial = a
            elif a != ial:
                ial, jal = (a, ial) if a < ial else (ial, a)
    if not ial:
        d["hom_ref"] += 1
        return
    kind = bits[ial] | (bits[jal] if jal else 0)
    if kind & _INDEL:
        d["indels"] += 1
    if kind and not kind & _SNP:  # het/hom and ts/tv are SNP counts (reference-like ALTs pass)
        return
    d["het" if 0 in gt or jal else "hom_alt"] += 1
    for a in (ial, jal) if jal else (ial,):  # 1.24: both ALTs of a het ALT/ALT call
        if bits[a] == _SNP:
            d["ts" if frozenset((alleles[0][0].upper(), alleles[a][0].upper())) in _TS else "tv"] += 1


def assert_matches_oracle(path: Path, known_sites: Path | None = None,
                          known: set[tuple[str, int, str, str]] = frozenset()) -> dict:
    m = vcf_metrics(path, known_sites=str(known_sites) if known_sites else None)
    want = oracle_metrics(path, known)
    assert {k: m[k] for k in want} == want
    return m


# --- fixtures --------------------------------------------------------------------------------------

def write_random_vcf(path: Path, n: int = 600, samples: int = 4, seed: int = 11) -> Path:
    rnd = random.Random(seed)
    names = [f"S{i}" for i in range(samples)]
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chr1,length=100000>", "##contig=<ID=chr2,length=100000>",
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names)]
    pos = 0
    for i in range(n):
        pos += rnd.randint(1, 150)
        ref = rnd.choice("ACGT")
        kind = rnd.random()
        if kind < 0.50:
            alts = [rnd.choice([b for b in "ACGT" if b != ref])]
        elif kind < 0.60:
            alts = rnd.sample([b for b in "ACGT" if b != ref], rnd.choice([2, 3]))
        elif kind < 0.70:
            alts = [ref + "".join(rnd.choice("ACGT") for _ in range(rnd.choice([1, 2, 5, 70])))]
        elif kind < 0.77:
            ref = ref + "".join(rnd.choice("ACGT") for _ in range(rnd.choice([1, 3, 4, 65])))
            alts = [ref[0]]
        elif kind < 0.82:
            ref = ref + rnd.choice("ACGT")
            alts = ["".join(rnd.choice([b for b in "ACGT" if b != r]) for r in ref)]
        elif kind < 0.86:
            alts = ["*", rnd.choice([b for b in "ACGT" if b != ref])]
        elif kind < 0.90:
            alts = [rnd.choice([b for b in "ACGT" if b != ref]), "<NON_REF>"]
        elif kind < 0.93:
            alts = ["."]
        elif kind < 0.95:
            alts = ["<DEL>"]
        else:
            alts = [ref + "T", rnd.choice([b for b in "ACGT" if b != ref])]
        if rnd.random() < 0.05:
            ref, alts = ref.lower(), [a.lower() if a[0] in "ACGT" else a for a in alts]
        n_alt = 0 if alts == ["."] else len(alts)
        gts = []
        for _ in names:
            r = rnd.random()
            if r < 0.08:
                gts.append(rnd.choice(["./.", ".", "./1" if n_alt else "./0", ".|0"]))
            elif r < 0.12:
                gts.append(str(rnd.randint(0, n_alt)))
            else:
                a, b = rnd.randint(0, n_alt), rnd.randint(0, n_alt)
                gts.append(f"{a}{rnd.choice('/|')}{b}")
        vid = f"rs{i}" if rnd.random() < 0.3 else "."
        chrom = "chr1" if i < n * 2 // 3 else "chr2"
        if i == n * 2 // 3:
            pos = rnd.randint(1, 100)
        lines.append(f"{chrom}\t{pos}\t{vid}\t{ref}\t{','.join(alts)}\t50\tPASS\t.\tGT\t" + "\t".join(gts))
    path.write_text("\n".join(lines) + "\n")
    return path


def known_sites_for(calls: Path, path: Path, seed: int = 5) -> tuple[Path, set[tuple[str, int, str, str]]]:
    """A known-sites VCF that holds some of `calls`' alleles (some in another case, some with one
    ALT of several, some at the right position with the wrong allele) and sites of its own."""
    rnd = random.Random(seed)
    rows, keys = [], set()
    with pysam.VariantFile(str(calls)) as vf:
        for rec in vf:
            if not rec.alts or rec.alts == (".",) or rnd.random() < 0.5:
                continue
            wrong = "G" if rec.alts[0].upper() != "G" else "C"  # right place, (usually) wrong allele
            alt = wrong if rnd.random() < 0.2 else rnd.choice(rec.alts)
            ref = rec.ref.lower() if rnd.random() < 0.2 else rec.ref.upper()
            sid = rnd.choice([f"rsK{rec.pos}", "."])
            rows.append((rec.chrom, rec.pos, sid, ref, f"{alt},T" if rnd.random() < 0.1 else alt))
    for i in range(50):
        rows.append(("chr1", 100_000 - i, ".", "A", "C"))
    rows.append(("chrUn", 10, ".", "A", "C"))
    rows.sort(key=lambda r: (r[0], r[1]))
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chr1,length=100000>", "##contig=<ID=chr2,length=100000>",
             "##contig=<ID=chrUn,length=1000>", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for chrom, pos, sid, ref, alt in rows:
        lines.append(f"{chrom}\t{pos}\t{sid}\t{ref}\t{alt}\t.\t.\t.")
        for a in alt.split(","):
            keys.add((chrom, pos, ref.upper(), a.upper()))
    path.write_text("\n".join(lines) + "\n")
    return path, keys


def bgzip_indexed(path: Path) -> Path:
    out = Path(str(path) + ".gz")
    pysam.tabix_compress(str(path), str(out), force=True)
    pysam.tabix_index(str(out), preset="vcf", force=True)
    return out


# --- tests -----------------------------------------------------------------------------------------

@needs_bcftools
def test_edge_cases_match_bcftools() -> None:
    m = assert_matches_bcftools(DATA / "edge_cases.vcf")
    # the hand-checked numbers, so the test still says something where bcftools is absent
    assert (m["snps"], m["mnps"], m["indels"], m["others"], m["no_alts"]) == (7, 3, 3, 1, 2)


def test_edge_cases_known_numbers() -> None:
    m = assert_matches_oracle(DATA / "edge_cases.vcf")
    assert (m["records"], m["multiallelic_sites"], m["multiallelic_snp_sites"], m["ts"], m["tv"]) == (14, 6, 3, 6, 3)
    # S1's 1/2 calls: C>T,A adds a ts and a tv, A>*,G a ts (bcftools 1.16 gave ts 4, tv 0)
    assert m["per_sample"]["S1"] == {"hom_ref": 2, "hom_alt": 1, "het": 4, "hap_ref": 0, "hap_alt": 0,
                                     "missing": 2, "indels": 1, "ts": 5, "tv": 1}
    assert m["indel_length_distribution"] == {"-2": 1, "-1": 1, "1": 1}
    assert m["known"] == 1 and m["novel"] == 13
    s2 = m["per_sample"]["S2"]
    assert m["het_hom_ratio"] == round((4 + s2["het"]) / (1 + s2["hom_alt"]), 4)
    assert m["call_rate"] == round((28 - 2 - 1) / 28, 6)


@needs_bcftools
@pytest.mark.parametrize("encoding", ["plain", "bgzf", "gzip", "bcf"])
def test_random_callset_matches_bcftools(tmp_path: Path, encoding: str) -> None:
    path = plain = write_random_vcf(tmp_path / "calls.vcf")
    if encoding == "bgzf":  # bgzipped, not indexed: an upload
        pysam.tabix_compress(str(path), str(path) + ".gz")
        path = Path(str(path) + ".gz")
    elif encoding == "gzip":
        with open(path, "rb") as fin, gzip.open(str(path) + ".gz", "wb") as fout:
            shutil.copyfileobj(fin, fout)
        path = Path(str(path) + ".gz")
    elif encoding == "bcf":
        out = tmp_path / "calls.bcf"
        pysam.bcftools.view("-Ob", "-o", str(out), str(path), catch_stdout=False)
        path = out
    m = assert_matches_bcftools(path)
    assert m == assert_matches_oracle(plain)  # the oracle's pysam cannot open plain gzip
    assert m["indel_length_distribution"]["60"] and m["indel_length_distribution"]["-60"]  # clipped
    assert m["het_hom_ratio"] == pytest.approx(
        sum(s["het"] for s in m["per_sample"].values()) / sum(s["hom_alt"] for s in m["per_sample"].values()),
        abs=1e-4)
    assert 0 < m["call_rate"] < 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_callsets_match_oracle(tmp_path: Path, seed: int) -> None:
    assert_matches_oracle(write_random_vcf(tmp_path / "calls.vcf", n=400, samples=3, seed=seed))


@needs_bcftools
def test_vcf_without_samples(tmp_path: Path) -> None:
    calls = write_random_vcf(tmp_path / "calls.vcf", samples=3)
    sites = tmp_path / "sites.vcf"
    sites.write_text("".join("\t".join(line.split("\t")[:8]) + "\n" for line in calls.read_text().splitlines()
                             if not line.startswith("##FORMAT")))
    m = assert_matches_bcftools(sites)
    assert m["samples"] == 0 and m["per_sample"] == {}
    assert m["het_hom_ratio"] is None and m["call_rate"] is None
    assert_matches_oracle(sites)


def test_unsorted_plain_vcf(tmp_path: Path) -> None:
    lines = write_random_vcf(tmp_path / "calls.vcf", n=300).read_text().splitlines()
    head, body = [x for x in lines if x.startswith("#")], [x for x in lines if not x.startswith("#")]
    random.Random(4).shuffle(body)
    shuffled = tmp_path / "shuffled.vcf"
    shuffled.write_text("\n".join(head + body) + "\n")
    assert vcf_metrics(shuffled) == vcf_metrics(tmp_path / "calls.vcf")


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
    assert vcf_metrics(calls, known_sites=str(bgzip_indexed(known)))["known"] == 2


@pytest.mark.parametrize("indexed", [False, True])
def test_known_sites_match_oracle(tmp_path: Path, indexed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = write_random_vcf(tmp_path / "calls.vcf", n=500)
    known, keys = known_sites_for(calls, tmp_path / "known.vcf")
    if indexed:
        known = bgzip_indexed(known)
    m = assert_matches_oracle(calls, known, keys)
    assert 0 < m["known"] - vcf_metrics(calls)["known"] < m["novel"]  # known sites add some, not all
    # small chunks and windows: every record still looked up once, wherever the boundaries fall
    monkeypatch.setattr(variants_module, "_CHUNK_BYTES", 64)
    monkeypatch.setattr(variants_module, "_MERGE_GAP", 0)
    assert vcf_metrics(calls, known_sites=str(known))["known"] == m["known"]
    if indexed:  # windows of the indexed file instead of one read of it all: per record, merged, few
        monkeypatch.setattr(variants_module, "_LOAD_WHOLE", 0)
        for per_region, gap, chunk in ((1, 0, 64), (1, 0, 1 << 20), (1, 300, 64), (1, 10**6, 1 << 20),
                                       (100, 0, 1 << 20), (10**6, 0, 1 << 20)):
            monkeypatch.setattr(variants_module, "_RECORDS_PER_REGION", per_region)
            monkeypatch.setattr(variants_module, "_MERGE_GAP", gap)
            monkeypatch.setattr(variants_module, "_CHUNK_BYTES", chunk)
            assert vcf_metrics(calls, known_sites=str(known))["known"] == m["known"], (per_region, gap, chunk)


@pytest.mark.parametrize("encoding", ["plain", "bgzf", "gzip", "bcf", "no final newline"])
def test_id_less_records_cut_from_text_as_bcftools_query_prints_them(
        tmp_path: Path, encoding: str, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = write_random_vcf(tmp_path / "calls.vcf", n=300)
    want = pysam.bcftools.query("-i", 'ID="."', "-f", r"%CHROM\t%POS\t%REF\t%ALT\n", str(plain)).encode()
    path = tmp_path / "input"
    if encoding == "bgzf":
        pysam.tabix_compress(str(plain), str(path))
    elif encoding == "gzip":
        path.write_bytes(gzip.compress(plain.read_bytes()))
    elif encoding == "bcf":
        pysam.bcftools.view("-Ob", "-o", str(path), str(plain), catch_stdout=False)
    else:
        path.write_bytes(plain.read_bytes().rstrip(b"\n") if encoding == "no final newline" else plain.read_bytes())
    for block, chunk in ((1 << 20, 4 << 20), (100, 50), (7, 1)):  # lines across blocks, many chunks
        monkeypatch.setattr(variants_module, "_VCF_BLOCK", block)
        monkeypatch.setattr(variants_module, "_CHUNK_BYTES", chunk)
        assert b"".join(variants_module._novel_alleles(str(path), str(tmp_path))) == want


def test_known_sites_bcf_input_and_foreign_contigs(tmp_path: Path) -> None:
    calls = write_random_vcf(tmp_path / "calls.vcf", n=200)
    known, keys = known_sites_for(calls, tmp_path / "known.vcf")
    bcf = tmp_path / "calls.bcf"
    pysam.bcftools.view("-Ob", "-o", str(bcf), str(calls), catch_stdout=False)
    want = oracle_metrics(calls, keys)["known"]
    assert vcf_metrics(bcf, known_sites=str(bgzip_indexed(known)))["known"] == want
    other = tmp_path / "other.vcf"  # a known-sites file with none of the calls' contigs
    other.write_text("##fileformat=VCFv4.2\n##contig=<ID=chrZ,length=100>\n"
                     "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nchrZ\t5\t.\tA\tC\t.\t.\t.\n")
    assert vcf_metrics(calls, known_sites=str(bgzip_indexed(other)))["known"] == vcf_metrics(calls)["known"]


def test_unreadable_input(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        vcf_metrics(tmp_path / "absent.vcf")
    junk = tmp_path / "junk.vcf"
    junk.write_text("not a vcf\n")
    with pytest.raises((ValueError, OSError)):
        vcf_metrics(junk)


def test_allele_beyond_alts_is_an_error_not_an_exit(tmp_path: Path) -> None:
    """htslib exit()s on a GT allele past the ALTs; the caller gets a ValueError and lives on."""
    bad = tmp_path / "bad.vcf"
    bad.write_text((DATA / "edge_cases.vcf").read_text().replace("1\t50\t.\tA\t.\t50\tPASS\t.\tGT\t0/0",
                                                                 "1\t50\t.\tA\t.\t50\tPASS\t.\tGT\t0/1"))
    with pytest.raises(ValueError, match="Incorrect allele"):
        vcf_metrics(bad)
    assert vcf_metrics(DATA / "edge_cases.vcf")["records"] == 14


def test_bzip2_metrics_equal_the_bgzipped_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """htslib cannot read bzip2: the file (and known sites) go through a temporary BGZF copy, then removed."""
    calls = write_random_vcf(tmp_path / "calls.vcf", n=500)
    known, _ = known_sites_for(calls, tmp_path / "known.vcf")
    gz, bz = tmp_path / "calls.vcf.gz", tmp_path / "calls.vcf.bz2"
    pysam.tabix_compress(str(calls), str(gz))
    text = calls.read_bytes()
    bz.write_bytes(bz2.compress(text))
    known_bz = tmp_path / "known.vcf.bz2"
    known_bz.write_bytes(bz2.compress(known.read_bytes()))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    want = vcf_metrics(gz)
    assert want["records"] == 500 and want["samples"] == 4
    assert vcf_metrics(bz) == want
    assert compute_metrics(bz, "vcf")["records"] == 500
    with_known = vcf_metrics(gz, known_sites=str(known))
    assert with_known["known"] > want["known"]
    assert vcf_metrics(bz, known_sites=str(known_bz)) == with_known
    # several bzip2 streams (pbzip2), copied in small reads
    monkeypatch.setattr(variants_module, "_COPY_CHUNK", 1000)
    half = text.index(b"\n", len(text) // 2) + 1
    bz.write_bytes(bz2.compress(text[:half]) + bz2.compress(text[half:]))
    assert vcf_metrics(bz) == want
    edge = tmp_path / "edge.vcf.bz2"
    edge.write_bytes(bz2.compress((DATA / "edge_cases.vcf").read_bytes()))
    assert vcf_metrics(edge) == vcf_metrics(DATA / "edge_cases.vcf")
    assert list(scratch.iterdir()) == []


def test_bzip2_damaged_or_bomb_is_a_value_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    packed = bz2.compress((DATA / "edge_cases.vcf").read_bytes())
    bad = tmp_path / "bad.vcf.bz2"
    for damaged in (packed[:len(packed) // 2], packed[:40] + bytes(40) + packed[80:]):
        bad.write_bytes(damaged)
        with pytest.raises(ValueError, match="bzip2"):
            vcf_metrics(bad)
    monkeypatch.setattr(variants_module, "_BOMB_MIN_BYTES", 1 << 20)
    bad.write_bytes(bz2.compress(b"##" + b"x" * (20 << 20) + b"\n"))
    with pytest.raises(ValueError, match="bomb"):
        vcf_metrics(bad)
    assert list(scratch.iterdir()) == []


def corpus_vcfs() -> list[Path]:
    folder = CORPORA / "vcf" / "valid"
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".bz2")) if folder.is_dir() else []


@pytest.mark.skipif(not HAVE_BCFTOOLS or not corpus_vcfs(), reason="bcftools or corpora absent")
@pytest.mark.parametrize("path", corpus_vcfs(), ids=lambda p: p.name)
def test_corpus_matches_bcftools(path: Path) -> None:
    try:
        bcftools_stats(path)
    except (subprocess.CalledProcessError, ValueError, OSError):
        pytest.skip("bcftools cannot read it")
    header = subprocess.run(["bcftools", "view", "-h", str(path)], capture_output=True, text=True).stdout
    version = header.partition("\n")[0].partition("=")[2]
    if version >= "VCFv4.4":
        # pysam bundles a newer htslib than bcftools 1.16's; they read 4.4 features (prefixed phasing,
        # SVLEN on symbolic alleles) differently, so neither is the reference there.
        pytest.skip(f"{version}: bcftools 1.16 predates VCF 4.4 support")
    try:
        assert_matches_bcftools(path)
    except (ValueError, OSError) as exc:
        pytest.skip(f"pysam rejects it: {exc}")
    try:
        oracle_metrics(path)
    except (ValueError, OSError, NotImplementedError):
        return  # bcftools reads it, pysam's record parser does not (the oracle's limit, not ours)
    assert_matches_oracle(path)
