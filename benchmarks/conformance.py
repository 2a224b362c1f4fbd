"""Run every row of ../shared/corpora/MANIFEST.tsv through `validate_file`; write the agreement table.

    python benchmarks/conformance.py [--corpora PATH] [--realworld PATH] [--disagreements FILE] [--format vcf ...]

A row agrees when the validator's verdict (valid / invalid) equals the row's
`expected`. An `invalid` row that default validation accepts with warnings (a
deviation the specification words as SHOULD, or does not require, which the
reference tools read) is judged in strict mode (`validate --strict`), and the
table lists it as refused only in strict mode. Results go to the `## Validation conformance` section of
benchmarks/RESULTS.md, per format and per level. With `--format`, only those
formats' rows run and RESULTS.md is left alone (a quick loop while fixing one
validator).

`../shared/realworld` (valid files from real producers; skipped when absent) runs
too: accepted per format and per producer in the default mode, and the strict
mode's verdict on its `conforms` rows, in a `### Real-world producers` table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

from results_md import replace_section

from genoflow_dagster.formats.validate import validate_file

HERE = Path(__file__).resolve().parent
DEFAULT_CORPORA = HERE.parent.parent / "shared" / "corpora"
DEFAULT_REALWORLD = HERE.parent.parent / "shared" / "realworld"
REALWORLD_FORMAT = {"gff3": "gff", "bcf": "vcf"}
SECTION = "## Validation conformance"
HARD_LEVELS = ("syntax", "alphabet", "container", "security", "fuzz")

GT_BEYOND_ALT = ("GT 0|1 where ALT is '.': allele 1 names no ALT allele (VCF spec 1.6.2) and bcftools refuses the "
                 "record ('Incorrect allele'), so QC could not run on it")
# Rows GenoFlow disagrees with on purpose, each with the row (or contract) it would otherwise break. A
# disagreement missing here is a bug until explained; the table below marks it "unexplained".
EXPLAINED = {
    "fasta/valid/htslib__faidx__faidx.fa":
        "its first header is a bare '>'; biovalidator's empty_header.fa (syntax, invalid) is the same header",
    "vcf/valid/htslib__vcf44_1.vcf":
        "no newline after the last record; vcf-validator's failed_body_no_newline_* (syntax, invalid) are that",
    "vcf/valid/htslib__noroundtrip.vcf":
        "FORMAT GT:GT repeats a key; vcf-validator's failed_body_format_005 (syntax, invalid) is that",
    "vcf/valid/vcfval__v4.2__passed__passed_body_alt.vcf":
        GT_BEYOND_ALT,
    "vcf/valid/vcfval__v4.3__passed__passed_body_alt.vcf":
        GT_BEYOND_ALT,
    "vcf/valid/vcfval__v4.4__passed__passed_body_alt.vcf":
        GT_BEYOND_ALT,
    "vcf/valid/vcfval__v4.4__compressed_files__readable__passed__passed_compressed.vcf.bz2":
        GT_BEYOND_ALT,
    "vcf/valid/vcfval__v4.4__compressed_files__readable__passed__passed_compressed.vcf.gz":
        GT_BEYOND_ALT,
    "sam/valid/htslib__auxf_values.sam":
        "tag 'A!' and lower-case hex 'H:dead00beef'; hts-specs aux.fail-tag and aux.fail-H2 (syntax, invalid)",
    "gff3/valid/biovalidator__gff3__valid__sequence-region-directive.gff3":
        "ID rna0 on two sequences; genometools multi_feature_different_sequence_id (syntax, invalid)",
    "gff3/valid/biovalidator__gff3__valid__sequence-region-out-of-bound.gff3":
        "ID rna0 on two sequences; genometools multi_feature_different_sequence_id (syntax, invalid)",
    "gff3/valid/biovalidator__gff3__invalid__empty-attribute-key.gff3":
        "'=genomic DNA' has no tag; genometools empty_attribute (syntax, invalid)",
    "gff3/valid/biovalidator__gff3__invalid__empty-attribute-value.gff3":
        "'Dbxref=' has no value; genometools empty_attribute_value (syntax, invalid)",
    "gff3/valid/biovalidator__gff3__invalid__sequence-region-with-duplicates-seqId.gff3":
        "two ##sequence-region lines for one seqid; genometools gt_gff3_fail_1 (syntax, invalid)",
    "gff3/invalid/gt__reverse_feature_order.gff3":
        "a Parent defined after its child (gt -strict only); genometools multi_feature_orphan_succ (syntax, valid)",
    "gff3/invalid/gt__reverse_feature_order_multiple_parents.gff3":
        "a Parent defined after its child (gt -strict only); genometools multi_feature_orphan_succ (syntax, valid)",
    "gff3/invalid/gt__reverse_standard_gene_as_tree.gff3":
        "a Parent defined after its child (gt -strict only); genometools multi_feature_orphan_succ (syntax, valid)",
    "gff3/invalid/gt__dbxref_invalid2.gff3":
        "needs gt's optional -xrfcheck database list; a fixed list would refuse real files citing other databases",
    "bed/invalid/bedtools__general__t05_space_delimited.bed":
        "space-delimited BED; acidbio's syntax rows (valid) use whitespace separators",
    "bed/valid/bedtools__general__empty.bed":
        "0 bytes: EMPTY_FILE is a project contract (DESIGN.md error classes)",
}
# vcf-validator rows stricter than the VCF specification (issue 10), each contradicted by the spec's words and
# by valid output of a real producer (../shared/realworld, spec_verdict conforms):
_VCFVAL = "vcf/invalid/vcfval__v{}__failed__failed_{}.vcf"
_WHY_VCF = {
    "CONTIG_STAR": "VCF 4.3/4.4 1.4.7's own contig pattern allows '*' after the first character (GRCh38 HLA "
                   "contigs, realworld GATK-SV SVCluster)",
    "RESERVED_42": "VCF 4.2 describes its reserved keys in words (INFO untyped, FORMAT '(Integer)'), no "
                   "Number/Type table (4.3+): Integer for Float, '.', 1 for A and a number for the untyped AA "
                   "contradict no word, and real producers write them (FreeBayes FORMAT/GQ Float, 1000 Genomes "
                   "INFO/AC Number=1, Dindel INFO/AA Integer, Strelka AA Number=A; realworld, conforms)",
    "COUNT_42": "VCF 4.0-4.2 word Number as the values that 'can be included' and 'should be' declared; GATK3 "
                "AD, MuTect2 QSS, ExAC and SURVIVOR 4.1/4.2 output (realworld, conforms) write other counts",
}
for _version, _name, _why in [
    *[(v, n, "CONTIG_STAR") for v, n in [("4.3", "body_chrom_003"), ("4.3", "meta_contig_003"),
                                          ("4.3", "meta_sample_003"), ("4.4", "meta_contig_003"),
                                          ("4.4", "meta_sample_003")]],
    *[("4.2", f"meta_{n}", "RESERVED_42") for n in [
        "format_018", "format_022", "format_024", "format_026", "info_004", "info_005", "info_006", "info_009",
        "info_027", "info_028", "info_029", "info_030"]],
    *[("4.2", f"body_{n}", "COUNT_42") for n in [
        "info_030", "info_031", "sample_004", "sample_005", "sample_010", "samples_ploidy_002"]],
]:
    EXPLAINED[_VCFVAL.format(_version, _name)] = _WHY_VCF[_why]
EXPLAINED["vcf/invalid/htslib__bcf-sr__merge.noidx.rec_order.vcf"] = EXPLAINED[
    "vcf/invalid/htslib__bcf-sr__merge.noidx.hdr_order.vcf"] = (
    "contigs in another order than the ##contig lines: no VCF version requires it (records are sorted by POS "
    "within a contig); cyvcf2's MuTect/SnpEff test file (realworld, conforms) has chr22 before chrM")
EXPLAINED["xlsx/invalid/frictionless__issue-312.xlsx"] = (
    "frictionless' table rules (blank-label, duplicate-label, blank-row) on a worksheet: ECMA-376 has no header "
    "row, and conforming workbooks (realworld: frictionless' multi-line-headers, openpyxl's complex-styles) have "
    "blank and repeated first-row cells over data; a samplesheet.xlsx is checked for labels")


STRICT_ONLY: list[dict[str, str]] = []  # invalid rows refused only in strict mode, filled by run()


def run(corpora: Path, formats: set[str] | None = None
        ) -> tuple[dict[tuple[str, str], tuple[int, int]], list[dict[str, str]]]:
    os.environ["REF_PATH"] = str(corpora / "_aux" / "ref" / "md5" / "%s")
    agree: Counter[tuple[str, str]] = Counter()
    total: Counter[tuple[str, str]] = Counter()
    disagreements = []
    with open(corpora / "MANIFEST.tsv", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if formats and row["format"] not in formats:
                continue
            fmt = {"gff3": "gff"}.get(row["format"], row["format"])
            result = validate_file(corpora / row["path"], fmt)
            if row["expected"] == "invalid" and result.valid and result.warnings:
                result = validate_file(corpora / row["path"], fmt, strict=True)
                STRICT_ONLY.append({"path": row["path"], "level": row["level"], "got_reason": result.reason or ""})
            ok = result.valid == (row["expected"] == "valid")
            key = (row["format"], row["level"])
            total[key] += 1
            agree[key] += ok
            if not ok:
                disagreements.append({"path": row["path"], "level": row["level"], "expected": row["expected"],
                                      "got_reason": result.reason or "", "message": result.message or "",
                                      "source_reason": row["reason"][:200]})
    return {k: (agree[k], total[k]) for k in total}, disagreements


def table(results: dict[tuple[str, str], tuple[int, int]], seconds: float,
          disagreements: list[dict[str, str]] = ()) -> str:
    lines = [SECTION, "",
             f"`make conformance` on {sum(t for _, t in results.values())} corpus rows in {seconds:.0f} s. "
             "A row agrees when GenoFlow's valid/invalid verdict equals the manifest's `expected`. "
             f"Hard levels (target 100%): {', '.join(HARD_LEVELS)}.", "",
             "| format | level | agree | rows | % |", "|---|---|---|---|---|"]
    for (fmt, level), (ok, n) in sorted(results.items()):
        lines.append(f"| {fmt} | {level} | {ok} | {n} | {100 * ok / n:.0f} |")
    by_format: dict[str, list[int]] = {}
    for (fmt, _), (ok, n) in results.items():
        by_format.setdefault(fmt, [0, 0])
        by_format[fmt][0] += ok
        by_format[fmt][1] += n
    lines += ["", "| format | agree | rows | % |", "|---|---|---|---|"]
    for fmt, (ok, n) in sorted(by_format.items()):
        lines.append(f"| {fmt} | {ok} | {n} | {100 * ok / n:.0f} |")
    ok = sum(a for a, _ in results.values())
    n = sum(t for _, t in results.values())
    lines += ["", f"Overall: {ok}/{n} ({100 * ok / n:.1f}%)."]
    if STRICT_ONLY:
        lines += ["", f"{len(STRICT_ONLY)} invalid rows deviate only by a SHOULD (or a rule no version requires): "
                  "valid with warnings by default, refused in strict mode, and counted so:", "",
                  "| row | level | strict mode refuses with |", "|---|---|---|"]
        lines += [f"| `{d['path']}` | {d['level']} | {d['got_reason']} |" for d in STRICT_ONLY]
    if disagreements:
        lines += ["", "Every row GenoFlow disagrees with, and why (`EXPLAINED` in benchmarks/conformance.py):", "",
                  "| row | level | expected | GenoFlow says | why |", "|---|---|---|---|---|"]
        for d in disagreements:
            why = EXPLAINED.get(d["path"], "**unexplained**").replace("|", "\\|")  # a pipe would split the cell
            lines.append(f"| `{d['path']}` | {d['level']} | {d['expected']} | {d['got_reason'] or 'valid'} | {why} |")
    return "\n".join(lines) + "\n"


def run_realworld(realworld: Path, formats: set[str] | None = None) -> list[dict[str, object]]:
    """Every file of ../shared/realworld in the default mode, and its `conforms` rows in strict mode too."""
    os.environ["REF_PATH"] = str(realworld / "cram" / "refs" / "md5" / "%s")
    outcomes = []
    with open(realworld / "MANIFEST.tsv", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if formats and row["format"] not in formats:
                continue
            fmt = REALWORLD_FORMAT.get(row["format"], row["format"])
            result = validate_file(realworld / row["path"], fmt)
            conforms = row["spec_verdict"] == "conforms"
            strict = validate_file(realworld / row["path"], fmt, strict=True) if conforms else None
            outcomes.append({
                "path": row["path"], "format": row["format"], "producer": _producer(row["producer"]),
                "spec_verdict": row["spec_verdict"], "valid": result.valid, "reason": result.reason or "",
                "crashed": result.error_code == "INTERNAL_ERROR",
                "warnings": sorted({w["reason"] for w in result.warnings}),
                "strict_valid": None if strict is None else strict.valid,
                "strict_reason": "" if strict is None else strict.reason or "",
            })
    return outcomes


def _producer(name: str) -> str:
    """The producer without its parenthesised detail: "Excel workbook (POI bug 47504)" -> "Excel workbook"."""
    return re.sub(r"\s*[\[(].*$", "", name) or name


def _share(ok: int, n: int) -> str:
    return f"{ok}/{n} ({100 * ok / n:.0f}%)" if n else "-"


def realworld_table(outcomes: list[dict[str, object]], seconds: float) -> str:
    """Accepted per format and per producer (default mode); strict-mode results of the `conforms` rows."""
    def tally(key: str) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for o in outcomes:
            g = groups.setdefault(str(o[key]), [0, 0, 0, 0, 0])  # accepted, rows, with warnings, strict ok, conforms
            g[0] += bool(o["valid"])
            g[1] += 1
            g[2] += bool(o["warnings"])
            if o["strict_valid"] is not None:
                g[3] += bool(o["strict_valid"])
                g[4] += 1
        return groups

    accepted = sum(bool(o["valid"]) for o in outcomes)
    conforms = [o for o in outcomes if o["strict_valid"] is not None]
    strict_ok = sum(bool(o["strict_valid"]) for o in conforms)
    crashes = sum(bool(o["crashed"]) for o in outcomes)
    lines = ["### Real-world producers", "",
             f"{len(outcomes)} valid files from real producers (`../shared/realworld`, each read without error by "
             f"a reference tool) in {seconds:.0f} s. Default mode (target 100%, warnings allowed): "
             f"{_share(accepted, len(outcomes))} accepted, {crashes} crashes. Strict mode on the "
             f"{len(conforms)} rows whose spec_verdict is `conforms` (target: none refused): "
             f"{_share(strict_ok, len(conforms))} accepted.", "",
             "| format | accepted | with warnings | strict, conforms rows |", "|---|---|---|---|"]
    for fmt, (ok, n, warned, s_ok, s_n) in sorted(tally("format").items()):
        lines.append(f"| {fmt} | {_share(ok, n)} | {warned} | {_share(s_ok, s_n)} |")
    lines += ["", "| producer | accepted | with warnings | strict, conforms rows |", "|---|---|---|---|"]
    for producer, (ok, n, warned, s_ok, s_n) in sorted(tally("producer").items(), key=lambda p: p[0].lower()):
        lines.append(f"| {producer.replace('|', '/')} | {_share(ok, n)} | {warned} | {_share(s_ok, s_n)} |")
    refused = [o for o in outcomes if not o["valid"] or o["strict_valid"] is False]
    if refused:
        lines += ["", "Refused files:", "", "| file | producer | spec_verdict | default mode | strict mode |",
                  "|---|---|---|---|---|"]
        lines += [f"| `{o['path']}` | {str(o['producer']).replace('|', '/')} | {o['spec_verdict']} | "
                  f"{'accepted' if o['valid'] else o['reason']} | "
                  f"{'-' if o['strict_valid'] is None else 'accepted' if o['strict_valid'] else o['strict_reason']} |"
                  for o in refused]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    parser.add_argument("--realworld", type=Path, default=DEFAULT_REALWORLD,
                        help="real producers' valid files with a MANIFEST.tsv (skipped when absent)")
    parser.add_argument("--disagreements", type=Path, default=None,
                        help="where to list disagreements (default benchmarks/work/disagreements[-FORMATS].json)")
    parser.add_argument("--format", action="append", dest="formats",
                        help="only this manifest format (repeatable); RESULTS.md is not rewritten")
    args = parser.parse_args()
    formats = set(args.formats or ())
    if args.disagreements is None:
        suffix = "-" + "-".join(sorted(formats)) if formats else ""
        args.disagreements = HERE / "work" / f"disagreements{suffix}.json"
    if not (args.corpora / "MANIFEST.tsv").is_file():
        print(f"no corpus at {args.corpora}", file=sys.stderr)
        return 2
    started = time.monotonic()
    results, disagreements = run(args.corpora, formats or None)
    block = table(results, time.monotonic() - started, disagreements)
    if (args.realworld / "MANIFEST.tsv").is_file():
        started = time.monotonic()
        outcomes = run_realworld(args.realworld, formats or None)
        block += "\n" + realworld_table(outcomes, time.monotonic() - started)
    print(block)
    if not formats:
        replace_section(SECTION, block)
    args.disagreements.parent.mkdir(parents=True, exist_ok=True)
    args.disagreements.write_text(json.dumps(disagreements, indent=1))
    print(f"{len(disagreements)} disagreements listed in {args.disagreements}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
