"""GenoFlow's alignment records against the minimap2 CLI's, record by record (issue 9).

    .venv/bin/python benchmarks/alignment_identity.py [--pairs 20000] [--workdir DIR] [--same-version]

Inputs: the real reads in ../shared/realdata (ERR5069949 NextSeq pairs on
MN908947.3; the ONT barcode07 reads, aligned with the short-read preset as the
pipeline does) and generated pairs from ../shared/corpora/_aux/ref/ce.fa with
adapter read-through, 5' tags, indels near the read ends, chimeras and junk
mates (tests/clipped_reads.py), paired and single-end. Each set goes through
`align_reads` and `minimap2 -ax sr`; records are matched by read name, mate and,
for supplementary pieces, position. The table counts mapped records whose
flag, POS and CIGAR are identical, and records identical in every compared
field (flag, RNAME, POS, MAPQ, CIGAR, RNEXT, PNEXT, TLEN, NM, SA, SEQ, QUAL),
and lists what differs for the rest.

`--same-version` also builds the minimap2 CLI from mappy's own source
distribution (PyPI sdist of the installed mappy version, which ships main.c),
so a difference between the Debian CLI and mappy can be told apart from a
difference between minimap2 versions. Writes the `## Alignment identity with
the minimap2 CLI` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import mappy
from results_md import replace_section

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from genoflow_dagster.variants.align import align_reads  # noqa: E402
from tests.clipped_reads import compare_alignments, make_pairs  # noqa: E402

SHARED = HERE.parent.parent / "shared"
SECTION = "## Alignment identity with the minimap2 CLI"
def cli_sam(binary: str, reference: Path, reads: list[Path], out: Path) -> Path:
    with open(out, "w") as fh:
        subprocess.run([binary, "-ax", "sr", str(reference), *map(str, reads)], stdout=fh,
                       stderr=subprocess.DEVNULL, check=True)
    return out


def cli_version(binary: str) -> str:
    return subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.strip()


def build_same_version(workdir: Path) -> str | None:
    """minimap2 built from the sdist of the installed mappy (it ships the CLI's main.c); None if that fails."""
    target = workdir / f"minimap2-{mappy.__version__}"
    if (target / "minimap2").is_file():
        return str(target / "minimap2")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                            "-d", tmp, f"mappy=={mappy.__version__}"], check=True)
            sdist = next(Path(tmp).glob("mappy-*.tar.gz"))
            with tarfile.open(sdist) as tar:
                tar.extractall(tmp, filter="data")
            source = next(p for p in Path(tmp).iterdir() if p.is_dir())
            subprocess.run(["make", "-j2", "minimap2"], cwd=source, check=True, capture_output=True)
        except (subprocess.CalledProcessError, StopIteration) as exc:
            print(f"could not build minimap2 {mappy.__version__} from mappy's sdist: {exc}")
            return None
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / "minimap2", target / "minimap2")
    return str(target / "minimap2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=20_000, help="generated pairs (default 20,000)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "genoflow-bench" / "identity")
    parser.add_argument("--same-version", action="store_true", help="also compare with minimap2 built from mappy")
    args = parser.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    clis = [("Debian", "minimap2")]
    if args.same_version and (same := build_same_version(work)):
        clis.append(("same version as mappy", same))
    realdata = SHARED / "realdata"
    mn, ce = work / "MN908947.3.fasta", work / "ce.fa"
    shutil.copyfile(realdata / "MN908947.3.fasta", mn)
    shutil.copyfile(SHARED / "corpora" / "_aux" / "ref" / "ce.fa", ce)
    r1, r2 = make_pairs(ce, work / "clipped", pairs=args.pairs, seed=21)
    sets = [
        ("ERR5069949 (NextSeq, ARTIC amplicons), pairs", mn, [realdata / "ERR5069949_test_1.fastq.gz",
                                                              realdata / "ERR5069949_test_2.fastq.gz"]),
        ("FAK72834 barcode07 (ONT), single-end, sr preset", mn, [realdata / "FAK72834_barcode07.fastq"]),
        (f"generated clipped/chimeric pairs on ce.fa ({args.pairs:,})", ce, [r1, r2]),
        ("the same reads 1 only, single-end", ce, [r1]),
    ]
    rows = []
    for label, reference, reads in sets:
        ours = work / f"ours{len(rows)}.bam"
        stats = align_reads(reference, reads[0], reads[1] if len(reads) > 1 else None, ours, sample_id="BENCH",
                            reference_fasta=reference, threads=2)
        for cli_label, binary in clis:
            result = compare_alignments(ours, cli_sam(binary, reference, reads, work / f"cli{len(rows)}.sam"))
            rows.append((label, f"{cli_label} {cli_version(binary)}", stats["supplementary"], result))
            print(label, cli_label, {k: v for k, v in result.items() if k not in ("differences", "differing")},
                  result["differences"].most_common(4))

    lines = [SECTION, "",
             f"`python benchmarks/alignment_identity.py --pairs {args.pairs}"
             + (" --same-version" if args.same_version else "") + f"` (mappy {mappy.__version__}, `align_reads` with "
             "2 workers, against `minimap2 -ax sr REF READS...`). Mapped records are matched by read name, mate and "
             "(supplementary) position; identity target: at least 99.5% of mapped records with the CLI's flag, POS "
             "and CIGAR, every difference explained.", "",
             "| reads | CLI | supplementary | mapped records | same flag/POS/CIGAR | % | identical in every field | "
             "what differs (records) |",
             "|---|---|---|---|---|---|---|---|"]
    for label, cli_label, supplementary, r in rows:
        top = "; ".join(f"{k}: {n}" for k, n in r["differences"].most_common(3)) or "nothing"
        lines.append(f"| {label} | {cli_label} | {supplementary:,} | {r['mapped']:,} | {r['same']:,} | "
                     f"{100 * r['same'] / max(1, r['mapped']):.2f} | {r['all_fields']:,} / {r['records']:,} | "
                     f"{top} |")
    lines += ["", "Explained differences:",
              "- Split reads at the pairing threshold: minimap2 picks a split mate's primary piece by its DP score, "
              "which mappy does not expose; GenoFlow recomputes it from CIGAR and NM with the `sr` scores, which can "
              "miss by a few points when a pair sits exactly at the threshold (the pair bonus of 33). Such a read "
              "has its primary and supplementary pieces swapped, and its mate's RNEXT/PNEXT follow.",
              "- minimap2 versions: the Debian CLI (2.24) and mappy (2.31) extend alignments differently in "
              "places (long reads under the short-read preset above all, one generated single-end read); "
              "against the CLI built from mappy's own sources every record is identical, so the difference is "
              "the minimap2 version, not GenoFlow.", ""]
    replace_section(SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
