"""Similar-question search on the database's own full-text engine (SQLite FTS5 and PostgreSQL), with the
index kept in sync by the triggers of migration 0002."""

import itertools
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import select, text

import bot.search.fulltext
from bot import qa
from bot.config import Settings
from bot.search import KIND_LESSON, KIND_QUESTION, query_terms, search_similar
from bot.search.fulltext import MAX_TERMS, fts5_query, selective_terms, tsquery
from bot.text import ParsedText
from models.lesson import Lesson, LessonTag
from models.migrate import alembic_config, upgrade_to_head
from models.question import STATUS_OPEN, Answer, Question, QuestionTag
from models.session import Store

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SETTINGS = Settings()
_ts = itertools.count(1000)


@pytest.fixture
def store(database_url):
    store = Store.from_url(database_url)
    yield store
    store.dispose()


def next_ts() -> str:
    return f"{next(_ts)}.000100"


def ask(store, question, *, tags=(), team="T1", channel="C1", private=False, asker="U_ASKER"):
    """A posted, open question; returns (question id, message ts)."""
    ts = next_ts()
    with store.session() as s:
        created, _ = qa.create_question(
            s,
            team_id=team,
            channel_id=channel,
            asker_id=asker,
            parsed=ParsedText(question, tuple(tags)),
            request_key=f"req-{ts}",
            now=NOW,
        )
        qa.record_posted(s, created.id, message_ts=ts, channel_private=private)
        return created.id, ts


def reply(store, thread_ts, answer, *, team="T1", channel="C1", user="U_EXPERT"):
    ts = next_ts()
    with store.session() as s:
        stored = qa.record_reply(
            s, team_id=team, channel_id=channel, thread_ts=thread_ts, ts=ts, user_id=user, text=answer, now=NOW
        )
        assert stored is not None
    return ts


def accept(store, answer_ts, *, team="T1", channel="C1", asker="U_ASKER", added=True):
    with store.session() as s:
        qa.apply_reaction(
            s,
            SETTINGS,
            team_id=team,
            channel_id=channel,
            ts=answer_ts,
            user_id=asker,
            reaction=SETTINGS.accept_reaction,
            added=added,
            now=NOW,
        )


def answered(store, question, answer, **where):
    """An answered question (posted, replied to, the reply accepted by the asker); returns its id."""
    team, channel = where.get("team", "T1"), where.get("channel", "C1")
    question_id, ts = ask(store, question, **where)
    accept(store, reply(store, ts, answer, team=team, channel=channel), team=team, channel=channel)
    return question_id


def lesson(store, body, *, tags=(), team="T1", channel="C1", private=False, posted=True):
    ts = next_ts()
    with store.session() as s:
        row = Lesson(
            team_id=team,
            channel_id=channel,
            channel_private=private,
            author_id="U_TEACHER",
            text=body,
            message_ts=ts if posted else None,
            request_key=f"lesson-{ts}",
            created_at=NOW,
            tags=[LessonTag(tag=tag, team_id=team, position=i) for i, tag in enumerate(tags)],
        )
        s.add(row)
        s.flush()
        return row.id


def search(store, query, *, tags=(), team="T1", viewer="C1", **kwargs):
    with store.session() as s:
        return search_similar(s, team_id=team, text=query, tags=tags, viewer_channel_id=viewer, **kwargs)


def ids(hits):
    return [(hit.kind, hit.id) for hit in hits]


# --- ranking ---------------------------------------------------------------------------------------


def test_hits_come_best_first_with_the_accepted_answer_and_link(store):
    vacuum = answered(store, "How do I vacuum a big postgres table without locking it?", "Plain VACUUM never locks")
    reindex = answered(store, "Reindexing a postgres table takes hours", "Use REINDEX CONCURRENTLY")
    answered(store, "Which helm chart for redis?", "bitnami/redis works fine")

    hits = search(store, "vacuuming big tables locks them in postgres", tags=("postgres",))

    assert ids(hits) == [(KIND_QUESTION, vacuum), (KIND_QUESTION, reindex)]
    assert hits[0].score > hits[1].score > 0
    best = hits[0]
    assert best.text == "How do I vacuum a big postgres table without locking it?"
    assert best.answer_text == "Plain VACUUM never locks"
    assert best.answer_user_id == "U_EXPERT"
    assert best.channel_id == "C1" and best.message_ts and best.answer_ts and best.author_id == "U_ASKER"


