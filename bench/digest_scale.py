"""Digests and stats at scale on PostgreSQL: 100 channel digests and the workspace stats, 10k → 100k → 1M questions.

    python bench/digest_scale.py [--quick] [--json] [--sizes 10000,100000,1000000] [--no-baseline]

For each size, a scratch PostgreSQL database (dropped afterwards) is migrated with the app's migrations and
loaded with COPY: one workspace, 10k people, 100 channels all subscribed to the weekly digest, N questions
over two years (65 % resolved with an accepted answer, the rest open), 3 answers per question (3N), one or
two tags per question (300 tags), an accept vote per resolved question and a helpful vote on every second
question, N/50 lessons, 3,000 declared topics. The load runs with triggers off (session_replication_role =
replica): the search index is not built, as neither digests nor stats read it. Then VACUUM ANALYZE, as
autovacuum would.

Measured, as the scheduler and the stats verb run them (posting excluded):
- all digests: `bot.digest.posting.due_digests` at Monday 09:00 (the 100 due channels), then for each channel
  `models.digest.load_digest_data` for its week and `bot.digest.content.build_digest` (the Block Kit message), each
  channel in its own transaction like `deliver`; the median of 3 runs after a warm-up run;
- stats: `bot.stats.build_report` for the last 30 days (the verb's default) and for the last 365 days, read
  from the stats rollup (built after the load with `models.stats_rollup.rebuild_stats`, timed), and their
  ratio (issue 21: within 2x); beside it, the same reports computed from every question of the window
  (`bot.stats.build_report_exact`, what build_report did before the rollup), in the same run.
Baseline, in the same run and on the same data: the same code after dropping the indexes that migrations
0003 and 0005 added for the digest and stats reads (then ANALYZE), i.e. what those indexes buy.

--quick: the 10k and 100k sizes only (the full run adds 1M, which takes a few minutes to load).
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text

from bench.harness import (
    EPOCH,
    base_parser,
    copy_lines,
    emit,
    load_average,
    postgres_reachable,
    progress,
    scratch_database,
)
from bot import stats
from bot.digest import content, posting
from models.digest import load_digest_data
from models.migrate import upgrade_to_head
from models.session import Store
from models.stats_rollup import rebuild_stats

TEAM_ID = "T_DIGEST"
CHANNELS = [f"C{n:03d}" for n in range(100)]
PEOPLE = 10_000
TAGS = [f"topic{n}" for n in range(300)]
SPAN = timedelta(weeks=104)
NOW = EPOCH + SPAN  # a Monday 09:00 UTC: every channel's digest slot
GOAL_SECONDS = 5.0
RUNS = 3
# The indexes migrations 0003 and 0005 added for digest and stats reads (dropped for the baseline).
PERF_INDEXES = (
    "ix_questions_team_channel_resolved",
    "ix_votes_team_channel_created",
    "ix_expertise_team_declared",
    "ix_questions_team_created",
    "ix_questions_team_asker_status",
    "ix_answers_question_created",
    "ix_votes_team_created",
    "ix_lessons_team_author",
)


def stamp(moment: datetime) -> str:
    return moment.isoformat()


def load(url: str, n: int) -> float:
    """COPY everything in (see the module docstring); returns the seconds it took."""
    started = time.perf_counter()
    step = SPAN / n
    engine = create_engine(url, connect_args={"options": "-c session_replication_role=replica"})
    try:

        def created(i: int) -> datetime:
            return EPOCH + step * i

        def user(i: int) -> str:
            return f"U{i % PEOPLE:05d}"

        copy_lines(
            engine,
            "workspaces",
            ("team_id", "name", "timezone", "active", "created_at"),
            [f"{TEAM_ID}\tBench\tUTC\tt\t{stamp(EPOCH)}"],
        )
        copy_lines(
            engine,
            "people",
            ("team_id", "user_id", "real_name", "tz", "is_bot", "deleted", "is_admin", "notify_mode"),
            (f"{TEAM_ID}\t{user(i)}\tPerson {i}\tEurope/Berlin\tf\tf\tf\timmediate" for i in range(PEOPLE)),
        )
        copy_lines(
            engine,
            "digest_subscriptions",
            [
                "team_id",
                "channel_id",
                "enabled",
                "weekday",
                "hour",
                "minute",
                "timezone",
                "post_when_empty",
                "created_by",
                "updated_at",
            ],
            (f"{TEAM_ID}\t{c}\tt\t0\t9\t0\tUTC\tt\tU00000\t{stamp(EPOCH)}" for c in CHANNELS),
        )

        def question(i: int) -> str:
            at = created(i)
            resolved = i % 20 < 13
            channel = CHANNELS[i % len(CHANNELS)]
            status, resolved_at, accepted = (
                ("resolved", stamp(at + timedelta(hours=2)), str(3 * i + 1))
                if resolved
                else (
                    "open",
                    "\\N",
                    "\\N",
                )
            )
            return (
                f"{i + 1}\t{TEAM_ID}\t{channel}\tf\t{user(i * 7919)}\tHow do I make thing {i} work with "
                f"{TAGS[i % 300]}?\t{status}\t{1_600_000_000 + i}.000100\tk{i}\t{stamp(at)}\t{resolved_at}\t"
                f"{accepted}\t2\t\\N"
            )

        copy_lines(
            engine,
            "questions",
            [
                "id",
                "team_id",
                "channel_id",
                "channel_private",
                "asker_id",
                "text",
                "status",
                "message_ts",
                "request_key",
                "created_at",
                "resolved_at",
                "accepted_answer_id",
                "escalation_level",
                "next_escalation_at",
            ],
            (question(i) for i in range(n)),
        )

        def answers(i: int) -> str:
            at = created(i)
            channel = CHANNELS[i % len(CHANNELS)]
            return "\n".join(
                f"{3 * i + j + 1}\t{TEAM_ID}\t{i + 1}\t{channel}\t{1_600_000_000 + i}.{j + 2:06d}\t"
                f"{user(i * 13 + j * 101)}\tTry approach {j} for thing {i}\t"
                f"{stamp(at + timedelta(minutes=20 * (j + 1)))}"
                for j in range(3)
            )

        copy_lines(
            engine,
            "answers",
            ("id", "team_id", "question_id", "channel_id", "ts", "user_id", "text", "created_at"),
            (answers(i) for i in range(n)),
        )

        def tags(i: int) -> str:
            first, second = TAGS[(i * 31) % 300], TAGS[(i * 17) % 50]
            lines = f"{i + 1}\t{first}\t{TEAM_ID}\t0"
            return lines + (f"\n{i + 1}\t{second}\t{TEAM_ID}\t1" if i % 2 and second != first else "")

        copy_lines(engine, "question_tags", ("question_id", "tag", "team_id", "position"), (tags(i) for i in range(n)))

        def votes(i: int) -> str:
            at = created(i) + timedelta(hours=2)
            channel = CHANNELS[i % len(CHANNELS)]
            lines = []
            if i % 20 < 13:  # the asker accepts the first answer
                lines.append(
                    f"{TEAM_ID}\t{channel}\t{1_600_000_000 + i}.000002\t{user(i * 7919)}\twhite_check_mark\taccept\t"
                    f"{user(i * 13)}\t{3 * i + 1}\t{stamp(at)}"
                )
            if i % 2 == 0:  # someone finds the second answer helpful
                lines.append(
                    f"{TEAM_ID}\t{channel}\t{1_600_000_000 + i}.000003\t{user(i * 3 + 5)}\t+1\thelpful\t"
                    f"{user(i * 13 + 101)}\t{3 * i + 2}\t{stamp(at)}"
                )
            return "\n".join(lines)

        copy_lines(
            engine,
            "votes",
            [
                "team_id",
                "channel_id",
                "message_ts",
                "voter_id",
                "reaction",
                "kind",
                "author_id",
                "answer_id",
                "created_at",
            ],
            (line for line in (votes(i) for i in range(n)) if line),
        )
        lessons = max(n // 50, 1)
        copy_lines(
            engine,
            "lessons",
            [
                "id",
                "team_id",
                "channel_id",
                "channel_private",
                "author_id",
                "text",
                "message_ts",
                "request_key",
                "created_at",
            ],
            (
                f"{i + 1}\t{TEAM_ID}\t{CHANNELS[i % 100]}\tf\t{user(i * 11)}\tLesson {i} about {TAGS[i % 300]}\t"
                f"{1_500_000_000 + i}.000100\tlesson-{i}\t{stamp(EPOCH + SPAN / lessons * i)}"
                for i in range(lessons)
            ),
        )
        copy_lines(
            engine,
            "lesson_tags",
            ("lesson_id", "tag", "team_id", "position"),
            (f"{i + 1}\t{TAGS[i % 300]}\t{TEAM_ID}\t0" for i in range(lessons)),
        )
        copy_lines(
            engine,
            "expertise",
            ("team_id", "user_id", "tag", "declared_at"),
            (
                f"{TEAM_ID}\t{user(i * 7)}\t{TAGS[(i * 13) % 300]}\t{stamp(EPOCH + SPAN / 3000 * i)}"
                for i in range(3000)
            ),
        )
    finally:
        engine.dispose()
    vacuum = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with vacuum.connect() as conn:
            for sequence_of, table in (("questions", "id"), ("answers", "id"), ("lessons", "id")):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{sequence_of}', '{table}'), "
                        f"(SELECT max({table}) FROM {sequence_of}))"
                    )
                )
            conn.execute(text("VACUUM ANALYZE"))
    finally:
        vacuum.dispose()
    return time.perf_counter() - started


def all_digests(store: Store) -> tuple[float, list[float], int]:
    """(seconds for every due digest, seconds per digest, digests built): due_digests, then load and build each."""
    started = time.perf_counter()
    with store.session() as session:
        due = posting.due_digests(session, NOW)
    per_digest = []
    built = 0
    for item in due:
        began = time.perf_counter()
        with store.session() as session:
            data = load_digest_data(
                session, item.team_id, item.channel_id, item.slot - posting.WINDOW, item.slot, content.MAX_ITEMS
            )
        message = content.build_digest(
            data, tz=item.schedule.zone, base_url="https://bench.slack.com/", post_when_empty=item.post_when_empty
        )
        built += message is not None
        per_digest.append(time.perf_counter() - began)
    return time.perf_counter() - started, per_digest, built


def report_seconds(store: Store, days: int, build: Any = stats.build_report) -> float:
    started = time.perf_counter()
    with store.session() as session:
        report = build(session, TEAM_ID, NOW - timedelta(days=days), NOW, NOW)
    assert report.overall.asked > 0
    return time.perf_counter() - started


def rebuild_seconds(store: Store) -> float:
    started = time.perf_counter()
    with store.session() as session:
        rebuild_stats(session, TEAM_ID)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE stats_rollup"))
        conn.execute(text("VACUUM ANALYZE question_stats"))
    return time.perf_counter() - started


def measure(store: Store, runs: int, exact: bool = True) -> dict[str, Any]:
    all_digests(store)  # warm-up: the caches of a server that has been running
    digest_runs = [all_digests(store) for _ in range(runs)]
    totals = sorted(run[0] for run in digest_runs)
    per_digest = sorted(seconds for run in digest_runs for seconds in run[1])
    report_seconds(store, 30)
    stats_30 = statistics.median(report_seconds(store, 30) for _ in range(runs))
    stats_365 = statistics.median(report_seconds(store, 365) for _ in range(runs))
    figures: dict[str, Any] = {}
    if exact:
        report_seconds(store, 30, stats.build_report_exact)
        figures = {
            f"exact_stats_{days}d_seconds": round(
                statistics.median(report_seconds(store, days, stats.build_report_exact) for _ in range(runs)), 3
            )
            for days in (30, 365)
        }
    return {
        **figures,
        "digests": len(digest_runs[0][1]),
        "digests_posted": digest_runs[0][2],
        "seconds": round(statistics.median(totals), 3),
        "digest_p50_ms": round(per_digest[len(per_digest) // 2] * 1000, 2),
        "digest_max_ms": round(per_digest[-1] * 1000, 2),
        "stats_30d_seconds": round(stats_30, 3),
        "stats_365d_seconds": round(stats_365, 3),
        "stats_ratio_365d_to_30d": round(stats_365 / stats_30, 2),
    }


def drop_perf_indexes(store: Store) -> None:
    with store.engine.begin() as conn:
        for name in PERF_INDEXES:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        conn.execute(text("ANALYZE"))


def run(sizes: list[int], pg_url: str, baseline: bool) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "digest_scale",
        "database": "postgresql",
        "sizes": sizes,
        "goal_seconds": GOAL_SECONDS,
        "load_average_1m": load_average(),
    }
    for n in sizes:
        with scratch_database("postgresql", pg_url) as url:
            store = Store.from_url(url)
            try:
                upgrade_to_head(store.engine)
                load_seconds = load(url, n)
                progress(f"{n} questions: loaded in {load_seconds:.1f}s")
                rollup_seconds = rebuild_seconds(store)
                progress(f"{n} questions: stats rollup built in {rollup_seconds:.1f}s")
                figures = {
                    "load_seconds": round(load_seconds, 1),
                    "rollup_seconds": round(rollup_seconds, 1),
                    **measure(store, RUNS),
                }
                progress(f"{n} questions: all digests {figures['seconds']}s, stats {figures['stats_30d_seconds']}s")
                if baseline:
                    drop_perf_indexes(store)
                    base = measure(store, 1, exact=False)
                    figures |= {f"baseline_{key}": value for key, value in base.items() if key not in ("digests",)}
                    progress(f"{n} questions: baseline (no 0003/0005 indexes) digests {base['seconds']}s")
            finally:
                store.dispose()
        result |= {f"q{n}_{key}": value for key, value in figures.items()}
    largest = max(sizes)
    for key in ("seconds", "stats_30d_seconds", "stats_365d_seconds", "digest_p50_ms"):
        result[key] = result[f"q{largest}_{key}"]
    for key in ("stats_ratio_365d_to_30d", "exact_stats_30d_seconds", "exact_stats_365d_seconds"):
        result[key] = result[f"q{largest}_{key}"]
    result["stats_goal_met"] = result["stats_ratio_365d_to_30d"] <= 2.0
    for key in ("seconds", "stats_30d_seconds", "stats_365d_seconds", "digest_p50_ms"):
        if baseline:
            result[f"baseline_{key}"] = result[f"q{largest}_baseline_{key}"]
    result["goal_met"] = result["seconds"] <= GOAL_SECONDS
    result["load_average_1m_after"] = load_average()
    return result


def table(result: dict[str, Any]) -> str:
    baseline = "baseline_seconds" in result
    lines = [
        f"Digests and stats on PostgreSQL (goal: all 100 digests <= {GOAL_SECONDS:g} s; "
        f"load average {result['load_average_1m']} -> {result['load_average_1m_after']})",
        f"{'questions':>10}{'load s':>8}{'digests s':>11}{'per digest p50 ms':>19}{'max ms':>8}"
        f"{'stats 30d s':>13}{'stats 365d s':>14}"
        + (f"{'| baseline: digests s':>22}{'stats 30d s':>13}{'stats 365d s':>14}" if baseline else ""),
    ]
    for n in result["sizes"]:
        row = (
            f"{n:>10}{result[f'q{n}_load_seconds']:>8}{result[f'q{n}_seconds']:>11.3f}"
            f"{result[f'q{n}_digest_p50_ms']:>19.2f}{result[f'q{n}_digest_max_ms']:>8.1f}"
            f"{result[f'q{n}_stats_30d_seconds']:>13.3f}{result[f'q{n}_stats_365d_seconds']:>14.3f}"
        )
        if baseline:
            row += (
                f"{result[f'q{n}_baseline_seconds']:>22.3f}{result[f'q{n}_baseline_stats_30d_seconds']:>13.3f}"
                f"{result[f'q{n}_baseline_stats_365d_seconds']:>14.3f}"
            )
        lines.append(row)
    lines.append(f"goal met: {result['goal_met']} ({result['seconds']} s for all digests at {max(result['sizes'])})")
    lines += [
        "",
        "Stats: from the rollup vs computed from every question (build_report_exact, the old way), same run",
        f"{'questions':>10}{'rollup built s':>16}{'30d s':>8}{'365d s':>8}{'365d/30d':>10}"
        f"{'| exact 30d s':>14}{'exact 365d s':>14}",
    ]
    for n in result["sizes"]:
        lines.append(
            f"{n:>10}{result[f'q{n}_rollup_seconds']:>16}{result[f'q{n}_stats_30d_seconds']:>8.3f}"
            f"{result[f'q{n}_stats_365d_seconds']:>8.3f}{result[f'q{n}_stats_ratio_365d_to_30d']:>10.2f}"
            f"{result[f'q{n}_exact_stats_30d_seconds']:>14.3f}{result[f'q{n}_exact_stats_365d_seconds']:>14.3f}"
        )
    lines.append(f"stats goal (365d within 2x of 30d at {max(result['sizes'])}): {result['stats_goal_met']}")
    if baseline:
        lines.append("baseline: the same code without the digest/stats indexes of migrations 0003 and 0005")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", help="comma-separated question counts (default 10000,100000,1000000; quick: 2)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without the indexes")
    args = parser.parse_args(argv)
    sizes = (
        [int(size) for size in args.sizes.split(",")]
        if args.sizes
        else [10_000, 100_000]
        if args.quick
        else [10_000, 100_000, 1_000_000]
    )
    if not postgres_reachable(args.pg_url):
        parser.error(f"PostgreSQL is not reachable at {args.pg_url} (pass --pg-url)")
    emit(run(sizes, args.pg_url, not args.no_baseline), args.json, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
