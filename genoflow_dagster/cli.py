"""The `genoflow` command: validate, qc, upload, run, status, quarantine, doctor, reference, demo.

Machine-readable output (`--json`) is a public contract (DESIGN.md): one JSON
object per line on stdout, logs and human text on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from genoflow_dagster import __version__
from genoflow_dagster.errors import ErrorCode, StorageError
from genoflow_dagster.formats import FORMATS

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def _format_arg(value: str) -> str:
    value = value.lower()
    if value == "gff3":
        value = "gff"
    if value not in FORMATS:
        raise argparse.ArgumentTypeError(f"unknown format {value!r}; choose from {', '.join(FORMATS)}")
    return value


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")


def cmd_validate(args: argparse.Namespace) -> int:
    from genoflow_dagster import settings
    from genoflow_dagster.formats.validate import validate_file

    exit_code = EXIT_OK
    for raw in args.paths:
        result = validate_file(Path(raw), args.format, max_bytes=args.max_bytes or settings.max_file_bytes(),
                               strict=args.strict)
        result.path = raw
        if result.error_code == ErrorCode.STORAGE_ERROR:
            exit_code = EXIT_USAGE
        elif not result.valid and exit_code == EXIT_OK:
            exit_code = EXIT_INVALID
        if args.json:
            _emit(result.to_json())
        elif result.valid:
            counts = result.details.get("warning_counts", {})
            noted = f", {sum(counts.values()):,} warning(s)" if counts else ""
            print(f"{raw}: valid {result.format} ({result.records:,} records, {result.size_bytes:,} bytes{noted})")
            for warning in result.warnings:
                where = f" at line {warning['line']}" if warning["line"] else ""
                print(f"  warning {warning['reason']}{where}: {warning['message']}")
        else:
            where = f" at line {result.line}" if result.line else ""
            print(f"{raw}: INVALID {result.error_code}/{result.reason}{where}: {result.message}")
    return exit_code


def cmd_qc(args: argparse.Namespace) -> int:
    from genoflow_dagster.formats.validate import validate_file
    from genoflow_dagster.qc import compute_metrics
    from genoflow_dagster.qc.profiles import grade, load_profile

    result = validate_file(Path(args.path), args.format)
    if not result.valid:
        payload = {"path": args.path, **{k: v for k, v in result.to_json().items() if k != "path"}}
        if args.json:
            _emit(payload)
        else:
            print(f"{args.path}: INVALID {result.error_code}/{result.reason}: {result.message}", file=sys.stderr)
        return EXIT_USAGE if result.error_code == ErrorCode.STORAGE_ERROR else EXIT_INVALID
    assert result.format is not None  # a valid file always has its format
    metrics = compute_metrics(
        Path(args.path), result.format, reference_fasta=args.reference, known_sites=args.known_sites,
        targets_bed=args.targets,
    )
    if args.contaminant and result.format == "fastq":
        if not args.reference:
            print("--contaminant needs --reference (the target genome the reads should map to)", file=sys.stderr)
            return EXIT_USAGE
        from genoflow_dagster.qc.contamination import screen_contamination

        metrics["contamination"] = screen_contamination(Path(args.path), Path(args.reference),
                                                        [Path(p) for p in args.contaminant])
    verdict = grade({**metrics, "format": result.format}, load_profile(args.profile))
    metrics = {"path": args.path, **metrics, "modules": verdict["modules"], "not_graded": verdict["not_graded"],
               "qc_status": verdict["status"],
               "profile": verdict["profile"], "profile_version": verdict["profile_version"]}
    if args.json:
        _emit(metrics)
    else:
        print(f"{args.path}: {result.format}, QC {verdict['status']} under {verdict['profile']}")
        for key, value in metrics.items():
            if isinstance(value, int | float | str) and key not in ("path",):
                print(f"  {key:28s} {value}")
        for module in verdict["modules"]:
            print(f"  [{module['status']:4s}] {module['name']}: {module.get('message') or ''}")
        for module in verdict["not_graded"]:  # checks the profile makes that this input cannot answer
            print(f"  [----] {module['name']}: {module.get('message') or ''}")
    return EXIT_OK


def _land(command: str, sample: str, paths: list[str]) -> int:
    """Land files for a sample. Every file is checked first (a regular file, within GENOFLOW_MAX_FILE_BYTES),
    so an over-size file is refused before any byte travels and no sample lands half its files."""
    from genoflow_dagster import settings, zones
    from genoflow_dagster.quarantine import too_large_message
    from genoflow_dagster.resources.storage import storage_from_settings

    try:
        zones.validate_sample_id(sample)
    except zones.UnsafeKeyError as exc:
        print(f"genoflow {command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    max_bytes = settings.max_file_bytes()
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            print(f"genoflow {command}: {raw}: not a file", file=sys.stderr)
            return EXIT_USAGE
        size = path.stat().st_size
        if size > max_bytes:
            print(f"genoflow {command}: {raw}: {ErrorCode.FILE_TOO_LARGE}: {too_large_message(size, max_bytes)}; "
                  "nothing was uploaded", file=sys.stderr)
            return EXIT_INVALID
    storage = storage_from_settings()
    for raw in paths:
        path = Path(raw)
        key = zones.landing_key(sample, path.name)
        try:
            info = storage.put_file(path, key)
        except StorageError as exc:
            print(f"genoflow {command}: {raw}: {exc.error_code}/{exc.reason}: {exc.message}", file=sys.stderr)
            return EXIT_USAGE
        print(f"{raw} → {storage.uri(key)} ({info.size:,} bytes)", file=sys.stderr if command == "run" else sys.stdout)
    return EXIT_OK


def cmd_upload(args: argparse.Namespace) -> int:
    return _land("upload", args.sample, args.paths)


def cmd_run(args: argparse.Namespace) -> int:
    """Land the files, launch the sample's pipeline as a run of the instance, follow it, print the verdict."""
    from genoflow_dagster.launch import ensure_home

    home = ensure_home()
    unusable = _no_reference_problem()
    if unusable:  # said before any file lands: the run could only fail at its first reference step
        print(f"genoflow run: {unusable}", file=sys.stderr)
        return EXIT_USAGE
    landed = _land("run", args.sample, args.paths)
    if landed != EXIT_OK:
        return landed
    import dagster as dg

    from genoflow_dagster import settings
    from genoflow_dagster.launch import follow, launch_sample, run_id_of, sample_statuses
    from genoflow_dagster.resources.storage import storage_from_settings

    storage = storage_from_settings()
    with dg.DagsterInstance.get() as instance:
        launched = launch_sample(instance, storage, args.sample, log_dir=settings.data_dir() / ".logs" / "runs")
        how = ("queued: the dagster-daemon starts it" if launched.queued else
               "no dagster-daemon is running: executing it now in a process of its own")
        print(f"sample {args.sample}: run of sample_pipeline {how} (DAGSTER_HOME={home}; log {launched.log_path})",
              file=sys.stderr)
        run_id = run_id_of(instance, launched)
        print(f"run {run_id}: follow it in the UI (make dev) under Runs", file=sys.stderr)
        if not args.wait:
            if args.json:
                _emit({"sample_id": args.sample, "run_id": run_id, "status": "launched"})
            else:
                print(run_id)
            return EXIT_OK
        followed = follow(instance, run_id, lambda line: print(line, file=sys.stderr, flush=True),
                          timeout=args.timeout)
        if launched.process is not None:
            launched.process.wait()
        status = sample_statuses(instance, storage, [args.sample])[0]
    verdict = "PASS" if followed.status == "SUCCESS" and not status.failed_gates else (
        "STOPPED" if status.failed_gates else followed.status)
    if args.json:
        _emit({**status.to_json(), "run_status": followed.status, "verdict": verdict})
    else:
        gates = f"; failed gates: {', '.join(status.failed_gates)}" if status.failed_gates else ""
        print(f"{args.sample}: {verdict} (run {followed.status}{gates})")
        print(f"report: {status.report or 'not written'}")
    return EXIT_OK if verdict == "PASS" else EXIT_INVALID