def test_stemming_and_stopwords_match_other_forms_of_the_words(store):
    question = answered(store, "Deploying containers fails on the cluster", "Check the image pull secret")
    assert ids(search(store, "deploy a container")) == [(KIND_QUESTION, question)]
    assert search(store, "the and of how is it") == []  # only stopwords: nothing to look for


def test_the_accepted_answer_counts_as_much_as_the_question_text(store):
    # The answer weighs as much as the question (bot/search/fulltext.py): a question whose answer holds both
    # words asked comes before one whose text holds only one of them.
    in_answer = answered(store, "Builds are slow", "Turn on the gradle daemon")
    one_word = answered(store, "Is gradle worth it for a small project?", "Yes, once builds grow")
    assert ids(search(store, "gradle daemon")) == [(KIND_QUESTION, in_answer), (KIND_QUESTION, one_word)]


def test_shared_tags_lift_a_question(store):
    untagged = answered(store, "Timeouts when calling the payments service", "Raise the client timeout")
    tagged = answered(store, "Timeouts when calling the payments service", "Raise the client timeout", tags=("grpc",))
    assert ids(search(store, "timeouts calling payments", tags=("grpc",)))[0] == (KIND_QUESTION, tagged)
    # Without the tag the two are equally good; the tie is broken by id, the older first.
    assert ids(search(store, "timeouts calling payments"))[0] == (KIND_QUESTION, untagged)


def test_a_tag_alone_finds_questions_carrying_it(store):
    question = answered(store, "Why is my pod pending?", "No node has enough memory", tags=("kubernetes",))
    assert ids(search(store, "help please", tags=("kubernetes",))) == [(KIND_QUESTION, question)]


def test_lessons_are_found_alongside_questions(store):
    taught = lesson(store, "Use git bisect to find the commit that broke a test", tags=("git",))
    question = answered(store, "How do I find which commit broke the build?", "git bisect run make test")
    hits = search(store, "which commit broke the test", tags=("git",))
    assert set(ids(hits)) == {(KIND_LESSON, taught), (KIND_QUESTION, question)}
    hit = next(h for h in hits if h.kind == KIND_LESSON)
    assert hit.tags == ("git",) and hit.author_id == "U_TEACHER"
    assert hit.answer_text is None and hit.answer_user_id is None


def test_limit_and_exclusion(store):
    first = answered(store, "Kafka consumer lag keeps growing", "Add partitions")
    second = answered(store, "Kafka consumer lag after deploy", "Rebalance storms, use static membership")
    third = answered(store, "Kafka consumer group rebalances", "Check session.timeout.ms")
    assert len(search(store, "kafka consumer lag", limit=2)) == 2
    assert search(store, "kafka consumer lag", limit=0) == []
    found = ids(search(store, "kafka consumer lag", exclude_question_id=first))
    assert (KIND_QUESTION, first) not in found
    assert set(found) == {(KIND_QUESTION, second), (KIND_QUESTION, third)}


# --- what must never be found ----------------------------------------------------------------------


def test_unanswered_unposted_and_other_workspaces_are_not_found(store):
    answered(store, "Terraform state lock is stuck", "terraform force-unlock ID", team="T2")
    open_id, ts = ask(store, "Terraform state lock is stuck again")
    reply(store, ts, "an answer nobody accepted yet")
    lesson(store, "Terraform state lock: use force-unlock", posted=False)
    with store.session() as s:
        assert s.get(Question, open_id).status == STATUS_OPEN
    assert search(store, "terraform state lock stuck") == []
    assert len(search(store, "terraform state lock stuck", team="T2", viewer="C1")) == 1


