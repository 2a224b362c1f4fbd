"""QC profiles and grading: FastQC-style pass / warn / fail from a stored metrics dict.

A profile is a YAML file: one shipped with the package (`profiles/<name>.yaml`:
`standard` (WGS), `strict`, `exome`, `panel`, `amplicon`; `shipped_profiles()`
lists them), or any path of the same shape:

```yaml
name: standard
version: 1
checks:
  - module: per base sequence quality   # FastQC module the check belongs to
    formats: [fastq]
    metric: per_base_quality_median     # a metric key, or a derived metric below
    direction: min                      # min: low is bad; max: high is bad; range: [low, high]
    warn: 25
    fail: 20
    min_support: {total_reads: 1}       # optional: skip the check below these counts
    if_missing: pass                    # optional: `pass` (default) or `not_graded`, see below
```

Grading reads nothing but the metrics dict, so switching profile re-grades a
sample without recomputing anything. A module's status is the worst of its
checks; its `value`/`warn`/`fail`/`message` come from the check that decided it.
Comparisons are strict, as in FastQC (a median of exactly 25 passes a warn of 25),
except where FastQC's own test includes the bound: a check with `inclusive: true`
is crossed at the bound too. That is FastQC's per-sequence quality rule (a modal
mean quality of exactly 20 fails, of 27 warns), so `per_sequence_quality_mode`
checks are inclusive unless a profile says `inclusive: false`.

A check whose metric is absent (or below its `min_support`) normally passes
with a "not graded" message. With `if_missing: not_graded` it does not count
at all: it is listed under the verdict's `not_graded` instead, and a module
with nothing graded is left out of `modules`. That is for metrics that exist
only when something is configured (the contamination screen), where a pass
would claim a check that never ran.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

_RANK = {"pass": 0, "warn": 1, "fail": 2}
FASTQ_MODULES = (
    "basic statistics",
    "per base sequence quality",
    "per sequence quality scores",
    "per base sequence content",
    "per sequence GC content",
    "per base N content",
    "sequence length distribution",
    "sequence duplication levels",
    "overrepresented sequences",
    "adapter content",
)
_FORMAT_FAMILY = {"sam": "alignment", "bam": "alignment", "cram": "alignment", "vcf": "vcf", "bcf": "vcf",
                  "fastq": "fastq", "csv": "tabular", "tsv": "tabular", "xlsx": "tabular"}


@dataclass(frozen=True)
class Threshold:
    """One graded check: the metric, which side is bad, and the warn/fail bounds."""

    module: str
    metric: str
    direction: str = "min"  # "min" | "max" | "range"
    warn: float | list[float] | None = None
    fail: float | list[float] | None = None
    formats: tuple[str, ...] = ()
    min_support: dict[str, float] = field(default_factory=dict)
    label: str | None = None
    if_missing: str = "pass"  # "pass" | "not_graded"
    inclusive: bool | None = None  # the bound itself is crossed; None: as FastQC for this metric

    @property
    def at_bound(self) -> bool:
        """Whether a value equal to a bound crosses it."""
        return self.metric in _FASTQC_INCLUSIVE if self.inclusive is None else self.inclusive


@dataclass(frozen=True)
class QCProfile:
    name: str
    version: str
    thresholds: tuple[Threshold, ...]
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "checks": [
                {k: v for k, v in {
                    "module": t.module, "metric": t.metric, "direction": t.direction, "warn": t.warn,
                    "fail": t.fail, "formats": list(t.formats), "min_support": t.min_support or None,
                    "label": t.label,
                    "if_missing": t.if_missing if t.if_missing != "pass" else None,
                    "inclusive": t.inclusive}.items() if v is not None}
                for t in self.thresholds
            ],
        }


class ProfileError(ValueError):
    """A profile file that does not have the expected shape."""


def _profile_from_dict(data: dict[str, Any], source: str) -> QCProfile:
    if not isinstance(data, dict) or "checks" not in data:
        raise ProfileError(f"{source}: a QC profile needs 'name', 'version' and a 'checks' list")
    checks = []
    for i, raw in enumerate(data.get("checks") or []):
        try:
            direction = raw.get("direction", "min")
            if direction not in ("min", "max", "range"):
                raise ProfileError(f"{source}: check {i + 1}: direction must be min, max or range")
            if_missing = raw.get("if_missing", "pass")
            if if_missing not in ("pass", "not_graded"):
                raise ProfileError(f"{source}: check {i + 1}: if_missing must be pass or not_graded")
            checks.append(Threshold(
                module=str(raw["module"]),
                metric=str(raw["metric"]),
                direction=direction,
                warn=raw.get("warn"),
                fail=raw.get("fail"),
                formats=tuple(raw.get("formats") or ()),
                min_support=dict(raw.get("min_support") or {}),
                label=raw.get("label"),
                if_missing=if_missing,
                inclusive=None if raw.get("inclusive") is None else bool(raw["inclusive"]),
            ))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProfileError(f"{source}: check {i + 1} is malformed ({exc})") from exc
    return QCProfile(name=str(data.get("name") or Path(source).stem), version=str(data.get("version", "1")),
                     thresholds=tuple(checks), description=str(data.get("description") or ""))


def shipped_profiles() -> tuple[str, ...]:
    """Names of the profiles shipped in the package's `profiles/` directory, sorted."""
    folder = resources.files("genoflow_dagster.qc").joinpath("profiles")
    return tuple(sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml")))


def load_profile(name_or_path: str) -> QCProfile:
    """A shipped profile by name (`shipped_profiles()`), or a path to a custom YAML profile of the same shape."""
    if name_or_path in shipped_profiles():
        text = resources.files("genoflow_dagster.qc").joinpath("profiles", f"{name_or_path}.yaml").read_text()
        source = name_or_path
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ProfileError(f"unknown QC profile {name_or_path!r}: not one of "
                               f"{', '.join(shipped_profiles())} or a YAML file")
        text = path.read_text()
        source = str(path)
    return _profile_from_dict(yaml.safe_load(text), source)


# Metrics whose FastQC test includes its bound (PerSequenceQualityScores: mode <= error / warn).
_FASTQC_INCLUSIVE = frozenset({"per_sequence_quality_mode"})

# FastQC limits.txt keys -> our checks (module, metric, direction); kmer and tile are not graded.
_FASTQC_LIMITS = {
    "duplication": ("sequence duplication levels", "deduplicated_percent", "min"),
    "n_content": ("per base N content", "per_base_n_max", "max"),
    "overrepresented": ("overrepresented sequences", "overrepresented_max_percent", "max"),
    "quality_base_lower": ("per base sequence quality", "per_base_quality_lower_quartile", "min"),
    "quality_base_median": ("per base sequence quality", "per_base_quality_median", "min"),
    "sequence": ("per base sequence content", "per_base_content_max_difference", "max"),
    "gc_sequence": ("per sequence GC content", "per_sequence_gc_deviation", "max"),
    "quality_sequence": ("per sequence quality scores", "per_sequence_quality_mode", "min"),
    "adapter": ("adapter content", "adapter_max_percent", "max"),
}


def import_fastqc_limits(path: str | Path) -> dict[str, Any]:
    """A FastQC `limits.txt` as a profile dict of our shape (dump it with yaml.safe_dump).

    Lines are `<module> <warn|error|ignore> <value>`; `ignore 1` drops a module.
    `sequence_length` is mapped to FastQC's rule (warn on varying length, fail on zero length).
    """
    limits: dict[str, dict[str, float]] = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 3:
            continue
        try:
            limits.setdefault(parts[0], {})[parts[1]] = float(parts[2])
        except ValueError:
            continue
    checks: list[dict[str, Any]] = [{"module": "basic statistics", "metric": "total_reads", "direction": "min",
                                     "formats": ["fastq"]}]
    for key, (module, metric, direction) in _FASTQC_LIMITS.items():
        entry = limits.get(key)
        if entry is None or entry.get("ignore"):
            continue
        checks.append({"module": module, "metric": metric, "direction": direction, "formats": ["fastq"],
                       "warn": entry.get("warn"), "fail": entry.get("error")})
    if not limits.get("sequence_length", {}).get("ignore"):
        checks.append({"module": "sequence length distribution", "metric": "length_spread", "direction": "max",
                       "warn": 0, "formats": ["fastq"]})
        checks.append({"module": "sequence length distribution", "metric": "zero_length_reads",
                       "direction": "max", "fail": 0, "formats": ["fastq"]})
    return {"name": Path(path).stem, "version": "1", "description": f"imported from FastQC limits {path}",
            "checks": checks}


# ---------------------------------------------------------------- derived metrics
# Each returns (value, where) from the stored metrics alone; `where` locates the worst point.

def _worst_position(rows: list[dict[str, Any]] | None, key: str, worst: Callable) -> tuple[float | None, str]:
    best_row = None
    for row in rows or []:
        v = row.get(key)
        if v is None:
            continue
        if best_row is None or worst(v, best_row[key]):
            best_row = row
    if best_row is None:
        return None, ""
    return best_row[key], f"at position {best_row.get('base', best_row.get('start'))}"


def _lower(a: float, b: float) -> bool:
    return a < b


def _higher(a: float, b: float) -> bool:
    return a > b


def _base_content_diff(m: dict[str, Any]) -> tuple[float | None, str]:
    worst, where = None, ""
    for row in m.get("per_base_content") or []:
        if row["A"] is None:  # no A/C/G/T in this group: FastQC's NaN, which never crosses a bound
            continue
        d = max(abs(row["A"] - row["T"]), abs(row["G"] - row["C"]))
        if worst is None or d > worst:
            worst, where = d, f"at position {row.get('base')}"
    return (round(worst, 3) if worst is not None else None), where


def _gc_deviation(m: dict[str, Any]) -> tuple[float | None, str]:
    """FastQC's per-sequence GC rule (PerSequenceGCContent): the centre is the first modal bin,
    averaged with the neighbours on both sides that stay above 90% of it (unless that run reaches
    either end of the scale); the spread is the standard deviation about that centre (n - 1); the
    normal density times the total is compared bin by bin, and the summed absolute difference is
    reported as % of the total."""
    hist = m.get("per_sequence_gc") or []
    total = 0.0
    for h in hist:
        total += h
    if total == 0:
        return None, ""
    first = max(range(len(hist)), key=lambda i: (hist[i], -i))
    floor = hist[first] - hist[first] / 10
    up = next((i for i in range(first, len(hist)) if not hist[i] > floor), None)
    down = next((i for i in range(first - 1, -1, -1) if not hist[i] > floor), None)
    mode = float(first) if up is None or down is None else sum(range(down + 1, up)) / (up - down - 1)
    var = 0.0
    for i, h in enumerate(hist):
        var += (i - mode) ** 2 * h
    # Java's double arithmetic where a tiny total (< 2 reads' weight) leaves no spread to fit:
    # x / 0 is infinite (or NaN), the square root of a negative NaN; a NaN deviation never fails.
    var = var / (total - 1) if total != 1 else (math.inf if var else math.nan)
    sd = math.sqrt(var) if var >= 0 else math.nan
    if not sd or math.isnan(sd):
        return None, "(no spread to fit a normal to)"
    deviation = 0.0
    for i, h in enumerate(hist):
        density = 1 / math.sqrt(2 * math.pi * sd * sd) * math.e ** -((i - mode) ** 2 / (2 * sd * sd))
        deviation += abs(density * total - h)
    return deviation / total * 100, f"(mode {mode:g}% GC)"


def _seq_quality_mode(m: dict[str, Any]) -> tuple[float | None, str]:
    hist = m.get("per_sequence_quality") or {}
    if not hist:
        return None, ""
    q = max(hist, key=lambda k: hist[k])
    return float(q), ""


def _overrepresented_max(m: dict[str, Any]) -> tuple[float | None, str]:
    seqs = m.get("overrepresented_sequences") or []
    if not seqs:
        return 0.0, ""
    top = max(seqs, key=lambda s: s["percent"])
    source = f" ({top['possible_source']})" if top.get("possible_source") else ""
    return top["percent"], f"for {top['sequence'][:20]}...{source}"


def _adapter_max(m: dict[str, Any]) -> tuple[float | None, str]:
    worst, where = 0.0, ""
    positions = m.get("adapter_content_positions") or []  # FastQC's base groups, when stored
    for name, values in (m.get("adapter_content") or {}).items():
        for i, v in enumerate(values):
            if v > worst:
                worst, where = v, f"({name} at position {positions[i] if i < len(positions) else i + 1})"
    return worst, where


def _length_spread(m: dict[str, Any]) -> tuple[float | None, str]:
    if not m.get("total_reads") or m.get("min_length") is None or m.get("max_length") is None:
        return None, ""
    return float(m["max_length"] - m["min_length"]), f"(lengths {m['min_length']}-{m['max_length']})"


def _zero_length(m: dict[str, Any]) -> tuple[float | None, str]:
    return float((m.get("length_distribution") or {}).get("0", 0)), ""


def _contamination(m: dict[str, Any]) -> tuple[float | None, str]:
    """The screen's `contamination_percent` (qc/contamination.py), or None when it did not run."""
    screen = m.get("contamination") or {}
    value = screen.get("contamination_percent")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None, str(screen.get("reason") or "")
    refs = screen.get("references") or []
    target = next((r["name"] for r in refs if r.get("role") == "target"), "the reference")
    shares = ", ".join(f"{r['name']} {_fmt(float(r.get('percent') or 0))}%" for r in refs
                       if r.get("role") == "contaminant")
    return float(value), f"of {screen.get('reads_sampled', 0):,} reads vs {target} ({shares})"


# Metrics that exist only when a targets BED was given (qc/targets.py): absent, they say why.
TARGET_METRICS = ("on_target_reads_percent", "target_mean_depth", "target_breadth_1x", "target_breadth_10x",
                  "target_breadth_20x", "target_breadth_30x", "amplicons_below_floor",
                  "amplicons_below_floor_percent", "min_amplicon_depth")


def _targeted(m: dict[str, Any], name: str) -> tuple[float | None, str]:
    value = m.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None, "no targets BED configured" if not m.get("targets_bed") else "not available"
    where = ""
    if name.startswith("amplicons_below_floor"):
        where = f"({m.get('amplicons_below_floor')} of {m.get('amplicons')} amplicons below {m.get('amplicon_floor')}x)"
    elif name == "min_amplicon_depth" and m.get("amplicon_depths"):
        low = min(m["amplicon_depths"], key=lambda a: a["mean_depth"])
        where = f"({low['name']}, {low['chrom']}:{low['start'] + 1}-{low['end']})"
    return float(value), where


DERIVED: dict[str, Callable[[dict[str, Any]], tuple[float | None, str]]] = {
    "per_base_quality_lower_quartile": lambda m: _worst_position(m.get("per_position_quality"), "lower_quartile",
                                                                 _lower),
    "per_base_quality_median": lambda m: _worst_position(m.get("per_position_quality"), "median", _lower),
    "per_base_quality_mean": lambda m: _worst_position(m.get("per_position_quality"), "mean", _lower),
    "per_base_n_max": lambda m: _worst_position(m.get("per_base_n"), "N", _higher),
    "per_base_content_max_difference": _base_content_diff,
    "per_sequence_gc_deviation": _gc_deviation,
    "per_sequence_quality_mode": _seq_quality_mode,
    "overrepresented_max_percent": _overrepresented_max,
    "adapter_max_percent": _adapter_max,
    "length_spread": _length_spread,
    "zero_length_reads": _zero_length,
    "contamination_percent": _contamination,
    **{name: functools.partial(_targeted, name=name) for name in TARGET_METRICS},
}

_LABELS = {
    "per_base_quality_lower_quartile": "lower-quartile per-base quality",
    "per_base_quality_median": "median per-base quality",
    "per_base_quality_mean": "mean per-base quality",
    "per_base_n_max": "per-base N %",
    "per_base_content_max_difference": "A/T or G/C difference %",
    "per_sequence_gc_deviation": "GC distribution deviation from normal %",
    "per_sequence_quality_mode": "most frequent mean read quality",
    "overrepresented_max_percent": "overrepresented sequence %",
    "adapter_max_percent": "adapter content %",
    "length_spread": "read length spread",
    "zero_length_reads": "zero-length reads",
    "deduplicated_percent": "deduplicated % of reads (FastQC)",
    "duplication_percent": "duplicated % of reads (FastQC)",
    "contamination_percent": "reads mapping better to a contaminant %",
    "on_target_reads_percent": "primary mapped reads overlapping a target %",
    "target_mean_depth": "mean depth over the targets",
    "target_breadth_1x": "target bases at >= 1x %",
    "target_breadth_10x": "target bases at >= 10x %",
    "target_breadth_20x": "target bases at >= 20x %",
    "target_breadth_30x": "target bases at >= 30x %",
    "amplicons_below_floor": "amplicons below the depth floor",
    "amplicons_below_floor_percent": "amplicons below the depth floor %",
    "min_amplicon_depth": "lowest amplicon mean depth",
}


def metric_value(metrics: dict[str, Any], name: str) -> tuple[float | None, str]:
    """A metric by name: a derived one, a top-level key, or a dotted path (`per_sample.S1.het`)."""
    if name in DERIVED:
        return DERIVED[name](metrics)
    value: Any = metrics
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None, ""
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, ""
    return float(value), ""


def _fmt(x: float) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _margin(x: float) -> str:
    """How far past a threshold, in the metric's own unit."""
    return _fmt(round(x, 4) if not float(x).is_integer() else int(x))


def _judge(t: Threshold, value: float) -> tuple[str, str | None, Any]:
    """Status, message fragment and the bound that was crossed."""
    for status, bound in (("fail", t.fail), ("warn", t.warn)):
        if bound is None:
            continue
        if t.direction == "min" and (value < float(bound) or (t.at_bound and value == float(bound))):  # type: ignore[arg-type]
            return status, (f"{'<=' if t.at_bound else '<'} {status} threshold {_fmt(float(bound))} "  # type: ignore[arg-type]
                            f"({_margin(float(bound) - value)} below)"), bound  # type: ignore[arg-type]
        if t.direction == "max" and (value > float(bound) or (t.at_bound and value == float(bound))):  # type: ignore[arg-type]
            return status, (f"{'>=' if t.at_bound else '>'} {status} threshold {_fmt(float(bound))} "  # type: ignore[arg-type]
                            f"({_margin(value - float(bound))} above)"), bound  # type: ignore[arg-type]
        if t.direction == "range":
            lo, hi = bound  # type: ignore[misc]
            if value < lo or value > hi:
                off = f"{_margin(lo - value)} below" if value < lo else f"{_margin(value - hi)} above"
                return status, f"outside {status} range [{_fmt(lo)}, {_fmt(hi)}] ({off})", bound
    return "pass", None, None


def grade(metrics: dict[str, Any], profile: QCProfile) -> dict[str, Any]:
    """Grade a metrics dict (as stored) against a profile.

    Returns `{"status", "profile", "profile_version", "modules": [{"name", "status",
    "value", "warn", "fail", "message", "graded"}], "not_graded": [...]}`; checks for other
    formats are skipped, and a check whose metric is absent (or below its `min_support`) passes
    as "not applicable", or with `if_missing: not_graded` goes to `not_graded` (same fields,
    no status) and leaves the module's status alone. Such an entry carries `"graded": False`
    and `"not_graded_reason"`, so no reader has to recognise it from its message; an entry
    judged against its thresholds carries `"graded": True`.
    """
    fmt = str(metrics.get("format") or _guess_format(metrics))
    family = _FORMAT_FAMILY.get(fmt, fmt)
    modules: dict[str, dict[str, Any]] = {}
    not_graded: list[dict[str, Any]] = []
    for t in profile.thresholds:
        if t.formats and fmt not in t.formats and family not in t.formats:
            continue
        label = t.label or _LABELS.get(t.metric, t.metric.replace("_", " "))
        value, where = metric_value(metrics, t.metric)
        entry: dict[str, Any] = {"name": t.module, "status": "pass", "value": value, "warn": t.warn,
                                 "fail": t.fail, "metric": t.metric, "message": "", "graded": True}
        unsupported = [k for k, v in t.min_support.items() if (metric_value(metrics, k)[0] or 0) < float(v)]
        if value is None or unsupported:
            # a derived metric may say why it is absent in place of where its worst point is
            reason = f"too few {', '.join(unsupported)}" if unsupported else where or "not available"
            entry["message"] = f"{label}: not graded ({reason})"
            entry["graded"] = False
            entry["not_graded_reason"] = reason
            if t.if_missing == "not_graded":
                del entry["status"]
                not_graded.append(entry)
                continue
        else:
            status, fragment, _bound = _judge(t, value)
            entry["status"] = status
            where_s = f" {where}" if where else ""
            if fragment:
                entry["message"] = f"{label} {_fmt(value)} {fragment}{where_s}"
            else:
                entry["message"] = f"{label} {_fmt(value)}{where_s}"
        current = modules.get(t.module)
        if current is None or _RANK[entry["status"]] > _RANK[current["status"]]:
            modules[t.module] = entry
    result = list(modules.values())
    status = max((m["status"] for m in result), key=_RANK.__getitem__, default="pass")
    return {"status": status, "profile": profile.name, "profile_version": profile.version, "format": fmt,
            "modules": result, "not_graded": not_graded}


def _guess_format(metrics: dict[str, Any]) -> str:
    if "total_reads" in metrics:
        return "fastq"
    if "primary" in metrics and "mapped" in metrics:
        return "bam"
    if "snps" in metrics:
        return "vcf"
    if "quality_score" in metrics:
        return "csv"
    return "unknown"