def _no_reference_problem() -> str:
    """Why no run can find a reference genome (GENOFLOW_REFERENCE unknown, or none configured), or ''."""
    from genoflow_dagster import settings
    from genoflow_dagster.references import ReferenceProblem, no_reference_message

    try:
        return "" if settings.reference_paths()["fasta_path"] else no_reference_message()
    except ReferenceProblem as problem:
        return problem.message


def cmd_status(args: argparse.Namespace) -> int:
    """Each sample's last run, failed gates and report, from the instance in DAGSTER_HOME."""
    from genoflow_dagster.launch import ensure_home

    ensure_home()
    import dagster as dg

    from genoflow_dagster.launch import sample_statuses
    from genoflow_dagster.resources.storage import storage_from_settings

    with dg.DagsterInstance.get() as instance:
        statuses = sample_statuses(instance, storage_from_settings(), [args.sample] if args.sample else None)
    for status in statuses:
        if args.json:
            _emit(status.to_json())
        else:
            gates = ", ".join(status.failed_gates) or "-"
            print(f"{status.sample_id:<20} {status.status:<10} failed gates: {gates:<40} "
                  f"report: {status.report or '-'}")
    if not statuses and not args.json:
        print("no samples yet: `genoflow run --sample ID FILE...` or drop files into landing/<ID>/", file=sys.stderr)
    return EXIT_OK