def test_private_channel_items_are_found_only_in_that_channel(store):
    private_q = answered(store, "Salary bands for staff engineers", "See the HR wiki", channel="C_HR", private=True)
    private_l = lesson(store, "Salary bands are reviewed every March", channel="C_HR", private=True)
    public_q = answered(store, "Salary of interns paid on the 25th?", "Yes, like everyone", channel="C_GEN")

    assert ids(search(store, "salary bands", viewer="C_GEN")) == [(KIND_QUESTION, public_q)]
    assert ids(search(store, "salary bands", viewer=None)) == [(KIND_QUESTION, public_q)]
    assert ids(search(store, "salary bands", viewer="C_OTHER_PRIVATE")) == [(KIND_QUESTION, public_q)]
    in_hr = set(ids(search(store, "salary bands", viewer="C_HR")))
    assert in_hr == {(KIND_QUESTION, private_q), (KIND_LESSON, private_l), (KIND_QUESTION, public_q)}
    # Another workspace's channel with the same id sees nothing of this one.
    assert search(store, "salary bands", team="T2", viewer="C_HR") == []


def test_a_channel_turning_private_hides_its_questions(store):
    question = answered(store, "Where are the release notes?", "In the wiki", channel="C_REL")
    assert ids(search(store, "release notes", viewer="C_GEN")) == [(KIND_QUESTION, question)]
    with store.session() as s:
        s.get(Question, question).channel_private = True
    assert search(store, "release notes", viewer="C_GEN") == []
    assert ids(search(store, "release notes", viewer="C_REL")) == [(KIND_QUESTION, question)]


# --- the index follows every change ----------------------------------------------------------------


def test_index_follows_question_and_answer_edits(store):
    question_id, ts = ask(store, "Nginx returns 502 behind the load balancer")
    accepted = reply(store, ts, "Increase proxy_read_timeout")
    accept(store, accepted)
    assert ids(search(store, "proxy_read_timeout")) == [(KIND_QUESTION, question_id)]

    with store.session() as s:
        assert qa.edit_reply(s, team_id="T1", channel_id="C1", ts=accepted, text="Enable keepalive upstream", now=NOW)
    assert search(store, "proxy_read_timeout") == []
    assert ids(search(store, "keepalive upstream")) == [(KIND_QUESTION, question_id)]

    with store.session() as s:
        s.get(Question, question_id).text = "Caddy returns 502 behind the load balancer"
    assert search(store, "nginx") == []
    assert ids(search(store, "caddy 502")) == [(KIND_QUESTION, question_id)]


def test_editing_another_reply_leaves_the_document_alone(store):
    question_id, ts = ask(store, "Flaky selenium tests on CI")
    accept(store, reply(store, ts, "Wait for elements explicitly"))
    other = reply(store, ts, "Retry them", user="U_OTHER")
    with store.session() as s:
        qa.edit_reply(s, team_id="T1", channel_id="C1", ts=other, text="quarantine them", now=NOW)
    assert search(store, "quarantine") == []
    assert ids(search(store, "wait explicitly")) == [(KIND_QUESTION, question_id)]


def test_index_follows_tag_changes(store):
    question = answered(store, "Which runner should we use?", "The self-hosted one", tags=("ci",))
    assert ids(search(store, "anything", tags=("ci",))) == [(KIND_QUESTION, question)]
    with store.session() as s:
        row = s.get(Question, question)
        row.tags = [QuestionTag(tag="github-actions", team_id="T1", position=0)]
    assert search(store, "anything", tags=("ci",)) == []
    hits = search(store, "anything", tags=("github-actions",))
    assert ids(hits) == [(KIND_QUESTION, question)] and hits[0].tags == ("github-actions",)


