"""Reference genomes a lab adds once and names: validated, copied, indexed, checksummed.

`genoflow reference add FASTA --name N` puts the genome (and its annotation, known
sites and contaminant genomes) under `$GENOFLOW_DATA_DIR/references/N/`, next to
`reference.json`, the manifest that records every file's SHA-256, each contig's
length and MD5 (the M5 of the sequence dictionary) and how its contigs are named.
`GENOFLOW_REFERENCE=N` then selects it (settings.reference_paths reads the
manifest through `resolve_reference`).

Why copies: the pipeline must not change when a file in the lab's folder is
edited in place; a reference is replaced only by adding it again (`force`).
Why here and not in an asset: adding GRCh38 takes minutes of copying and indexing
a lab runs once, from a terminal, with progress; the assets only fingerprint it.

The demo registers its own reference as `demo`; it is never chosen implicitly.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from genoflow_dagster import __version__, settings
from genoflow_dagster.errors import ErrorCode, GenoFlowError
from genoflow_dagster.formats.io import compression_of, open_decompressed, remembered_per_version, sha256_file_cached
from genoflow_dagster.progress import DEFAULT_EVERY_SECONDS, Log, Progress, duration, size

MANIFEST = "reference.json"
DEMO_REFERENCE = "demo"  # the demo's genome: used by the demo's runs only, never picked implicitly
INDEXER_CHILD_MIN_BYTES = 4 * 1024**2  # a smaller genome is indexed in this process: done before a line is due
PROGRESS_SECONDS = DEFAULT_EVERY_SECONDS  # one progress line this often while a long step runs
REFERENCE_MAX_BYTES = 1 << 40  # a reference is not an upload: the upload size limit does not apply
_CHUNK = 4 * 1024**2
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FASTA_SUFFIXES = (".gz", ".bgz", ".fa", ".fasta", ".fna", ".fas")



class ReferenceProblem(GenoFlowError):
    """A reference could not be added or chosen. `usage` marks a problem with the command or the
    data dir (CLI exit 2) rather than with the files' content (exit 1)."""

    def __init__(self, error_code: ErrorCode, reason: str, message: str, *, line: int | None = None,
                 usage: bool = False) -> None:
        super().__init__(error_code, reason, message, line)
        self.usage = usage


class UnknownReference(ReferenceProblem, ValueError):
    """GENOFLOW_REFERENCE names a reference that has not been added."""


# --- the genome's cache of indexes (what the pipeline aligns against) --------------------------------------


@dataclass(frozen=True)
class IndexedReference:
    fasta: Path  # the cached copy, with .fai beside it
    mmi: Path
    sha256: str
    contigs: dict[str, int]


def indexed_reference(fasta: Path, *, refresh: bool = False, progress: Log | None = None) -> IndexedReference:
    """Copy the FASTA into a cache folder named by its checksum and index it there (once).

    Indexing a copy keeps the lab's reference folder read-only and makes two
    reference versions impossible to mix up. The checksum is computed once per
    version of the file (`sha256_file_cached`); `refresh` recomputes it.
    `add_reference` calls this, so a sample's first run finds the index built.
    """
    from genoflow_dagster.variants.align import build_reference_index, ensure_faidx

    sha = sha256_file_cached(fasta, settings.reference_cache_dir(), refresh=refresh)
    folder = settings.reference_cache_dir() / sha[:16]
    cached = folder / "genome.fa"
    mmi = folder / "genome.mmi"
    if not mmi.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "genome.fa.tmp"
        tmp.unlink(missing_ok=True)
        fasta_bytes = Path(fasta).stat().st_size
        if not _link_added(Path(fasta), tmp):
            _copy(Path(fasta), tmp, f"caching {Path(fasta).name}", progress)
        tmp.replace(cached)
        if Path(f"{cached}.fai").is_file():  # linked from an added reference along with the genome
            ensure_faidx(cached)
        else:
            _with_heartbeat(ensure_faidx, (cached,), f"samtools faidx {Path(fasta).name}", fasta_bytes, progress)
        _with_heartbeat(build_reference_index, (cached, mmi), f"minimap2 index of {Path(fasta).name}", fasta_bytes,
                        progress)
    contigs: dict[str, int] = {}
    with open(str(cached) + ".fai") as fai:
        for line in fai:
            name, length = line.split("\t")[:2]
            contigs[name] = int(length)
    return IndexedReference(fasta=cached, mmi=mmi, sha256=sha, contigs=contigs)


