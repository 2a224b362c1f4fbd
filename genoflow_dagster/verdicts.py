"""Every quality gate's verdict, decided once, here, in plain Python.

Each gate is one function returning a `GateOutcome`. The asset that owns the
gate stores the outcome in the JSON it already writes to `processed/` (under
`"gates"`), and emits its Dagster check from that stored value
(`GateOutcome.check_fields`). The report, the cohort table, the verdict table
and the notifier read the stored outcomes (`stored_outcomes`, `sample_verdict`)
and never decide a gate again, so the same gate cannot read "failed" in one
place and "passed" in another.

Four statuses: `pass`, `warn`, `fail`, `not_graded`. "Not graded" (nothing the
gate could judge: no reference configured, nothing aligned, too few SNPs for a
ratio) is its own status everywhere, never a pass: its Dagster check is emitted
as not passed with WARN severity (it never blocks), and its stored outcome says why.

The QC profile is chosen once, by `qc_metrics` (`choose_profile`), and stored in
qc.json; every later grading loads it back with `stored_profile`. The headline
numbers of a sample (Q30, GC, het/hom ratio ...) come from one function,
`headline_numbers`, for asset metadata, the narrative, the report, the cohort
table and the checks.

No Dagster imports: the CLI and the tests call it without an instance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from genoflow_dagster.qc.profiles import QCProfile, grade, load_profile

# Check names are public (run history, UI, webhooks, the CLI): never rename them.
USABLE_INPUTS = "validated_files_usable"
ALL_FILES_VALID = "validated_files_all_valid"
REFERENCE_CONSISTENT = "qc_metrics_reference_consistent"
QC_WITHIN_PROFILE = "qc_metrics_within_profile"
ALIGNMENT_WITHIN_PROFILE = "aligned_reads_within_profile"
CALLSET_WITHIN_PROFILE = "variant_results_within_profile"

# Pipeline order, and the asset each gate checks.
GATE_ASSETS: dict[str, str] = {
    USABLE_INPUTS: "validated_files",
    ALL_FILES_VALID: "validated_files",
    REFERENCE_CONSISTENT: "qc_metrics",
    QC_WITHIN_PROFILE: "qc_metrics",
    ALIGNMENT_WITHIN_PROFILE: "aligned_reads",
    CALLSET_WITHIN_PROFILE: "variant_results",
}
# A failed blocking gate stops everything downstream of its asset; the others warn.
BLOCKING_GATES = frozenset({USABLE_INPUTS, REFERENCE_CONSISTENT, QC_WITHIN_PROFILE, ALIGNMENT_WITHIN_PROFILE})

PASS, WARN, FAIL, NOT_GRADED = "pass", "warn", "fail", "not_graded"
_RANK = {PASS: 0, WARN: 1, FAIL: 2}
NOT_RUN = "not_run"  # a sample status: no QC verdict stored yet


@dataclass(frozen=True)
class ModuleOutcome:
    """One graded QC module outside its range: what was measured, the bound it crossed, in words."""

    module: str
    status: str  # warn | fail
    value: float | None
    threshold: Any  # the bound crossed (a number, or [low, high] for a range)
    message: str
    file: str | None = None

    def text(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}{self.module}: {self.message}"


@dataclass(frozen=True)
class GateOutcome:
    """One gate's verdict for one sample, as stored beside the artifact it judges.

    `status` is pass | warn | fail | not_graded. `problems` are plain sentences
    a technician can act on (empty when it passed); `modules` the QC modules
    behind them, with value and threshold; `not_graded_reason` says why a gate
    could not judge. `profile` names the QC profile that graded it ("strict v1").
    """

    gate: str
    status: str
    summary: str
    problems: tuple[str, ...] = ()
    modules: tuple[ModuleOutcome, ...] = ()
    not_graded_reason: str | None = None
    profile: str | None = None

    @property
    def asset(self) -> str:
        return GATE_ASSETS[self.gate]

    @property
    def blocking(self) -> bool:
        return self.gate in BLOCKING_GATES

    @property
    def graded(self) -> bool:
        return self.status != NOT_GRADED

    @property
    def passed(self) -> bool:
        """What the Dagster check reports: a blocking gate passes with warnings; a warning gate does not;
        a gate that graded nothing never passes."""
        return self.status == PASS or (self.status == WARN and self.blocking)

    @property
    def stops_sample(self) -> bool:
        return self.blocking and self.status == FAIL

    @property
    def severity(self) -> str:
        """The check's severity: ERROR only where a failure blocks; WARN for warnings and not graded."""
        return "ERROR" if self.stops_sample else "WARN"

    @property
    def label(self) -> str:
        return "NOT GRADED" if self.status == NOT_GRADED else self.status.upper()

    def detail(self) -> str:
        """One line for tables: the problems, else the summary."""
        return "; ".join(self.problems) or self.summary

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "blocking": self.blocking, "passed": self.passed, "graded": self.graded}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateOutcome:
        return cls(gate=data["gate"], status=data["status"], summary=data["summary"],
                   problems=tuple(data.get("problems") or ()),
                   modules=tuple(ModuleOutcome(**m) for m in data.get("modules") or ()),
                   not_graded_reason=data.get("not_graded_reason"), profile=data.get("profile"))

    def check_fields(self) -> dict[str, Any]:
        """The check result's fields, from this stored outcome (the asset wraps them in dg.AssetCheckResult):
        check_name, passed, severity ("ERROR"/"WARN"), description, and plain metadata."""
        metadata: dict[str, Any] = {"status": self.status, "blocking": self.blocking,
                                    "problems": "\n".join(f"- {p}" for p in self.problems) or "none"}
        if self.profile:
            metadata["profile"] = self.profile
        if self.not_graded_reason:
            metadata["not_graded_reason"] = self.not_graded_reason
        description = f"NOT GRADED: {self.not_graded_reason}" if not self.graded else self.detail()
        return {"check_name": self.gate, "passed": self.passed, "severity": self.severity,
                "description": description[:2000], "metadata": metadata}