def test_index_follows_acceptance_changes(store):
    question_id, ts = ask(store, "Redis evicts keys too early")
    first = reply(store, ts, "Set maxmemory-policy to volatile-lru")
    second = reply(store, ts, "Your TTLs are too short", user="U_OTHER")
    assert search(store, "redis evicts") == []  # answered but nothing accepted yet

    accept(store, first)
    accept(store, second)
    hits = search(store, "redis evicts")
    assert ids(hits) == [(KIND_QUESTION, question_id)] and hits[0].answer_text == "Your TTLs are too short"

    accept(store, second, added=False)  # back to the first accept
    assert search(store, "redis evicts")[0].answer_text == "Set maxmemory-policy to volatile-lru"
    assert search(store, "ttls") == []

    with store.session() as s:  # the accepted answer is deleted and nothing else is accepted: reopened
        qa.delete_reply(s, team_id="T1", channel_id="C1", ts=first, now=NOW)
        qa.delete_reply(s, team_id="T1", channel_id="C1", ts=second, now=NOW)
    assert search(store, "redis evicts") == []


def test_index_follows_deletes(store):
    question = answered(store, "Grafana dashboard shows no data", "Pick the right datasource")
    taught = lesson(store, "Grafana dashboards: always pin the datasource", tags=("grafana",))
    assert len(search(store, "grafana datasource")) == 2
    with store.session() as s:
        s.delete(s.get(Lesson, taught))
    assert ids(search(store, "grafana datasource")) == [(KIND_QUESTION, question)]
    with store.session() as s:  # a hard delete of the accepted answer (ON DELETE SET NULL)
        answer = s.scalar(select(Answer).where(Answer.question_id == question))
        s.delete(answer)
    assert search(store, "grafana datasource") == []
    with store.session() as s:
        s.delete(s.get(Question, question))
    with store.session() as s:
        assert s.execute(text("SELECT count(*) FROM search_documents")).scalar() == 0


def test_index_follows_lesson_edits_and_tags(store):
    taught = lesson(store, "Pin your docker base images", tags=("docker",))
    with store.session() as s:
        row = s.get(Lesson, taught)
        row.text = "Pin your container base images by digest"
        row.tags.append(LessonTag(tag="security", team_id="T1", position=1))
    hits = search(store, "digest", tags=("security",))
    assert ids(hits) == [(KIND_LESSON, taught)] and hits[0].tags == ("docker", "security")
    assert search(store, "dockerfile whatever") == []


def test_migration_indexes_existing_rows_and_downgrades_cleanly(store):
    answered(store, "Postgres replica lag alerts", "Check wal_receiver_status_interval")
    lesson(store, "Replica lag: watch pg_stat_replication")
    config = alembic_config(store.engine)
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002@-2")  # this branch only: 0013 (vectors), then 0002
    with store.engine.connect() as conn:
        assert "search_documents" not in _tables(conn)
    upgrade_to_head(store.engine)
    assert len(search(store, "replica lag")) == 2


def _tables(conn) -> set[str]:
    if conn.dialect.name == "sqlite":
        return set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'")).scalars())
    return set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())


# --- hostile input ---------------------------------------------------------------------------------

HOSTILE = [
    '"',
    "'",
    '"vacuum',
    'vacuum" OR title:*',
    "NEAR(vacuum postgres, 2)",
    "vacuum NEAR postgres",
    "vacu*",
    "* * *",
    "-vacuum -postgres",
    "(vacuum) AND (postgres) NOT )(",
    "title : vacuum ^postgres",
    "{title body}: vacuum",
    "vacuum & postgres | !table <-> x:* ''' \\ \\'",
    "\x00vacuum\x00",
    "🐘🐘 vacuum 🧹",
    "🐘",
    "كيف أقوم بعمل vacuum لجدول كبير",
    "\u202evacuum\u202c postgres",
    "e\u0301\u0301\u0301 \u0301 vacuum",
    "Robert'); DROP TABLE questions;--",
    "vacuum " + "x" * 5000,
    "vacuum " * 5000,
    " ".join(f"word{i}" for i in range(4000)) + " vacuum",
]


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_is_only_text(store, query):
    vacuum = answered(store, "How do I vacuum a big postgres table?", "VACUUM (VERBOSE) big_table")
    hits = search(store, query, tags=(query[:40],))
    assert all(hit.id == vacuum for hit in hits)
    with store.session() as s:
        assert s.scalar(select(Question).where(Question.id == vacuum)) is not None