def _link_added(fasta: Path, target: Path) -> bool:
    """Hard-link a genome of an added reference into the cache instead of copying it (GRCh38 is 3 GB).
    Safe there only: an added reference's files are replaced by a new file (a rename), never rewritten
    in place, so the link keeps the old version's bytes. A lab's own folder gets a copy."""
    try:
        fasta.resolve().relative_to(references_dir().resolve())
        os.link(fasta, target)
    except (ValueError, OSError):
        return False
    for suffix in (".fai", ".gzi"):  # built by add_reference after the genome was written: up to date
        index, linked = Path(f"{fasta}{suffix}"), target.with_name(f"{target.name.removesuffix('.tmp')}{suffix}")
        if index.is_file():
            linked.unlink(missing_ok=True)
            os.link(index, linked)
    return True


# --- progress ----------------------------------------------------------------------------------------------


def _quiet(_: str) -> None:
    pass


def _copy(source: Path, target: Path, label: str, say: Log | None) -> str:
    """Stream `source` to `target`, returning the SHA-256 of the bytes written."""
    digest = hashlib.sha256()
    done = 0
    with Progress(label, source.stat().st_size, say or _quiet, every_seconds=PROGRESS_SECONDS) as shown, \
            open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            shown(done)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()


def _hash(path: Path, say: Log | None) -> str:
    digest = hashlib.sha256()
    done = 0
    with Progress(f"checksum of {path.name}", path.stat().st_size, say or _quiet,
                  every_seconds=PROGRESS_SECONDS) as shown, open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            shown(done)
    return digest.hexdigest()


def _run_child(conn, function, args) -> None:  # pragma: no cover - runs in the child process
    try:
        function(*args)
    except BaseException as exc:  # the parent reports it
        conn.send(str(exc) or type(exc).__name__)
        raise SystemExit(1) from None
    conn.send(None)