def _outcome(gate: str, problems: list[str], *, worst: str, ok: str, **extra: Any) -> GateOutcome:
    return GateOutcome(gate=gate, status=worst if problems else PASS, problems=tuple(problems),
                       summary="; ".join(problems) if problems else ok, **extra)


def _not_graded(gate: str, reason: str, **extra: Any) -> GateOutcome:
    return GateOutcome(gate=gate, status=NOT_GRADED, summary=f"not graded: {reason}", not_graded_reason=reason,
                       **extra)


# ---------------------------------------------------------------- the gates, in pipeline order

def usable_inputs(*, analysable_files: int, pair_problems: Iterable[str] = (), orphan_mates: Iterable[str] = (),
                  samplesheet_problems: Iterable[str] = ()) -> GateOutcome:
    """validated_files_usable (blocking): at least one valid read, alignment or call-set file, every read pair
    complete and consistent, and the samplesheet row satisfied."""
    problems = [] if analysable_files else ["no valid reads, alignments or call set"]
    problems += list(pair_problems)
    problems += [f"{name}: mate file missing" for name in orphan_mates]
    problems += list(samplesheet_problems)
    return _outcome(USABLE_INPUTS, problems, worst=FAIL,
                    ok=f"{analysable_files} analysable file(s), read pairs consistent")


def all_files_valid(files: list[dict[str, Any]]) -> GateOutcome:
    """validated_files_all_valid (warn): every uploaded file valid; each quarantined file with its reason.
    `files` are validation.json's rows."""
    invalid = [f for f in files if not f["valid"]]
    problems = [f"{f['path']}: quarantined, {f.get('reason') or f.get('error_code')}"
                + (f" at line {f['line']}" if f.get("line") else "") + (f": {f['message']}" if f.get("message") else "")
                for f in invalid]
    return _outcome(ALL_FILES_VALID, problems, worst=WARN, ok=f"all {len(files)} file(s) valid")


