"""Mutation fuzzing: every mutated input yields a result with a code; no exception, no hang, no internal error.

Mutants come from the valid corpus files (and small generated files, so the test also runs without
../shared): truncations, bit flips, random bytes, line deletions and duplications, byte insertions.
"""

import gzip
import random
import time
from pathlib import Path

import pytest

from genoflow_dagster.errors import ErrorCode
from genoflow_dagster.formats.validate import validate_file

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
MUTANTS = 5200
MAX_SECONDS_PER_INPUT = 10.0

GENERATED = {
    "g.fastq": b"@r1\nACGTN\n+\nIIII#\n@r2\nGGCC\n+\n!!!!\n",
    "g.fasta": b">s1 desc\nACGTACGT\nAC\n>s2\nNNNN\n",
    "g.sam": b"@HD\tVN:1.6\n@SQ\tSN:c\tLN:100\nr\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\tIIII\tNM:i:0\n",
    "g.vcf": b"##fileformat=VCFv4.2\n##INFO=<ID=DP,Number=1,Type=Integer,Description=\"d\">\n"
             b"##FORMAT=<ID=GT,Number=1,Type=String,Description=\"g\">\n"
             b"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS\nc\t5\t.\tA\tG\t9\tPASS\tDP=3\tGT\t0/1\n",
    "g.bed": b"chr1\t10\t20\tn\t5\t+\n",
    "g.gff3": b"##gff-version 3\nc\ts\tgene\t1\t10\t.\t+\t.\tID=g\nc\ts\tmRNA\t1\t10\t.\t+\t.\tID=m;Parent=g\n",
    "g.gtf": b'c\ts\texon\t1\t10\t.\t+\t.\tgene_id "g"; transcript_id "t";\n',
    "g.csv": b"a,b\n1,2\n\"x,y\",3\n",
    "g.tsv": b"a\tb\n1\t2\n",
}


def _seeds() -> list[tuple[str, bytes]]:
    seeds = [*GENERATED.items(), ("g.fastq.gz", gzip.compress(GENERATED["g.fastq"]))]
    if CORPORA.is_dir():
        for path in sorted(CORPORA.glob("*/valid/*")):
            if path.stat().st_size <= 200_000:
                seeds.append((path.name.split("__")[-1], path.read_bytes()))
    return seeds


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        roll = rng.random()
        if not buf:
            buf = bytearray(rng.randbytes(rng.randint(1, 64)))
        elif roll < 0.2:
            del buf[rng.randrange(len(buf)):]
        elif roll < 0.4:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif roll < 0.55:
            i = rng.randrange(len(buf))
            buf[i:i] = rng.randbytes(rng.randint(1, 16))
        elif roll < 0.75:
            lines = bytes(buf).split(b"\n")
            i = rng.randrange(len(lines))
            if rng.random() < 0.5:
                del lines[i]
            else:
                lines.insert(i, lines[i])
            buf = bytearray(b"\n".join(lines))
        else:
            i = rng.randrange(len(buf))
            buf[i] = rng.choice(b"\t\n\r @+>#;=,.<*\x00\x7f")
    return bytes(buf)


@pytest.mark.slow
def test_mutated_inputs_always_get_a_coded_result(tmp_path):
    rng = random.Random(20261122)
    seeds = _seeds()
    internal, slowest = [], 0.0
    for n in range(MUTANTS):
        name, data = seeds[n % len(seeds)]
        path = tmp_path / f"m{n % 50}_{name}"
        path.write_bytes(_mutate(rng, data))
        started = time.monotonic()
        result = validate_file(path)  # must not raise
        slowest = max(slowest, time.monotonic() - started)
        assert result.valid or (result.error_code and result.reason), (name, result)
        if result.error_code == ErrorCode.INTERNAL_ERROR:
            internal.append((name, result.message))
    assert slowest < MAX_SECONDS_PER_INPUT
    assert internal == [], internal[:5]
