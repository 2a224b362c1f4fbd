"""Reference data as assets: genome (with indexes), gene annotation, known sites.

Each is fingerprinted by SHA-256 and returns it as its data version, so a new
reference release marks everything aligned or annotated against the old one stale.
"""


from pathlib import Path

import dagster as dg

from genoflow_dagster import settings, zones
from genoflow_dagster.assets.artifacts import write_json
from genoflow_dagster.assets.metadata import code_version
from genoflow_dagster.formats.io import sha256_file_cached
from genoflow_dagster.references import chosen_reference, indexed_reference
from genoflow_dagster.resources.reference import ReferenceData
from genoflow_dagster.resources.storage import Storage

REFERENCE = "reference"


@dg.asset(group_name=REFERENCE, kinds={"python"}, code_version=code_version(),
          description="The reference genome: checksum, contigs, samtools .fai and minimap2 .mmi indexes.")
def reference_genome(context: dg.AssetExecutionContext, reference: ReferenceData,
                     storage: Storage) -> dg.MaterializeResult:
    # this asset is the scheduled re-fingerprint; a genome not added with `genoflow reference add` is indexed here
    ref = indexed_reference(reference.fasta(), refresh=True, progress=context.log.info)
    chosen = chosen_reference()
    if chosen is not None and chosen.fasta != reference.fasta():  # GENOFLOW_REFERENCE_FASTA overrides it
        chosen = None
    name = chosen.name if chosen is not None else None
    manifest = {
        "source": str(reference.fasta()),
        "reference": name,
        "sha256": ref.sha256,
        "contigs": ref.contigs,
        "cached_fasta": str(ref.fasta),
        "mmi": str(ref.mmi),
    }
    write_json(storage, zones.reference_key("reference_genome.json"), manifest)
    if chosen is not None:
        context.log.info(f"reference '{name}' ({chosen.folder}): {chosen.how}")
    context.log.info(f"reference {ref.sha256[:12]}: {len(ref.contigs)} contigs, {sum(ref.contigs.values()):,} bp")
    return dg.MaterializeResult(
        metadata={
            "reference": name or "(a FASTA given by GENOFLOW_REFERENCE_FASTA)",
            "sha256": ref.sha256,
            "contigs": len(ref.contigs),
            "total length (bp)": sum(ref.contigs.values()),
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
        metadata={"configured": True, "sha256": sha, "size (bytes)": path.stat().st_size,
                  "source": dg.MetadataValue.path(str(path))},
        data_version=dg.DataVersion(sha),
    )


@dg.asset(group_name=REFERENCE, kinds={"python"}, code_version=code_version(),
          description="Gene annotation (GTF/GFF3) used to name the gene each variant falls in.")
def gene_annotation(context: dg.AssetExecutionContext, reference: ReferenceData) -> dg.MaterializeResult:
    return _fingerprint_asset(context, reference.annotation(), "gene annotation")


@dg.asset(group_name=REFERENCE, kinds={"python"}, code_version=code_version(),
          description="Known-sites VCF used to flag variants as known or novel.")
def known_sites(context: dg.AssetExecutionContext, reference: ReferenceData) -> dg.MaterializeResult:
    return _fingerprint_asset(context, reference.known_sites(), "known-sites VCF")