def reference_consistent(reference_check: dict[str, Any]) -> GateOutcome:
    """qc_metrics_reference_consistent (blocking): the stored comparison of every uploaded BAM/CRAM/SAM/VCF
    with the configured reference (qc.reference_match.sample_verdict). Nothing uploaded to compare passes:
    every uploaded file (there are none) matches."""
    status = reference_check["status"]
    message = reference_check["message"]
    if status == NOT_GRADED:
        return _not_graded(REFERENCE_CONSISTENT, _not_graded_reason(reference_check))
    if status == FAIL:
        problems = [m["message"] for m in reference_check.get("files", []) if m.get("status") == FAIL] or [message]
        return GateOutcome(REFERENCE_CONSISTENT, FAIL, summary=message, problems=tuple(problems))
    return GateOutcome(REFERENCE_CONSISTENT, PASS, summary=message)


def qc_within_profile(files: list[dict[str, Any]], profile: str) -> GateOutcome:
    """qc_metrics_within_profile (blocking): no QC module of any file fails the profile; warnings pass.

    `files` are qc.json's `files` entries (`name` and the `verdict` profiles.grade returned);
    `profile` labels the profile ("standard v1").
    """
    if not files:
        return _not_graded(QC_WITHIN_PROFILE, "no valid file to grade", profile=profile)
    modules = tuple(_module(m, f["name"]) for f in files for m in f["verdict"]["modules"]
                    if m["status"] in (WARN, FAIL))
    failing = [m for m in modules if m.status == FAIL]
    status = max((m.status for m in modules), key=_RANK.__getitem__, default=PASS)
    if failing:
        summary = f"{len(failing)} QC module(s) fail profile {profile}"
    elif modules:
        summary = f"warn under {profile}: " + "; ".join(m.text() for m in modules)
    else:
        summary = f"every QC module passes profile {profile}"
    return GateOutcome(QC_WITHIN_PROFILE, status, summary=summary, problems=tuple(m.text() for m in failing),
                       modules=modules, profile=profile)


def alignment_within_profile(verdict: dict[str, Any]) -> GateOutcome:
    """aligned_reads_within_profile (blocking): the aligned BAM's floors, as qc.alignment_gate.grade_alignment
    graded them (its plain message names the reference when too few reads map)."""
    profile = f"{verdict['profile']} v{verdict['profile_version']}"
    if verdict["status"] == NOT_GRADED:
        return _not_graded(ALIGNMENT_WITHIN_PROFILE, _not_graded_reason(verdict), profile=profile)
    modules = tuple(_module(m, None) for m in verdict["modules"] if m["status"] in (WARN, FAIL))
    problems = (verdict["message"],) if verdict["status"] == FAIL else ()
    return GateOutcome(ALIGNMENT_WITHIN_PROFILE, verdict["status"], summary=verdict["message"], problems=problems,
                       modules=modules, profile=profile)