def _bytes_read(pid: int) -> int | None:
    """Bytes the process has read so far (Linux /proc/<pid>/io), or None where that is not available."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _with_heartbeat(function: Callable, args: tuple, label: str, total: int, progress: Log | None) -> None:
    """Run an indexer (samtools, minimap2) that holds the interpreter lock for its whole run.

    For a large input it runs in a forked child so this process can report progress meanwhile: the bytes
    the child has read of the `total`-byte input (each indexer reads it once), then, once it has read
    everything (minimap2 indexes what it has read), the time spent.
    """
    if progress is None or total < INDEXER_CHILD_MIN_BYTES or "fork" not in multiprocessing.get_all_start_methods():
        function(*args)
        return
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_run_child, args=(send, function, args), daemon=True)
    started = time.monotonic()
    child.start()
    shown = Progress(label, total, progress, every_seconds=PROGRESS_SECONDS)
    while child.is_alive():
        child.join(PROGRESS_SECONDS)
        read = _bytes_read(child.pid) if child.is_alive() and child.pid is not None else None
        if not child.is_alive():
            break
        if read is not None and read < total:
            shown(read)
        else:
            shown.lines += 1
            what = f"all {size(total)} read, " if read is not None else ""
            progress(f"{label}: {what}{duration(time.monotonic() - started)} so far")
    failure = receive.recv() if receive.poll() else f"the indexer stopped (exit {child.exitcode})"
    if failure is not None or child.exitcode != 0:
        raise ValueError(f"{label} failed: {failure}")
    shown.amount = total
    shown.done()


# --- contig names ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContigReport:
    """How a genome names its contigs, for a lab to see before mixing files of two conventions."""

    convention: str  # "UCSC (chr1, chrM)", "Ensembl/NCBI (1, MT)" or "other (...)"
    contigs: int
    total_length: int
    alt: list[str]
    decoy: list[str]
    unplaced: list[str]
    examples: list[str]

    def to_json(self) -> dict:
        return {"convention": self.convention, "contigs": self.contigs, "total_length": self.total_length,
                "alt": len(self.alt), "decoy": len(self.decoy), "unplaced": len(self.unplaced),
                "examples": self.examples}

    def lines(self) -> list[str]:
        extra = [f"{len(names):,} {what} ({_examples(names)})" for what, names in
                 (("alt", self.alt), ("decoy", self.decoy), ("unplaced/unlocalized", self.unplaced)) if names]
        return [f"{self.contigs:,} contig(s), {self.total_length:,} bp; contig names: {self.convention}, e.g. "
                f"{', '.join(self.examples)}",
                "  " + ("; ".join(extra) if extra else "no alt, decoy or unplaced contigs")]


UCSC, ENSEMBL = "UCSC (chr1, chrM)", "Ensembl/NCBI (1, MT)"
_PRIMARY_ENSEMBL = re.compile(r"^(?:[1-9]|[1-9][0-9]|X|Y|MT|W|Z)$")
_PRIMARY_UCSC = re.compile(r"^chr(?:[1-9]|[1-9][0-9]|X|Y|M|MT|W|Z)$")


def _kind(name: str) -> str:
    """'alt', 'decoy', 'unplaced' or 'primary', from the names GRCh38 analysis sets and Ensembl use."""
    lower = name.lower()
    if lower.endswith("_alt"):
        return "alt"
    if lower.endswith("_decoy") or name.startswith("HLA-") or name in ("chrEBV", "EBV", "hs38d1"):
        return "decoy"
    if lower.startswith("chrun") or lower.endswith(("_random", "_fix")) or re.match(r"^(GL|KI|KN|KV|JH)\d+", name):
        return "unplaced"
    return "primary"


def contig_report(contigs: dict[str, int]) -> ContigReport:
    kinds: dict[str, list[str]] = {"alt": [], "decoy": [], "unplaced": [], "primary": []}
    for name in contigs:
        kinds[_kind(name)].append(name)
    primary = kinds["primary"]
    ucsc = sum(1 for n in primary if _PRIMARY_UCSC.match(n))
    ensembl = sum(1 for n in primary if _PRIMARY_ENSEMBL.match(n))
    if ucsc and ucsc >= ensembl:
        convention = UCSC
    elif ensembl:
        convention = ENSEMBL
    else:
        convention = "other (accession or custom names)"
    return ContigReport(convention=convention, contigs=len(contigs), total_length=sum(contigs.values()),
                        alt=kinds["alt"], decoy=kinds["decoy"], unplaced=kinds["unplaced"],
                        examples=list(contigs)[:3])


def _flip_prefix(name: str) -> str:
    """The same contig in the other convention: chr1 <-> 1, chrM <-> MT."""
    if name in ("chrM", "chrMT"):
        return "MT"
    if name in ("MT", "M"):
        return "chrM"
    return name[3:] if name.startswith("chr") else f"chr{name}"


def _examples(names: Iterable[str], n: int = 3) -> str:
    listed = sorted(names)
    return ", ".join(listed[:n]) + (", ..." if len(listed) > n else "")


def feature_contigs(path: Path) -> set[str]:
    """Every contig named by the records of an annotation (GTF/GFF3) or VCF, streamed."""
    names: set[str] = set()
    with open_decompressed(path) as stream:
        for line in stream:
            if line.startswith(b"#"):
                if line.startswith(b"##FASTA"):  # GFF3: sequences follow, no more features
                    break
                continue
            if line.strip():
                names.add(line.split(b"\t", 1)[0].decode(errors="replace"))
    return names


def check_contig_names(what: str, path: Path, names: set[str], genome: dict[str, int]) -> str | None:
    """A warning (or None) when `names` fit the genome; raises ReferenceProblem when they cannot be used.

    Contigs of the genome absent from the file are fine (an annotation of the primary assembly only);
    contigs of the file absent from the genome are not used, and a 'chr'-prefix mismatch is refused.
    """
    missing = sorted(names - set(genome))
    if not missing:
        return None
    flipped = [n for n in missing if _flip_prefix(n) in genome]
    if flipped:
        example, theirs = flipped[0], _flip_prefix(flipped[0])
        with_chr, without_chr = "with the 'chr' prefix (UCSC style: chr1, chrM)", \
            "without the 'chr' prefix (Ensembl/NCBI style: 1, MT)"
        genome_style, file_style = (with_chr, without_chr) if theirs.startswith("chr") else (without_chr, with_chr)
        raise ReferenceProblem(
            ErrorCode.VALIDATION_ERROR, "CONTIG_NAMING_MISMATCH",
            f"the {what} {path.name} and the genome name contigs differently: the {what} has '{example}' where the "
            f"genome has '{theirs}' ({len(flipped):,} contig(s) differ only by the prefix). The genome names its "
            f"contigs {genome_style}, the {what} {file_style}. Use {'an' if what[0] in 'aeiou' else 'a'} {what} made "
            "for this genome, or rename its "
            "contigs to the genome's names")
    if not names & set(genome):
        raise ReferenceProblem(
            ErrorCode.VALIDATION_ERROR, "CONTIG_NAMES_UNKNOWN",
            f"none of the contigs of the {what} {path.name} ({_examples(names)}) is in the genome "
            f"({_examples(genome)}): is it for another genome?")
    return (f"{len(missing):,} of the {len(names):,} contigs of the {what} are not in the genome "
            f"({_examples(missing)}): their records are not used")


# --- adding a reference ------------------------------------------------------------------------------------


def references_dir() -> Path:
    return settings.data_dir() / "references"


def safe_name(text: str) -> str:
    """A reference name from a file name: the FASTA stem without compression/format suffixes, with anything
    but letters, digits, '.', '_' and '-' replaced by '_'."""
    stem = Path(text).name
    while stem.lower().endswith(_FASTA_SUFFIXES):
        stem = stem[: stem.lower().rfind(".")]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:64]
    return cleaned or "reference"


def _validated(path: Path, what: str, formats: tuple[str, ...], say: Log | None) -> str:
    """Validate with GenoFlow's own validators; return the file's SHA-256. Refuses with the file's code,
    line and message."""
    from genoflow_dagster.formats.validate import validate_file

    if not path.is_file():
        raise ReferenceProblem(ErrorCode.STORAGE_ERROR, "FILE_NOT_FOUND", f"the {what} {path} does not exist",
                               usage=True)
    with Progress(f"validating the {what} {path.name}", path.stat().st_size, say or _quiet,
                  every_seconds=PROGRESS_SECONDS) as shown:
        result = validate_file(path, max_bytes=REFERENCE_MAX_BYTES, progress=shown)
    if not result.valid:
        where = f" at line {result.line:,}" if result.line else ""
        raise ReferenceProblem(result.error_code or ErrorCode.VALIDATION_ERROR, result.reason or "INVALID",
                               f"the {what} {path} is not valid: {result.reason}{where}: {result.message}",
                               line=result.line, usage=result.error_code == ErrorCode.STORAGE_ERROR)
    if result.format not in formats:
        raise ReferenceProblem(ErrorCode.INVALID_FILE_TYPE, "WRONG_FORMAT",
                               f"the {what} {path} is a {result.format} file, not "
                               f"{' or '.join(f.upper() for f in formats)}")
    return result.sha256 or _hash(path, say)


def _known_sites_index(path: Path) -> Path | None:
    for suffix in (".tbi", ".csi"):
        index = Path(str(path) + suffix)
        if index.is_file():
            return index
    return None


@dataclass
class _Input:
    role: str  # fasta | annotation | known_sites | known_sites_index | contaminant
    source: Path
    stored: str  # path inside the reference folder
    sha256: str


def add_reference(fasta: str | Path, *, name: str | None = None, annotation: str | Path | None = None,
                  known_sites: str | Path | None = None, contaminants: Iterable[str | Path] = (),
                  force: bool = False, progress: Log | None = None) -> dict:
    """Validate, copy, index and checksum a reference; return its manifest (also in `reference.json`).

    Raises ReferenceProblem: an invalid file (its code, line, message), an annotation or known-sites file
    whose contig names do not fit the genome, a plain-gzip FASTA (samtools needs bgzip), an unsafe name,
    or a different reference already added under this name (unless `force`). Adding the same files again
    under the same name changes nothing.
    """
    say = progress
    fasta = Path(fasta)
    name = name if name is not None else safe_name(fasta.name)
    if not _SAFE_NAME.match(name):
        raise ReferenceProblem(ErrorCode.VALIDATION_ERROR, "REFERENCE_NAME_UNSAFE",
                               f"'{name}' cannot name a reference: use letters, digits, '.', '_' or '-' "
                               "(up to 64, starting with a letter or digit)", usage=True)
    if say is not None and fasta.is_file() and fasta.stat().st_size >= INDEXER_CHILD_MIN_BYTES:
        say(f"adding '{name}' from {fasta} ({size(fasta.stat().st_size)}): validating, copying, indexing "
            f"(.fai, .dict, minimap2); a progress line every {PROGRESS_SECONDS:.0f} s of a long step")
    compression = compression_of(fasta) if fasta.is_file() else "none"
    if compression not in ("none", "bgzf"):  # said before a long validation of a file that cannot be indexed
        raise ReferenceProblem(ErrorCode.INVALID_FILE_TYPE, "FASTA_NOT_BGZIP",
                               f"the genome FASTA {fasta} is compressed with {compression}; samtools can index "
                               f"only plain or bgzip FASTA: `zcat {fasta.name} | bgzip > {safe_name(fasta.name)}"
                               ".bgzip.fa.gz` (bgzip is in htslib/tabix), then add that file")
    inputs = [_Input("fasta", fasta, fasta.name, _validated(fasta, "genome FASTA", ("fasta",), say))]
    if annotation is not None:
        path = Path(annotation)
        inputs.append(_Input("annotation", path, path.name, _validated(path, "annotation", ("gtf", "gff"), say)))
    if known_sites is not None:
        path = Path(known_sites)
        inputs.append(_Input("known_sites", path, path.name, _validated(path, "known-sites VCF", ("vcf",), say)))
        index = _known_sites_index(path)
        if index is not None:
            inputs.append(_Input("known_sites_index", index, index.name, _hash(index, say)))
    for raw in contaminants:
        path = Path(raw)
        inputs.append(_Input("contaminant", path, f"contaminants/{path.name}",
                             _validated(path, "contaminant FASTA", ("fasta",), say)))
    stored = [i.stored for i in inputs]
    if len(set(stored)) != len(stored):
        raise ReferenceProblem(ErrorCode.VALIDATION_ERROR, "FILE_NAMES_COLLIDE",
                               f"two of the files share a name ({_examples(s for s in stored if stored.count(s) > 1)})"
                               "; rename one", usage=True)

    folder = references_dir() / name
    existing = _read_manifest(folder) if (folder / MANIFEST).is_file() else None
    if existing is not None and _same_files(existing, inputs):
        if say is not None:
            say(f"reference '{name}' is already added with these files; nothing to do")
        indexed_reference(folder / existing["fasta"]["path"], progress=say)  # rebuilds a removed cache
        return existing
    if folder.exists() and not force:
        raise ReferenceProblem(ErrorCode.VALIDATION_ERROR, "REFERENCE_EXISTS",
                               f"a different reference is already added as '{name}' ({folder}); choose another "
                               "--name, or add --force to replace it", usage=True)

    references_dir().mkdir(parents=True, exist_ok=True)
    staging = references_dir() / f".{name}.adding-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        manifest = _build(staging, name, inputs, compression, say)
        _swap_into_place(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remember_checksum(folder / manifest["fasta"]["path"], manifest["fasta"]["sha256"])
    return manifest


def _remember_checksum(fasta: Path, sha256: str) -> None:
    """The genome's checksum is known from the copy: remember it for this path (as `sha256_file_cached`
    would), so neither the index build nor the pipeline's first run hashes the genome again."""
    remembered_per_version(fasta, settings.reference_cache_dir() / "checksums", lambda _: sha256, refresh=True)


