"""The analytics report as people and programs read it: the `stats` verb's table, JSON and CSV, and the words
for its figures (durations, rates) that the App Home uses too. The figures themselves: bot/stats.py."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from bot.stats import Figures, Report


def duration_text(seconds: float | None) -> str:
    """45s, 12m, 3h 05m, 2d 4h; an em dash when there is nothing to measure. Medians come from the stats
    rollup's histograms (models/stats_rollup.py: within a bucket's width of the truth), so above a minute the
    seconds are left out rather than shown more precisely than they are known."""
    if seconds is None:
        return "—"
    if seconds < 59.5:
        return f"{int(seconds + 0.5)}s"
    if seconds < 3600 - 30:
        return f"{int(seconds / 60 + 0.5)}m"
    hours, minutes = divmod(int(seconds / 60 + 0.5), 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def rate_text(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.0%}"


def _figures_dict(figures: Figures) -> dict[str, Any]:
    return {**asdict(figures), "answer_rate": figures.answer_rate}


def report_dict(report: Report) -> dict[str, Any]:
    """The JSON shape of a report (durations in seconds, rates between 0 and 1, null when unmeasurable)."""
    return {
        "team_id": report.team_id,
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "overall": _figures_dict(report.overall),
        "tags": [
            {"tag": t.tag, **_figures_dict(t.figures), "experts": t.experts, "available_experts": t.available_experts}
            for t in report.tags
        ],
        "gaps": [{**asdict(g), "reason": g.reason} for g in report.gaps],
        "suggestion": report.suggestion,
        "mentor_demand": [{"tag": tag, "waiting": waiting} for tag, waiting in report.mentor_demand],
        "trend": [{"week": w.start.isoformat(), **_figures_dict(w.figures)} for w in report.trend],
    }


def render_json(reports: Sequence[Report]) -> str:
    return json.dumps({"workspaces": [report_dict(r) for r in reports]}, indent=2, ensure_ascii=False)


CSV_COLUMNS = ("team_id", "section", "key", "metric", "value")
CsvRow = tuple[str, str, str, str, Any]


def render_csv(reports: Sequence[Report]) -> str:
    """One tidy table: team_id, section (window | overall | tag | gap | suggestion | trend), key (tag or week),
    metric, value — every figure of the JSON output, ready for a spreadsheet's pivot table."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for report in reports:
        writer.writerows(_csv_rows(report))
    return out.getvalue()


def _csv_rows(report: Report) -> Iterable[CsvRow]:
    data, team = report_dict(report), report.team_id

    def rows(section: str, key: str, values: dict[str, Any], skip: str = "") -> Iterable[CsvRow]:
        for metric, value in values.items():
            if metric != skip:
                yield (team, section, key, metric, "" if value is None else value)

    yield (team, "window", "", "since", data["since"])
    yield (team, "window", "", "until", data["until"])
    yield from rows("overall", "", data["overall"])
    for tag in data["tags"]:
        yield from rows("tag", tag["tag"], tag, skip="tag")
    for gap in data["gaps"]:
        yield from rows("gap", gap["tag"], gap, skip="tag")
    if data["suggestion"]:
        yield (team, "suggestion", data["gaps"][0]["tag"], "text", data["suggestion"])
    for demand in data["mentor_demand"]:
        yield (team, "mentor_demand", demand["tag"], "waiting", demand["waiting"])
    for week in data["trend"]:
        yield from rows("trend", week["week"], week, skip="week")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return lines


def _figure_cells(figures: Figures) -> list[str]:
    return [
        str(figures.asked),
        str(figures.answered),
        rate_text(figures.answer_rate),
        duration_text(figures.median_first_answer),
        duration_text(figures.median_accepted),
    ]


def render_table(reports: Sequence[Report]) -> str:
    blocks = []
    for report in reports:
        o = report.overall
        days = (report.until - report.since) / timedelta(days=1)
        lines = [
            f"PeerLearn stats for {report.team_id}: {report.since:%Y-%m-%d %H:%M} → {report.until:%Y-%m-%d %H:%M} "
            f"UTC ({days:g} days)",
            "",
            f"Questions asked            {o.asked}",
            f"Answered                   {o.answered} ({rate_text(o.answer_rate)})",
            f"  by the knowledge base    {o.answered_by_knowledge_base}",
            f"Accepted answer            {o.accepted}",
            f"Median to first answer     {duration_text(o.median_first_answer)}",
            f"Median to accepted answer  {duration_text(o.median_accepted)}",
            "",
            "Per tag",
        ]
        header = ["tag", "asked", "answered", "rate", "first answer", "accepted", "experts", "available"]
        tag_rows = [
            [f"#{t.tag}", *_figure_cells(t.figures), str(t.experts), str(t.available_experts)] for t in report.tags
        ]
        lines += _table(header, tag_rows) if tag_rows else ["(no tags)"]
        lines += ["", "Knowledge gaps"]
        if report.gaps:
            header = ["tag", "asked", "unanswered", "available", "why"]
            gap_rows = [
                [f"#{g.tag}", str(g.asked), str(g.unanswered), str(g.available_experts), g.reason] for g in report.gaps
            ]
            lines += _table(header, gap_rows)
            lines += ["", f"Suggestion: {report.suggestion}"]
        else:
            lines.append("(none: every tag asked about has enough available go-to people)")
        if report.mentor_demand:
            waiting = ", ".join(f"#{tag} ({n})" for tag, n in report.mentor_demand)
            lines.append(f"Waiting for a mentor: {waiting}")
        lines += ["", "Weekly trend (weeks start on Monday, UTC)"]
        header = ["week of", "asked", "answered", "rate", "first answer", "accepted"]
        lines += _table(header, [[w.start.isoformat(), *_figure_cells(w.figures)] for w in report.trend])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