def callset_within_profile(vcf_metrics: dict[str, Any] | None, profile: QCProfile) -> tuple[GateOutcome, dict]:
    """variant_results_within_profile (warn): Ts/Tv, het/hom ratio and call rate of the call set (bcftools-stats
    metrics, qc.variants.vcf_metrics) within the profile's ranges. Returns the outcome and the grade() verdict.

    Any module outside its range (warn or fail) makes the gate warn; modules with too few SNPs to grade are
    listed as not graded; a call set with nothing graded at all (or no call set) is not graded.
    """
    label = f"{profile.name} v{profile.version}"
    if not vcf_metrics:
        return _not_graded(CALLSET_WITHIN_PROFILE, "no call set for this sample", profile=label), {}
    verdict = grade({**vcf_metrics, "format": "vcf"}, profile)
    graded = [m for m in verdict["modules"] if module_graded(m)]
    ungraded = [m for m in verdict["modules"] if not module_graded(m)] + verdict["not_graded"]
    if not graded:
        reason = "; ".join(m["message"] for m in ungraded) or "the profile has no call-set ranges"
        return _not_graded(CALLSET_WITHIN_PROFILE, reason, profile=label), verdict
    modules = tuple(_module(m, None) for m in graded if m["status"] in (WARN, FAIL))
    status = WARN if modules else PASS
    note = ("; also " + "; ".join(m["message"] for m in ungraded)) if ungraded else ""
    summary = ("outside range: " + "; ".join(m.text() for m in modules) if modules
               else f"within {label}: " + "; ".join(m["message"] for m in graded)) + note
    return GateOutcome(CALLSET_WITHIN_PROFILE, status, summary=summary, problems=tuple(m.text() for m in modules),
                       modules=modules, profile=label), verdict


def module_graded(module: dict[str, Any]) -> bool:
    """Whether profiles.grade() judged a module (with `if_missing: pass` an ungraded check passes; that
    pass must not count as a grade). grade() says so in the entry's `graded` flag."""
    if "graded" in module:
        return bool(module["graded"])
    # Fallback for qc.json / calls.json stored by versions before the `graded` flag: their ungraded
    # entries are recognisable only by the message text grade() wrote, "<label>: not graded (<why>)".
    return module.get("value") is not None and ": not graded (" not in (module.get("message") or "")


def _not_graded_reason(verdict: dict[str, Any]) -> str:
    """Why a stored verdict (reference comparison, alignment grade) was not graded: its `not_graded_reason`;
    for verdicts stored before that field, the text after "not graded: " in its message."""
    reason = verdict.get("not_graded_reason")
    if reason:
        return str(reason)
    return str(verdict.get("message") or "").removeprefix("not graded: ")


def _module(m: dict[str, Any], file: str | None) -> ModuleOutcome:
    bound = m.get("fail") if m["status"] == FAIL else m.get("warn")
    return ModuleOutcome(module=m["name"], status=m["status"], value=m.get("value"), threshold=bound,
                         message=m.get("message") or "", file=file)


_LOG_LABELS = {FAIL: "FAILED", WARN: "WARNED"}


def gate_log_lines(outcome: GateOutcome, sample_id: str) -> list[str]:
    """A failed or warned gate as plain run-log lines, one per module outside the profile (or per problem,
    for a gate without modules), each with the value and the bound it crossed:

        qc_metrics_within_profile FAILED for SAMPLE_B: SAMPLE_B_R1.fastq.gz: per base sequence quality:
        median per-base quality 8 < fail threshold 20 (12 below) at position 2 (profile standard v1)

    A failed gate lists its failing modules (its warnings are in the check's metadata); a warned gate its
    warnings. No lines for a gate that passed or graded nothing. Read from the stored outcome only.
    """
    label = _LOG_LABELS.get(outcome.status)
    if label is None:
        return []
    prefix = f"{outcome.gate} {label} for {sample_id}: "
    suffix = f" (profile {outcome.profile})" if outcome.profile else ""
    modules = [m for m in outcome.modules if m.status == outcome.status]
    if not modules:
        return [prefix + problem + suffix for problem in outcome.problems or (outcome.summary,)]
    return [prefix + _module_line(m) + suffix for m in modules]


def _module_line(module: ModuleOutcome) -> str:
    """The module's own sentence names its value and bound ("... 8 < fail threshold 20 ..."); a module
    stored without one gets them spelled out."""
    where = f"{module.file}: " if module.file else ""
    if module.message:
        return f"{where}{module.module}: {module.message}"
    return f"{where}{module.module}: value {module.value}, {module.status} threshold {module.threshold}"


# ---------------------------------------------------------------- reading stored outcomes