def _build(staging: Path, name: str, inputs: list[_Input], compression: str, say: Log | None) -> dict:
    files: dict[str, dict] = {}

    def place(item: _Input) -> dict:
        target = staging / item.stored
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(f".{target.name}.part")
        sha = _copy(item.source, part, f"copying {item.source.name}", say)
        if sha != item.sha256:
            raise ReferenceProblem(ErrorCode.STORAGE_ERROR, "FILE_CHANGED",
                                   f"{item.source} changed while it was being added; add it again once it is "
                                   "complete", usage=True)
        part.replace(target)
        entry = {"path": item.stored, "source": str(item.source.resolve()), "sha256": sha,
                 "size_bytes": target.stat().st_size}
        files[item.stored] = entry
        return entry

    genome = inputs[0]
    fasta_entry = place(genome)
    fasta = staging / genome.stored
    fasta_bytes = fasta.stat().st_size
    _with_heartbeat(_faidx, (fasta,), f"samtools faidx {fasta.name}", fasta_bytes, say)
    dict_path = staging / f"{safe_name(genome.stored)}.dict"
    _with_heartbeat(_sequence_dictionary, (fasta, dict_path), f"samtools dict {fasta.name}", fasta_bytes, say)
    sequences = _read_dict(dict_path)
    genome_contigs = {s["name"]: s["length"] for s in sequences}
    report = contig_report(genome_contigs)

    notes: list[str] = []
    entries: dict[str, dict | list | None] = {"annotation": None, "known_sites": None, "contaminants": []}
    for item in inputs[1:]:
        if item.role in ("annotation", "known_sites"):
            what = "annotation" if item.role == "annotation" else "known-sites VCF"
            note = check_contig_names(what, item.source, feature_contigs(item.source), genome_contigs)
            if note:
                notes.append(note)
        entry = place(item)
        if item.role == "known_sites_index":
            assert isinstance(entries["known_sites"], dict)
            entries["known_sites"]["index"] = entry
        elif item.role == "contaminant":
            entries["contaminants"].append(entry)  # type: ignore[union-attr]
        else:
            entries[item.role] = entry

    indexes = {"fai": f"{genome.stored}.fai", "dict": dict_path.name}
    if compression == "bgzf":
        indexes["gzi"] = f"{genome.stored}.gzi"
    for relative in indexes.values():
        files[relative] = {"path": relative, "sha256": _hash(staging / relative, say),
                           "size_bytes": (staging / relative).stat().st_size}
    _remember_checksum(fasta, genome.sha256)
    indexed = indexed_reference(fasta, progress=say)  # the minimap2 index, where the pipeline looks for it
    manifest = {
        "name": name,
        "added": datetime.now(UTC).isoformat(timespec="seconds"),
        "genoflow_version": __version__,
        "fasta": {**fasta_entry, "compression": "bgzip" if compression == "bgzf" else "plain",
                  "indexes": {key: files[relative] for key, relative in indexes.items()}},
        **entries,
        "minimap2_index": {"path": str(indexed.mmi), "size_bytes": indexed.mmi.stat().st_size,
                           "sha256": _hash(indexed.mmi, say)},
        "contig_report": report.to_json(),
        "notes": notes,
        "sequences": sequences,
    }
    manifest_path = staging / MANIFEST
    manifest_path.with_name(f".{MANIFEST}.part").write_text(json.dumps(manifest, indent=1) + "\n")
    manifest_path.with_name(f".{MANIFEST}.part").replace(manifest_path)
    return manifest