def test_hostile_input_still_finds_the_words_it_contains(store):
    vacuum = answered(store, "How do I vacuum a big postgres table?", "VACUUM (VERBOSE) big_table")
    for query in ['vacuum" OR "x', "NEAR(vacuum postgres)", "-vacuum*", "🧹 vacuum 🐘", "vacuum " * 5000]:
        assert ids(search(store, query)) == [(KIND_QUESTION, vacuum)], query


def test_other_scripts_are_searchable(store):
    arabic = answered(store, "كيف أقوم بتنظيف جدول كبير في قاعدة البيانات", "استخدم VACUUM")
    cyrillic = answered(store, "Как ускорить сборку проекта?", "Включите кэш")
    german = answered(store, "Wie ändere ich die Straße im Profil?", "Unter Einstellungen")
    assert ids(search(store, "تنظيف جدول")) == [(KIND_QUESTION, arabic)]
    assert ids(search(store, "ускорить сборку")) == [(KIND_QUESTION, cyrillic)]
    assert ids(search(store, "STRAẞE im Profil")) == [(KIND_QUESTION, german)]


# --- the query builder (pure) ----------------------------------------------------------------------


def test_query_terms_keep_words_drop_stopwords_and_punctuation():
    assert query_terms('How do I "vacuum" a BIG table? NEAR(x) -y* 🐘', ("postgres", "node.js")) == [
        "vacuum",
        "big",
        "table",
        "near",
        "postgres",
        "node",
        "js",
    ]
    assert query_terms("the the The a an") == []
    assert len(query_terms(" ".join(f"w{i}" for i in range(1000)))) == MAX_TERMS


def test_engine_queries_quote_every_term():
    assert fts5_query(["vacuum", "near"]) == '"vacuum" OR "near"'
    assert tsquery(["vacuum", "it's"]) == "'vacuum' | 'it''s'"


# --- pruning common terms (issue 7: cost bounded by SCORING_BUDGET) ----------------------------------------


def test_selective_terms_keep_the_rarest_within_the_budget_in_the_order_written():
    terms = ["common", "rare", "middling", "rarest"]
    assert selective_terms(terms, [900, 20, 300, 5], budget=400) == ["rare", "middling", "rarest"]
    assert selective_terms(terms, [900, 20, 300, 5], budget=24) == ["rarest"]
    assert selective_terms(terms, [900, 20, 300, 5], budget=10_000) == terms
    assert selective_terms(terms, [900, 800, 700, 600], budget=100) == []  # even the rarest is too common
    assert selective_terms(["a", "b"], [7, 7], budget=7) == ["a"]  # ties: the one written first


def analysed(store):
    """Statistics as autovacuum keeps them (PostgreSQL's pruning reads them; SQLite counts matches itself)."""
    if store.dialect == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE search_documents"))
        # Forget what an earlier test's store looked like.
        bot.search.fulltext._STATISTICS = bot.search.fulltext._LexemeStatistics()


@pytest.fixture
def small_budget(store, monkeypatch):
    """A budget of 2 documents: in this small store the common words are then too common to be matched."""
    monkeypatch.setitem(bot.search.fulltext.SCORING_BUDGET, store.dialect, 2)
    yield
    bot.search.fulltext._STATISTICS = bot.search.fulltext._LexemeStatistics()