def stored_gates(artifact: dict[str, Any] | None) -> list[GateOutcome]:
    """The outcomes an artifact's JSON stores under "gates" (none when the stage has not run)."""
    return [GateOutcome.from_dict(g) for g in (artifact or {}).get("gates") or []]


def stored_outcomes(*artifacts: dict[str, Any] | None) -> list[GateOutcome]:
    """Every stored outcome of a sample, in pipeline order (validation.json, qc.json, the aligned_reads
    manifest, the variant_results summary; pass whichever exist)."""
    outcomes = [o for a in artifacts for o in stored_gates(a)]
    order = list(GATE_ASSETS)
    return sorted(outcomes, key=lambda o: order.index(o.gate))


@dataclass(frozen=True)
class SampleVerdict:
    """A sample's status over its stored gate outcomes: `fail` when a blocking gate stopped it (`stopped_at`
    names the first), else the worst of the graded outcomes (`warn` for a warning gate that did not pass),
    `not_run` before any QC verdict is stored."""

    status: str
    stopped_at: str | None
    outcomes: tuple[GateOutcome, ...] = field(default=())

    @property
    def stopped_by(self) -> GateOutcome | None:
        return next((o for o in self.outcomes if o.gate == self.stopped_at), None)

    def problems(self) -> list[str]:
        """The failed blocking gate's problems, then every other gate's problems (plain sentences)."""
        first = self.stopped_by
        rest = [p for o in self.outcomes if o is not first and not o.passed and o.graded for p in o.problems]
        return [*(first.problems if first else ()), *rest]


def sample_verdict(outcomes: Iterable[GateOutcome]) -> SampleVerdict:
    outcomes = tuple(outcomes)
    stopped = next((o for o in outcomes if o.stops_sample), None)
    if stopped:
        return SampleVerdict(FAIL, stopped.gate, outcomes)
    if not any(o.asset == "qc_metrics" for o in outcomes):
        return SampleVerdict(NOT_RUN, None, outcomes)
    statuses = [o.status if o.blocking else (PASS if o.passed else WARN) for o in outcomes if o.graded]
    return SampleVerdict(max(statuses, key=_RANK.__getitem__, default=PASS), None, outcomes)


# ---------------------------------------------------------------- the QC profile, chosen once

@dataclass(frozen=True)
class ProfileChoice:
    """The QC profile that grades a sample: `choice` is what load_profile() takes (a shipped name or a YAML
    path), `source` where it came from (run config, samplesheet line, environment default)."""

    choice: str
    name: str
    version: str
    source: str

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


def choose_profile(run_config: str | None, samplesheet_row: dict[str, Any] | None,
                   default: str) -> tuple[ProfileChoice, QCProfile]:
    """The run config, then the sample's samplesheet row (`qc_profile`), then `default`
    (GENOFLOW_QC_PROFILE). Decided by qc_metrics only; later stages read it back (`stored_profile`)."""
    if run_config:
        choice, source = run_config, "run config"
    elif samplesheet_row and samplesheet_row.get("qc_profile"):
        choice, source = samplesheet_row["qc_profile"], f"samplesheet line {samplesheet_row['line']}"
    else:
        choice, source = default, "environment default"
    profile = load_profile(choice)
    return ProfileChoice(choice, profile.name, profile.version, source), profile


def stored_profile(qc_summary: dict[str, Any]) -> QCProfile:
    """The profile qc_metrics chose and stored in qc.json, loaded for a later grading (alignment, call set).

    A custom YAML edited since (another version) is refused rather than silently grading with other ranges.
    """
    profile = load_profile(qc_summary.get("profile_choice") or qc_summary["profile"])
    stored_version = str(qc_summary.get("profile_version", profile.version))
    if profile.version != stored_version:
        raise ValueError(f"QC profile {profile.name} is now version {profile.version}, but this sample's QC was "
                         f"graded with version {stored_version}: re-run qc_metrics")
    return profile


# ---------------------------------------------------------------- headline numbers