def _faidx(fasta: Path) -> None:
    import pysam

    pysam.faidx(str(fasta))


def _sequence_dictionary(fasta: Path, out: Path) -> None:
    """samtools dict (bundled with pysam): one @SQ line per contig with its length and M5 (sequence MD5)."""
    import pysam

    pysam.samtools.dict(str(fasta), "-o", str(out))


def _read_dict(path: Path) -> list[dict]:
    sequences = []
    with open(path) as fh:
        for line in fh:
            if not line.startswith("@SQ"):
                continue
            tags = dict(field.split(":", 1) for field in line.rstrip("\n").split("\t")[1:] if ":" in field)
            sequences.append({"name": tags["SN"], "length": int(tags["LN"]), "md5": tags.get("M5")})
    return sequences


def _swap_into_place(staging: Path, folder: Path) -> None:
    """Rename the finished folder into place; an older reference of the name is removed only afterwards."""
    old = folder.with_name(f".{folder.name}.replaced-{os.getpid()}")
    if folder.exists():
        folder.replace(old)
    staging.replace(folder)
    shutil.rmtree(old, ignore_errors=True)


def _same_files(manifest: dict, inputs: list[_Input]) -> bool:
    recorded = {manifest["fasta"]["path"]: manifest["fasta"]["sha256"]}
    for role in ("annotation", "known_sites"):
        if manifest.get(role):
            recorded[manifest[role]["path"]] = manifest[role]["sha256"]
            if manifest[role].get("index"):
                recorded[manifest[role]["index"]["path"]] = manifest[role]["index"]["sha256"]
    for entry in manifest.get("contaminants") or []:
        recorded[entry["path"]] = entry["sha256"]
    return recorded == {i.stored: i.sha256 for i in inputs}