def cmd_quarantine(args: argparse.Namespace) -> int:
    """List quarantined files with today's verdict; exit 1 when some would now pass (a release is due)."""
    from genoflow_dagster import settings, zones
    from genoflow_dagster.quarantine import review
    from genoflow_dagster.resources.storage import storage_from_settings

    if args.sample:
        try:
            zones.validate_sample_id(args.sample)
        except zones.UnsafeKeyError as exc:
            print(f"genoflow quarantine: {exc}", file=sys.stderr)
            return EXIT_USAGE
    rows = review(storage_from_settings(), max_bytes=settings.max_file_bytes(), sample_id=args.sample,
                  include_released=args.all)
    for row in rows:
        if args.json:
            _emit(row)
        else:
            now = "passes now" if row["now_valid"] else f"still {row['now_reason']}"
            state = "released" if row["released"] else now
            print(f"{row['sample_id']:16s} {row['name'][:40]:40s} {row['quarantined_reason'] or '-':32s} {state}")
    if not args.json:
        print(f"{len(rows)} quarantined file(s); {sum(r['releasable'] for r in rows)} would pass now",
              file=sys.stderr)
    return EXIT_INVALID if any(r["releasable"] for r in rows) else EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check every configured path and service; exit 1 when something a run needs is missing or invalid."""
    from genoflow_dagster.doctor import diagnose, has_problems, report_lines

    findings = diagnose()
    if args.json:
        for finding in findings:
            _emit(finding.to_json())
    else:
        print("\n".join(report_lines(findings)))
        problems = sum(f.status == "error" for f in findings)
        print("configuration OK" if not problems else f"{problems} problem(s): fix them before running samples",
              file=sys.stderr)
    return EXIT_INVALID if has_problems(findings) else EXIT_OK


def cmd_reference_add(args: argparse.Namespace) -> int:
    """Validate, copy, index and checksum a reference genome (and its annotation, known sites, contaminants)."""
    from genoflow_dagster.references import ReferenceProblem, add_reference, contig_report

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        manifest = add_reference(args.fasta, name=args.name, annotation=args.annotation,
                                 known_sites=args.known_sites, contaminants=args.contaminant, force=args.force,
                                 progress=say)
    except ReferenceProblem as problem:
        if args.json:
            _emit({"error_code": str(problem.error_code), "reason": problem.reason, "line": problem.line,
                   "message": problem.message})
        else:
            print(f"genoflow reference add: {problem.error_code}/{problem.reason}: {problem.message}",
                  file=sys.stderr)
        return EXIT_USAGE if problem.usage else EXIT_INVALID
    except OSError as exc:
        print(f"genoflow reference add: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        _emit(manifest)
        return EXIT_OK
    from genoflow_dagster.references import references_dir

    report = contig_report({s["name"]: s["length"] for s in manifest["sequences"]})
    print(f"reference '{manifest['name']}' added in {references_dir() / manifest['name']}")
    for line in report.lines():
        print(f"  {line}")
    for role in ("annotation", "known_sites"):
        if manifest.get(role):
            print(f"  {role.replace('_', ' ')}: {manifest[role]['path']} (contig names checked against the genome)")
    for entry in manifest.get("contaminants") or []:
        print(f"  contaminant: {entry['path']}")
    for note in manifest.get("notes") or []:
        print(f"  note: {note}")
    print(f"use it with:\n  export GENOFLOW_REFERENCE={manifest['name']}")
    return EXIT_OK


def cmd_reference_list(args: argparse.Namespace) -> int:
    """The added references, and which one runs use now."""
    from genoflow_dagster.references import ReferenceProblem, chosen_reference, list_references

    try:
        manifests = list_references()
        chosen = chosen_reference()
    except ReferenceProblem as problem:
        print(f"genoflow reference list: {problem.error_code}/{problem.reason}: {problem.message}", file=sys.stderr)
        return EXIT_USAGE
    for manifest in manifests:
        in_use = chosen is not None and chosen.name == manifest["name"]
        report = manifest["contig_report"]
        if args.json:
            _emit({"name": manifest["name"], "in_use": in_use, "fasta": manifest["fasta"]["path"],
                   "sha256": manifest["fasta"]["sha256"], **report,
                   "annotation": (manifest.get("annotation") or {}).get("path"),
                   "known_sites": (manifest.get("known_sites") or {}).get("path"),
                   "contaminants": [e["path"] for e in manifest.get("contaminants") or []],
                   "added": manifest["added"]})
        else:
            mark = "*" if in_use else " "
            print(f"{mark} {manifest['name']:<24} {report['contigs']:>8,} contigs {report['total_length']:>15,} bp  "
                  f"{report['convention'].split(' (')[0]:<13} {manifest['fasta']['sha256'][:12]}")
    if not args.json:
        if not manifests:
            print("no reference added yet: `genoflow reference add FASTA --name NAME`", file=sys.stderr)
        elif chosen is not None:
            print(f"* in use: {chosen.name}, {chosen.how}", file=sys.stderr)
        else:
            print("none in use: set GENOFLOW_REFERENCE to one of these names", file=sys.stderr)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from genoflow_dagster.demo.run import run_demo

    return run_demo(fresh=args.fresh)


def cmd_portal(args: argparse.Namespace) -> int:
    """Serve the upload portal's API with uvicorn (the instance is read for run status, opened on first use)."""
    import functools

    import uvicorn

    from genoflow_dagster.launch import ensure_home
    from genoflow_dagster.portal.app import PortalSettings, create_app, is_loopback
    from genoflow_dagster.resources.storage import storage_from_settings

    if args.no_auth and not is_loopback(args.host):
        print(f"genoflow portal: --no-auth only on a loopback address (127.0.0.1), not {args.host}: anyone "
              "who reaches it could upload", file=sys.stderr)
        return EXIT_USAGE
    ensure_home()

    @functools.cache
    def instance() -> Any:
        import dagster as dg

        return dg.DagsterInstance.get()

    try:
        portal_settings = PortalSettings.from_environment(require_tokens=not args.no_auth)
    except ValueError as exc:
        print(f"genoflow portal: {exc}", file=sys.stderr)
        return EXIT_USAGE
    app = create_app(storage_from_settings(), instance, portal_settings)
    # proxy_headers off: the client address is the connection's own, which is what the portal's trusted-proxy
    # check (single sign-on) and the per-address rate limit must see; a client's X-Forwarded-For is not believed.
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", proxy_headers=False)
    return EXIT_OK


