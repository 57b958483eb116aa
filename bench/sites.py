"""Quality benchmarks on several Stack Exchange sites: which folders, per-site and pooled figures, intervals.

`bench/search.py` and `bench/routing.py` measure each site on its own queries and hand over one value per
query and measure (a hit is 1.0 or 0.0, a reciprocal rank its value). A site's figure is the mean over its
queries; the pooled figure is the mean over every query of every site (query-weighted: a site with many
queries weighs more). An interval is the 95 % percentile interval of the mean difference between a ranker
and a baseline on the same queries (paired), from resampling each site's queries with replacement,
stratified (each site keeps its number of queries in every resample), with a fixed seed: the same values
give the same interval. For one site the pooled figures and interval are that site's.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SITE_PREFIX = "stackexchange-"
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0

Interval = tuple[float, float]


# --- which sites -----------------------------------------------------------------------------------------


def add_site_arguments(parser: argparse.ArgumentParser) -> None:
    """--data DIR (repeat it, or give several folders) and --all-sites DIR."""
    parser.add_argument(
        "--data",
        type=Path,
        nargs="+",
        action="extend",
        default=[],
        metavar="DIR",
        help="folder of an unpacked Stack Exchange dump (Posts.xml, ...); repeat it or name several folders",
    )
    parser.add_argument(
        "--all-sites",
        type=Path,
        metavar="DIR",
        help=f"also every {SITE_PREFIX}* folder directly under DIR",
    )


def site_folders(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Path]:
    """The folders named by --data and --all-sites, in that order, each once; an error if there are none."""
    try:
        folders = select_sites(args.data, args.all_sites)
    except ValueError as error:
        parser.error(str(error))
    return folders


def select_sites(data: Sequence[Path], all_sites: Path | None = None) -> list[Path]:
    folders = list(data)
    if all_sites is not None:
        if not all_sites.is_dir():
            raise ValueError(f"--all-sites: {all_sites} is not a folder")
        folders += sorted(p for p in all_sites.iterdir() if p.is_dir() and p.name.startswith(SITE_PREFIX))
    unique = list({folder.resolve(): folder for folder in folders}.values())
    if not unique:
        raise ValueError("name at least one site: --data DIR or --all-sites DIR")
    names = [site_name(folder) for folder in unique]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise ValueError(f"two folders have the same site name: {', '.join(clashes)}")
    return unique


def site_name(folder: Path) -> str:
    """ "stackexchange-cardano" -> "cardano"; any other folder keeps its name."""
    name = folder.resolve().name
    return name.removeprefix(SITE_PREFIX) or name


# --- per-query values, pooled means and intervals ----------------------------------------------------------


@dataclass(frozen=True)
class SiteValues:
    """One site's per-query values: measure key -> one value per query, in the same query order for every key."""

    name: str
    values: Mapping[str, Sequence[float]]
    extra: Mapping[str, object] = field(default_factory=dict)  # site facts for the report (counts, timings)

    @property
    def n(self) -> int:
        return len(next(iter(self.values.values()), ()))


def pooled_means(sites: Sequence[SiteValues], keys: Sequence[str]) -> dict[str, float | None]:
    """The query-weighted mean of each key over all the sites' queries (None when there are no queries)."""
    total = sum(site.n for site in sites)
    return {key: (sum(sum(site.values[key]) for site in sites) / total if total else None) for key in keys}


def paired_intervals(
    sites: Sequence[SiteValues],
    comparisons: Mapping[str, tuple[str, str]],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Interval | None]:
    """95 % stratified paired bootstrap interval of mean(first) - mean(second) for each named comparison.

    `comparisons` maps a name to (key of the ranker, key of the baseline). Every resample draws, for each
    site, as many of its queries as it has (with replacement), and the same draw serves every comparison.
    """
    strata = []
    for site in sites:
        if site.n:
            diffs = {
                name: [a - b for a, b in zip(site.values[first], site.values[second], strict=True)]
                for name, (first, second) in comparisons.items()
            }
            strata.append((range(site.n), diffs))
    total = sum(len(population) for population, _ in strata)
    if not total:
        return dict.fromkeys(comparisons)
    rng = random.Random(seed)
    means: dict[str, list[float]] = {name: [] for name in comparisons}
    for _ in range(samples):
        sums = dict.fromkeys(comparisons, 0.0)
        for population, diffs in strata:
            drawn = rng.choices(population, k=len(population))
            for name, values in diffs.items():
                sums[name] += sum(map(values.__getitem__, drawn))
        for name, value in sums.items():
            means[name].append(value / total)
    return {name: percentile_interval(values) for name, values in means.items()}