# --- listing and choosing ----------------------------------------------------------------------------------


def _read_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ReferenceProblem(ErrorCode.STORAGE_ERROR, "MANIFEST_UNREADABLE",
                               f"{folder / MANIFEST} cannot be read ({exc}); add the reference again",
                               usage=True) from None


def list_references() -> list[dict]:
    """The manifests of every added reference, by name."""
    root = references_dir()
    if not root.is_dir():
        return []
    return [_read_manifest(folder) for folder in sorted(root.iterdir())
            if not folder.name.startswith(".") and (folder / MANIFEST).is_file()]


def reference_names() -> list[str]:
    root = references_dir()
    if not root.is_dir():
        return []
    return sorted(f.name for f in root.iterdir() if not f.name.startswith(".") and (f / MANIFEST).is_file())


@dataclass(frozen=True)
class ChosenReference:
    """An added reference and why it is the one in use."""

    name: str
    folder: Path
    how: str  # why it is in use, in words: "named by GENOFLOW_REFERENCE" or "the only added reference ..."
    fasta: Path
    annotation: Path | None
    known_sites: Path | None
    contaminants: list[Path]


def chosen_reference() -> ChosenReference | None:
    """The added reference in use: the one GENOFLOW_REFERENCE names; else, when GENOFLOW_REFERENCE_FASTA is
    not set either, the only added reference other than the demo's; else None.

    Raises UnknownReference (listing the added ones) when GENOFLOW_REFERENCE names none of them.
    """
    name = (os.environ.get("GENOFLOW_REFERENCE") or "").strip()
    if name:
        names = reference_names()
        if name not in names:
            added = ", ".join(names) if names else "none yet"
            raise UnknownReference(
                ErrorCode.VALIDATION_ERROR, "UNKNOWN_REFERENCE",
                f"GENOFLOW_REFERENCE={name}: no reference of that name is added under {references_dir()} "
                f"(added: {added}); add it with `genoflow reference add FASTA --name {name}`", usage=True)
        return _chosen(name, "named by GENOFLOW_REFERENCE")
    if os.environ.get("GENOFLOW_REFERENCE_FASTA"):
        return None
    candidates = [n for n in reference_names() if n != DEMO_REFERENCE]
    if len(candidates) == 1:
        return _chosen(candidates[0], "the only added reference (GENOFLOW_REFERENCE is not set)")
    return None