def test_common_words_are_left_out_of_the_match_but_rare_ones_still_find(store, small_budget):
    deploy = answered(store, "Deploy fails with error on staging", "Use the staging kubeconfig")
    for n in range(6):
        answered(store, f"Error number {n} when I build", f"Rebuild {n}")
    analysed(store)
    hits = search(store, "error during deploy", limit=3)
    # "error" is in 7 documents, beyond the budget: only "deploy" is matched, and it finds the right one.
    assert ids(hits) == [(KIND_QUESTION, deploy)]
    assert ids(search(store, "error during deploy", limit=3, exhaustive=True))[0] == (KIND_QUESTION, deploy)
    assert len(search(store, "error during deploy", limit=10, exhaustive=True)) == 7  # what pruning spared


def test_only_common_words_match_the_two_rarest_together_then_the_rarest_alone(store, small_budget):
    both = answered(store, "Error when I build the image", "Pin the base image")
    builds = {answered(store, f"Build number {n} is slow", f"Cache layers {n}") for n in range(4)}
    for n in range(6):
        answered(store, f"Error number {n} on upload", f"Upload again {n}")
    analysed(store)
    # "build" (5 documents) and "error" (7) are both beyond the budget: the documents having both come first.
    assert ids(search(store, "build error", limit=1)) == [(KIND_QUESTION, both)]
    # Asked for more than that AND finds: the rarest term alone ("build") is matched instead.
    assert {hit.id for hit in search(store, "build error", limit=3)} <= {both, *builds}
    assert len(search(store, "build error", limit=3)) == 3


def test_pruning_keeps_privacy_and_exclusion(store, small_budget):
    secret = answered(store, "Salary bands for staff", "See HR", channel="C_HR", private=True)
    for n in range(5):
        answered(store, f"Salary paid on day {n}", f"Yes {n}", channel="C_GEN")
    analysed(store)
    assert (KIND_QUESTION, secret) not in ids(search(store, "salary bands", viewer="C_GEN", limit=10))
    assert ids(search(store, "salary bands", viewer="C_HR", limit=1)) == [(KIND_QUESTION, secret)]
    assert (KIND_QUESTION, secret) not in ids(
        search(store, "salary bands", viewer="C_HR", limit=10, exclude_question_id=secret)
    )


def test_postgres_counts_a_word_outside_its_statistics_as_half_the_least_common_one(store):
    if store.dialect != "postgresql":
        pytest.skip("SQLite counts each term's matches itself")
    for n in range(12):
        answered(store, f"Error number {n} when I deploy", f"Retry {n}")
    analysed(store)
    with store.session() as session:
        error, unseen = bot.search.fulltext._postgres_frequencies(session, ["error", "zanzibar"])
        least = session.execute(
            text(
                "SELECT s.most_common_elem_freqs[array_length(s.most_common_elems, 1) + 1] * c.reltuples "
                "FROM pg_stats s JOIN pg_class c ON c.oid = to_regclass('search_documents') "
                "WHERE s.tablename = 'search_documents' AND s.attname = 'tsv'"
            )
        ).scalar_one()
    assert error == pytest.approx(12, rel=0.01)  # in every document: among the common lexemes
    # A word PostgreSQL's sample did not keep is not assumed to match nothing: with a million documents that
    # let a "rare" word match thousands.
    assert 0 < unseen == pytest.approx(least / 2)


def test_idf_weighs_rare_terms_more_and_is_never_negative():
    idf = bot.search.fulltext.idf
    assert idf(1000, 1) > idf(1000, 10) > idf(1000, 500) > idf(1000, 1000) > 0
    assert idf(1000, 5000) == idf(1000, 1000)  # an estimate above the count is the count


def test_a_rare_word_matched_counts_more_than_a_common_one_matched_twice(store):
    rare = answered(store, "Kubeconfig missing on the runner", "Mount it")
    common = answered(store, "Error after error on the runner", "Retry")
    for n in range(10):
        answered(store, f"Error number {n} on upload", f"Upload again {n}")
    analysed(store)
    # "kubeconfig" is in one document, "error" in 11: BM25 (SQLite) and the IDF-weighted ts_rank agree.
    assert ids(search(store, "kubeconfig error", limit=2)) == [(KIND_QUESTION, rare), (KIND_QUESTION, common)]