@dataclass(frozen=True)
class Headline:
    """A sample's headline numbers: read figures over all its read files (percentages weighted by bases, so
    R1 and R2 count alike), the aligned BAM's figures, and the call set's (bcftools-stats metrics, the
    ones its gate grades). None where the stage did not run or the number is undefined."""

    total_reads: int | None = None
    total_bases: int | None = None
    q30_percent: float | None = None
    gc_percent: float | None = None
    mean_quality: float | None = None
    duplication_percent: float | None = None
    mapped_percent: float | None = None
    properly_paired_percent: float | None = None
    mean_depth: float | None = None
    breadth_10x: float | None = None
    variants: int | None = None
    snvs: int | None = None
    indels: int | None = None
    ts_tv: float | None = None
    het: int | None = None  # SNV genotypes, as bcftools stats counts them (its het/hom ratio's terms)
    hom_alt: int | None = None
    het_hom_ratio: float | None = None
    call_rate: float | None = None
    known: int | None = None
    novel: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def present(self) -> dict[str, float]:
        """The numbers that exist, as floats (for metadata the UI plots)."""
        return {k: float(v) for k, v in asdict(self).items() if v is not None}


def headline_numbers(read_metrics: list[dict[str, Any]] = (), aligned: dict[str, Any] | None = None,  # type: ignore[assignment]
                     callset: dict[str, Any] | None = None,
                     variant_summary: dict[str, Any] | None = None) -> Headline:
    """The one place a sample's headline numbers are computed.

    `read_metrics`: the sample's FASTQ metrics (qc --json fields); `aligned`: the aligned BAM's metrics;
    `callset`: qc.variants.vcf_metrics of the call set (Ts/Tv, het/hom, call rate: what the call-set gate
    grades); `variant_summary`: the annotated table's counts (variants, known/novel).
    """
    reads = [m for m in read_metrics if m]
    aligned = aligned or {}
    callset = callset or {}
    summary = variant_summary or {}
    return Headline(
        total_reads=sum(int(m.get("total_reads") or 0) for m in reads) if reads else None,
        total_bases=sum(int(m.get("total_bases") or 0) for m in reads) if reads else None,
        q30_percent=_weighted(reads, "q30_percent", "total_bases"),
        gc_percent=_weighted(reads, "gc_percent", "total_bases"),
        mean_quality=_weighted(reads, "mean_quality", "total_bases"),
        duplication_percent=_weighted(reads, "duplication_percent", "total_reads"),
        mapped_percent=_number(aligned.get("mapped_percent")),
        properly_paired_percent=_number(aligned.get("properly_paired_percent")),
        mean_depth=_number(aligned.get("mean_depth")),
        breadth_10x=_number(aligned.get("breadth_10x")),
        variants=_count(summary.get("variants")),
        snvs=_count(callset.get("snps")) if callset else _count(summary.get("snvs")),
        indels=_count(callset.get("indels")) if callset else _count(summary.get("indels")),
        ts_tv=_number(callset.get("ts_tv")),
        het=_per_sample_sum(callset, "het"),
        hom_alt=_per_sample_sum(callset, "hom_alt"),
        het_hom_ratio=_number(callset.get("het_hom_ratio")),
        call_rate=_number(callset.get("call_rate")),
        known=_count(summary.get("known")),
        novel=_count(summary.get("novel")),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def _per_sample_sum(callset: dict[str, Any], name: str) -> int | None:
    per_sample = callset.get("per_sample") or {}
    return sum(int(d.get(name) or 0) for d in per_sample.values()) if per_sample else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _weighted(rows: list[dict[str, Any]], name: str, weight: str) -> float | None:
    pairs = [(float(r[name]), float(r.get(weight) or 0)) for r in rows if _number(r.get(name)) is not None]
    total = sum(w for _, w in pairs)
    if not pairs or total == 0:
        return None
    return round(sum(v * w for v, w in pairs) / total, 4)