def _chosen(name: str, how: str) -> ChosenReference:
    folder = references_dir() / name
    manifest = _read_manifest(folder)

    def at(entry: dict | None) -> Path | None:
        return folder / entry["path"] if entry else None

    return ChosenReference(name=name, folder=folder, how=how, fasta=folder / manifest["fasta"]["path"],
                           annotation=at(manifest.get("annotation")), known_sites=at(manifest.get("known_sites")),
                           contaminants=[folder / e["path"] for e in manifest.get("contaminants") or []])


def added_reference_name(path: str | Path) -> str | None:
    """The name a file was added under (`genoflow reference add --name`, then chosen by GENOFLOW_REFERENCE or
    by the demo's runs): the folder of `references/` that holds it beside its manifest. None for a file
    configured by its path (GENOFLOW_REFERENCE_FASTA and the like)."""
    try:
        relative = Path(path).resolve().relative_to(references_dir().resolve())
    except (ValueError, OSError):
        return None
    if len(relative.parts) < 2 or relative.parts[0].startswith("."):
        return None
    name = relative.parts[0]
    return name if (references_dir() / name / MANIFEST).is_file() else None


def no_reference_message() -> str:
    """What to do when no genome is configured, naming the references already added."""
    names = reference_names()
    others = [n for n in names if n != DEMO_REFERENCE]
    if len(others) > 1:
        added = f"; added: {', '.join(names)} (several: set GENOFLOW_REFERENCE to one of them)"
    elif names:
        added = f"; added: {', '.join(names)} (the demo's reference is used only by `genoflow demo`)"
    else:
        added = ""
    return ("no reference genome is configured: add yours with `genoflow reference add FASTA --name NAME` and "
            f"`export GENOFLOW_REFERENCE=NAME`, or set GENOFLOW_REFERENCE_FASTA{added}")