def cmd_token(args: argparse.Namespace) -> int:
    """Portal API tokens: add (printed once, stored hashed), list, revoke; each change audited."""
    from genoflow_dagster.portal.access import TokenStore
    from genoflow_dagster.portal.app import PortalSettings
    from genoflow_dagster.portal.uploads import UploadStore

    tokens = TokenStore(UploadStore(PortalSettings.from_environment().state_dir))
    if args.token_command == "add":
        token_id, token = tokens.create(args.name, args.role, actor="cli")
        print(f"token {token_id} for {args.name} ({args.role}); shown once, keep it secret:", file=sys.stderr)
        print(token)
        return EXIT_OK
    if args.token_command == "revoke":
        if not tokens.revoke(args.token_id, actor="cli"):
            print(f"genoflow token revoke: no active token {args.token_id}", file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK
    for row in tokens.listing():
        state = "revoked" if row["revoked"] else "active"
        print(f"{row['token_id']}  {row['role']:8s}  {state:7s}  {row['name']}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genoflow", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"genoflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="validate files (exit 0 all valid, 1 any invalid, 2 usage/I/O)")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.add_argument("--format", type=_format_arg, default=None)
    validate.add_argument("--json", action="store_true", help="one JSON object per line, in argument order")
    validate.add_argument("--max-bytes", type=int, default=None, help="size limit (default 5 GB)")
    validate.add_argument("--strict", action="store_true",
                          help="refuse files with warnings too (deviations the reference tools read anyway)")
    validate.set_defaults(func=cmd_validate)

    qc = sub.add_parser("qc", help="QC metrics for one file (exit 1 if it is invalid)")
    qc.add_argument("path", metavar="PATH")
    qc.add_argument("--format", type=_format_arg, default=None)
    qc.add_argument("--json", action="store_true")
    qc.add_argument("--profile", default="standard",
                    help="a shipped profile (standard, strict, exome, panel, amplicon) or a YAML profile path")
    qc.add_argument("--reference", default=None, help="reference FASTA (depth/breadth for BAM, CRAM decoding)")
    qc.add_argument("--known-sites", default=None, help="known-sites VCF (known/novel split)")
    qc.add_argument("--targets", default=None, metavar="BED",
                    help="targets BED or ARTIC-style primer scheme (BAM: on-target, target depth/breadth, amplicons)")
    qc.add_argument("--contaminant", action="append", default=[], metavar="FASTA",
                    help="contaminant reference for the FASTQ contamination screen (repeatable; needs --reference)")
    qc.set_defaults(func=cmd_qc)

    upload = sub.add_parser("upload", help="put files into the landing zone")
    upload.add_argument("paths", nargs="+", metavar="PATH")
    upload.add_argument("--sample", required=True)
    upload.set_defaults(func=cmd_upload)

    quarantine = sub.add_parser("quarantine", help="re-validate quarantined files with today's validators "
                                "(exit 1 if any would now pass; the quarantine_release_sensor re-runs them)")
    quarantine.add_argument("--sample", default=None)
    quarantine.add_argument("--all", action="store_true", help="include files already released")
    quarantine.add_argument("--json", action="store_true")
    quarantine.set_defaults(func=cmd_quarantine)

    run = sub.add_parser("run", help="land files for a sample and run its pipeline as a run of the instance; "
                         "follow it and print the verdict and report (exit 0 pass, 1 stopped or failed)")
    run.add_argument("paths", nargs="+", metavar="FILE")
    run.add_argument("--sample", required=True)
    run.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                     help="follow the run to its end (default) or return once it is launched")
    run.add_argument("--timeout", type=float, default=None, help="stop following after this many seconds")
    run.add_argument("--json", action="store_true")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="each sample's last run, failed gates and report path")
    status.add_argument("sample", nargs="?", default=None)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    doctor = sub.add_parser("doctor", help="check the configuration: every configured path exists and validates, "
                            "contig names agree, storage and instance are usable (exit 1 on a problem)")
    doctor.add_argument("--json", action="store_true", help="one JSON object per finding")
    doctor.set_defaults(func=cmd_doctor)

    reference = sub.add_parser("reference", help="add a reference genome (validated, indexed, checksummed) or list "
                               "the added ones")
    reference_sub = reference.add_subparsers(dest="reference_command", required=True)
    add = reference_sub.add_parser("add", help="validate, copy and index a genome FASTA (plain or bgzip) with its "
                                   "annotation and known sites (exit 0 ok, 1 invalid input, 2 usage/I/O)")
    add.add_argument("fasta", metavar="FASTA")
    add.add_argument("--name", default=None, help="the name to select it by (default: from the FASTA's file name)")
    add.add_argument("--annotation", "--gtf", "--gff", dest="annotation", default=None, metavar="GTF|GFF3")
    add.add_argument("--known-sites", default=None, metavar="VCF")
    add.add_argument("--contaminant", action="append", default=[], metavar="FASTA",
                     help="a contaminant genome for the contamination screen (repeatable)")
    add.add_argument("--force", action="store_true", help="replace a different reference added under this name")
    add.add_argument("--json", action="store_true", help="print the manifest as one JSON object")
    add.set_defaults(func=cmd_reference_add)
    listing = reference_sub.add_parser("list", help="the added references; * marks the one in use")
    listing.add_argument("--json", action="store_true", help="one JSON object per reference")
    listing.set_defaults(func=cmd_reference_list)

    portal = sub.add_parser("portal", help="serve the upload portal's REST API (uploads into the landing zone, "
                            "upload history and status; OpenAPI docs at /docs)")
    portal.add_argument("--host", default="127.0.0.1")
    portal.add_argument("--port", type=int, default=8000)
    portal.add_argument("--no-auth", action="store_true",
                        help="no API tokens needed (only on a loopback address, for one person's machine)")
    portal.set_defaults(func=cmd_portal)

    token = sub.add_parser("token", help="the upload portal's API tokens (roles uploader, analyst, admin)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    token_add = token_sub.add_parser("add", help="make a token and print it (once; only its hash is stored)")
    token_add.add_argument("name", help="who or what uses it")
    token_add.add_argument("--role", choices=["uploader", "analyst", "admin"], required=True)
    token_sub.add_parser("list", help="the tokens (never the tokens themselves)")
    token_revoke = token_sub.add_parser("revoke", help="revoke a token by its id")
    token_revoke.add_argument("token_id")
    token.set_defaults(func=cmd_token)

    demo = sub.add_parser("demo", help="generate demo data and run the whole pipeline on the embedded instance")
    demo.add_argument("--fresh", action="store_true", help="start from an empty data dir and instance")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