def percentile_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """The central `level` percentile interval of bootstrap means."""
    ordered = sorted(values)
    tail = (1 - level) / 2
    return ordered[int(tail * len(ordered))], ordered[max(0, int((1 - tail) * len(ordered)) - 1)]


# --- the report --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    label: str
    key: str
    width: int = 9


@dataclass(frozen=True)
class MultiSiteReport:
    """Every site's figures and the pooled ones, with the intervals of each comparison."""

    per_site: dict[str, dict[str, object]]  # site name -> its figures, with its "ci95"
    pooled: dict[str, object]  # the pooled figures, with the pooled "ci95"

    def as_json(self) -> dict[str, object]:
        """Today's keys at the top (one site: its figures; several: the pooled ones), plus per_site and sites."""
        return self.pooled | {"sites": list(self.per_site), "per_site": self.per_site}


def build_report(
    sites: Sequence[SiteValues],
    comparisons: Mapping[str, tuple[str, str]],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
    digits: int = 4,
) -> MultiSiteReport:
    """Means (rounded to `digits`), n and ci95 for each site and for the pool; the sites' `extra` facts kept."""
    keys = list(sites[0].values) if sites else []

    def figures(group: Sequence[SiteValues]) -> dict[str, object]:
        means = pooled_means(group, keys)
        intervals = paired_intervals(group, comparisons, samples=samples, seed=seed)
        differences = {name: _minus(means[first], means[second]) for name, (first, second) in comparisons.items()}
        return {key: _rounded(value, digits) for key, value in means.items()} | {
            "n": sum(site.n for site in group),
            "difference": {name: _rounded(value, digits) for name, value in differences.items()},
            "ci95": {name: None if ci is None else [round(b, digits) for b in ci] for name, ci in intervals.items()},
        }

    per_site = {site.name: figures([site]) | dict(site.extra) for site in sites}
    return MultiSiteReport(per_site, figures(sites))


def _minus(first: float | None, second: float | None) -> float | None:
    return None if first is None or second is None else first - second


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def format_table(
    report: MultiSiteReport,
    columns: Sequence[Column],
    comparisons: Mapping[str, tuple[str, str]],
    *,
    n_label: str = "queries",
) -> str:
    """The figures, one row per site and a pooled row; then the differences with their intervals, the same way."""
    names = list(report.per_site)
    rows = [(name, report.per_site[name]) for name in names]
    if len(rows) > 1:
        rows.append(("pooled", report.pooled))
    name_width = max(len(name) for name, _ in rows) + 2
    lines = [f"{'site':<{name_width}}{n_label:>9}" + "".join(f"{c.label:>{c.width}}" for c in columns)]
    for name, figures in rows:
        cells = "".join(f"{_cell(figures.get(c.key)):>{c.width}}" for c in columns)
        lines.append(f"{name:<{name_width}}{figures['n']!s:>9}{cells}")
    if comparisons:
        lines.append("differences, with 95 % paired bootstrap intervals:")
        lines.append(f"{'site':<{name_width}}" + "".join(f"{name:>26}" for name in comparisons))
        for name, figures in rows:
            cells = "".join(f"{_difference(figures, name):>26}" for name in comparisons)
            lines.append(f"{name:<{name_width}}{cells}")
    return "\n".join(lines)


def _cell(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-"


def _difference(figures: Mapping[str, object], name: str) -> str:
    differences, intervals = figures.get("difference"), figures.get("ci95")
    difference = differences.get(name) if isinstance(differences, dict) else None
    interval = intervals.get(name) if isinstance(intervals, dict) else None
    if difference is None or interval is None:
        return "-"
    return f"{difference:+.3f} [{interval[0]:+.3f}, {interval[1]:+.3f}]"
