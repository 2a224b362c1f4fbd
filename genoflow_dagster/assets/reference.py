"""Reference data as assets: genome (with indexes), gene annotation, known sites.

Each is fingerprinted by SHA-256 and returns it as its data version, so a new
reference release marks everything aligned or annotated against the old one stale.
"""


import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from genoflow_dagster import settings, zones
from genoflow_dagster.assets.artifacts import write_json
from genoflow_dagster.formats.io import sha256_file_cached
from genoflow_dagster.resources.reference import ReferenceData
from genoflow_dagster.resources.storage import Storage
from genoflow_dagster.variants.align import build_reference_index, ensure_faidx

REFERENCE = "reference"


@dataclass(frozen=True)
class IndexedReference:
    fasta: Path  # the cached copy, with .fai beside it
    mmi: Path
    sha256: str
    contigs: dict[str, int]


def indexed_reference(fasta: Path, *, refresh: bool = False) -> IndexedReference:
    """Copy the FASTA into a cache folder named by its checksum and index it there (once).

    Indexing a copy keeps the lab's reference folder read-only and makes two
    reference versions impossible to mix up. The checksum is computed once per
    version of the file (`sha256_file_cached`); `refresh` recomputes it.
    """
    sha = sha256_file_cached(fasta, settings.reference_cache_dir(), refresh=refresh)
    folder = settings.reference_cache_dir() / sha[:16]
    cached = folder / "genome.fa"
    mmi = folder / "genome.mmi"
    if not mmi.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "genome.fa.tmp"
        shutil.copyfile(fasta, tmp)
        tmp.replace(cached)
        ensure_faidx(cached)
        build_reference_index(cached, mmi)
    contigs: dict[str, int] = {}
    with open(str(cached) + ".fai") as fai:
        for line in fai:
            name, length = line.split("\t")[:2]
            contigs[name] = int(length)
    return IndexedReference(fasta=cached, mmi=mmi, sha256=sha, contigs=contigs)


@dg.asset(group_name=REFERENCE, kinds={"python"},
          description="The reference genome: checksum, contigs, samtools .fai and minimap2 .mmi indexes.")
def reference_genome(context: dg.AssetExecutionContext, reference: ReferenceData,
                     storage: Storage) -> dg.MaterializeResult:
    ref = indexed_reference(reference.fasta(), refresh=True)  # this asset is the scheduled re-fingerprint
    manifest = {
        "source": str(reference.fasta()),
        "sha256": ref.sha256,
        "contigs": ref.contigs,
        "cached_fasta": str(ref.fasta),
        "mmi": str(ref.mmi),
    }
    write_json(storage, zones.reference_key("reference_genome.json"), manifest)
    context.log.info(f"reference {ref.sha256[:12]}: {len(ref.contigs)} contigs, {sum(ref.contigs.values()):,} bp")
    return dg.MaterializeResult(
        metadata={
            "sha256": ref.sha256,
            "contigs": len(ref.contigs),
            "total_length": sum(ref.contigs.values()),
            "source": dg.MetadataValue.path(str(reference.fasta())),
        },
        data_version=dg.DataVersion(ref.sha256),
    )


def _fingerprint_asset(context: dg.AssetExecutionContext, path: Path | None, what: str) -> dg.MaterializeResult:
    if path is None:
        context.log.warning(f"no {what} configured; downstream steps run without it")
        return dg.MaterializeResult(metadata={"configured": False}, data_version=dg.DataVersion("none"))
    sha = sha256_file_cached(path, settings.reference_cache_dir(), refresh=True)
    return dg.MaterializeResult(
        metadata={"configured": True, "sha256": sha, "size_bytes": path.stat().st_size,
                  "source": dg.MetadataValue.path(str(path))},
        data_version=dg.DataVersion(sha),
    )


@dg.asset(group_name=REFERENCE, kinds={"python"},
          description="Gene annotation (GTF/GFF3) used to name the gene each variant falls in.")
def gene_annotation(context: dg.AssetExecutionContext, reference: ReferenceData) -> dg.MaterializeResult:
    return _fingerprint_asset(context, reference.annotation(), "gene annotation")


@dg.asset(group_name=REFERENCE, kinds={"python"},
          description="Known-sites VCF used to flag variants as known or novel.")
def known_sites(context: dg.AssetExecutionContext, reference: ReferenceData) -> dg.MaterializeResult:
    return _fingerprint_asset(context, reference.known_sites(), "known-sites VCF")
