"""Issue 22, section 2: semantic search, end to end on SQLite and PostgreSQL.

An answered question is found by meaning when it shares no word with the new one: in the suggestions after
`/ask` and in `/ask search`. Its vector is computed after the ack (the worker's batches, the lazy listeners),
follows its document when the answer is edited, another answer accepted or the answer deleted (a stale vector
never counts), `python app.py reindex` computes what is missing and goes on where it stopped, a private
channel's item never comes back from another channel through the vectors, and forget-user's redacted text is
embedded again. The embedding model is loaded once per test session (bot.embedding's process-wide embedder).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from bot.messages.search import ACTION_HOME_SEARCH, SEARCH_BLOCK_TERMS, SEARCH_MODAL
from bot.messages.suggestions import ACTION_SIMILAR_STILL_NEED_HELP
from bot.runtime import cli
from bot.runtime.progress import ProgressBar
from bot.search import search_similar, vectors
from models.session import Store
from models.workspace import Workspace
from tests.route_helpers import GENERAL, add_people, bot_maker, buttons, plain
from tests.slack.conversations import answered_question
from tests.test_ask_search_flow import home_view
from tests.test_search import NOW, accept, answered, ask, lesson, reply

BERLIN = "Europe/Berlin"
GIT = "What is the way to revert the most recent git change? #git"
GIT_ANSWER = "Run git reset --soft HEAD~1: your files stay as they are."
UNDO = "How do I undo my last commit?"  # not one word in common with GIT but stopwords
VACUUM = "Vacuuming a big table locks it for minutes #postgres"
VACUUM_ANSWER = "Use pg_repack: it rebuilds the table online."
NOTEBOOK = "Notebook does not power up, what can I do?"
NOTEBOOK_ANSWER = "Hold the power button for 30 seconds, then plug in the charger."
LAPTOP = "My laptop will not turn on"  # no word in common with NOTEBOOK but stopwords


def stored_vectors(store: Store) -> dict[int, tuple[str, str, int]]:
    """document id -> (kind, content hash, seq) of every stored vector."""
    with store.session() as s:
        rows = s.execute(
            text(
                "SELECT d.id, d.kind, v.content_hash, v.seq FROM search_vectors v "
                "JOIN search_documents d ON d.id = v.document_id"
            )
        )
        return {row.id: (row.kind, row.content_hash, row.seq) for row in rows}


def documents(store: Store) -> dict[int, tuple[str, str]]:
    with store.session() as s:
        return {
            row.id: (row.title, row.body) for row in s.execute(text("SELECT id, title, body FROM search_documents"))
        }


def assert_every_vector_current(store: Store) -> None:
    """Each document has exactly one vector, of its current text."""
    docs, stored = documents(store), stored_vectors(store)
    assert set(stored) == set(docs)
    model = vectors.model_name()
    for document_id, (title, body) in docs.items():
        assert stored[document_id][1] == vectors.content_hash(model, title, body)


# --- through Slack ------------------------------------------------------------------------------------------


@pytest.fixture
def make_bot(fake_slack, database_url, slack_clock):
    yield from bot_maker(fake_slack, database_url, slack_clock)


@pytest.fixture
def bot(make_bot):
    bot = make_bot()
    add_people(bot.world, U_OLD=BERLIN, U_HELPER=BERLIN, U_ASKER=BERLIN, U_NEW=BERLIN)
    return bot


def suggested(world, user: str) -> list[str]:
    return [plain(e) for e in world.ephemerals(user) if any(a == ACTION_SIMILAR_STILL_NEED_HELP for a, _ in buttons(e))]


def test_a_question_is_found_by_meaning_when_it_shares_no_word_with_the_answered_one(bot):
    world = bot.world
    for question, answer in ((GIT, GIT_ANSWER), (VACUUM, VACUUM_ANSWER), (NOTEBOOK, NOTEBOOK_ANSWER)):
        answered_question(world, question, answer, GENERAL)  # each vector computed after the ack
    assert_every_vector_current(bot.store)

    # After /ask, only what passes the relevance floor: the same problem in other words, nothing else.
    world.ask("U_ASKER", LAPTOP, GENERAL)
    [shown] = suggested(world, "U_ASKER")
    assert "Notebook does not power up" in shown and "Hold the power button" in shown
    assert "Vacuuming" not in shown and "git" not in shown

    response = world.command("U_NEW", "/ask", world.typed("search undo my last commit"), GENERAL)
    assert response.status == 200
    world.settle()
    found = plain(world.ephemerals("U_NEW")[-1])
    assert "revert the most recent git change" in found and "Vacuuming" not in found and "Notebook" not in found

    # The App Home's search finds it the same way.
    world.open_home("U_NEW")
    world.settle()
    world.click("U_NEW", ACTION_HOME_SEARCH, view_id=home_view(world, "U_NEW")["id"])
    world.settle()
    assert world.submit_view("U_NEW", SEARCH_MODAL, {SEARCH_BLOCK_TERMS: "undo my last commit"}).status == 200
    world.settle()
    assert "revert the most recent git change" in plain(home_view(world, "U_NEW"))

    # Unrelated words find nothing: the nearest vectors are shown only above the floor.
    world.command("U_NEW", "/ask", world.typed("search espresso grinder"), GENERAL)
    world.settle()
    assert "Nothing found" in plain(world.ephemerals("U_NEW")[-1])


def test_vectors_follow_edits_accepts_and_deletions_and_a_stale_one_never_counts(bot):
    world = bot.world
    question, first = answered_question(
        world, "Our staging deploy keeps failing #deploy", "Restart the runner.", GENERAL
    )
    assert_every_vector_current(bot.store)
    [(_, old_hash, _)] = stored_vectors(bot.store).values()

    # The accepted answer edited: the document is rebuilt, its vector computed again from the new text.
    world.edit("U_HELPER", GENERAL, first, "Clear the docker layer cache on the build machine, then redeploy.")
    world.settle()
    assert_every_vector_current(bot.store)
    [(_, (_, edited_hash, _))] = stored_vectors(bot.store).items()
    assert edited_hash != old_hash
    assert [body for _, body in documents(bot.store).values()] == [
        "Clear the docker layer cache on the build machine, then redeploy."
    ]

    # Another answer accepted instead: the vector is the new answer's.
    second = world.reply("U_NEW", question, "Pin the base image; the registry dropped the old tag.")
    world.react("U_OLD", "white_check_mark", GENERAL, second)
    world.settle()
    assert_every_vector_current(bot.store)
    [(_, body)] = documents(bot.store).values()
    assert body.startswith("Pin the base image")

    # The accepted answer deleted: the earlier accept counts again, and so does a vector of its answer.
    world.delete("U_NEW", GENERAL, second)
    world.settle()
    assert_every_vector_current(bot.store)
    [(_, body)] = documents(bot.store).values()
    assert body.startswith("Clear the docker layer cache")

    # That one deleted too: the question is no longer searchable, and its vector went with it.
    world.delete("U_HELPER", GENERAL, first)
    world.settle()
    assert documents(bot.store) == {} and stored_vectors(bot.store) == {}


@pytest.fixture
def store(database_url):
    store = Store.from_url(database_url)
    yield store
    store.dispose()


def computed_but_not_stored(store: Store) -> tuple[str, vectors.Owed, Any]:
    """GIT answered (written as rows), its vector computed and not stored yet, as a replica holds it between the
    two: (the model, the document owed the vector, the vector)."""
    answered(store, GIT, GIT_ANSWER)
    embed = vectors.embedder_or_none()
    assert embed is not None
    model = vectors.model_name()
    with store.session() as s:
        [owed] = vectors.missing(s, model, limit=10)
    return model, owed, vectors.document_vectors(embed, [owed])


def test_a_vector_is_written_only_for_the_text_it_was_computed_from(store):
    model, owed, computed = computed_but_not_stored(store)
    with store.session() as s:
        s.execute(text("UPDATE questions SET text = 'something else entirely'"))  # rebuilds the document
        assert vectors.store_vectors(s, model, [owed], computed) == 0  # not for the new text
    assert stored_vectors(store) == {}


# --- search and privacy on the vector path ---------------------------------------------------------------------


def fill(store: Store) -> int:
    embed = vectors.embedder_or_none()
    assert embed is not None
    with store.session() as s:
        return vectors.fill_missing(s, embed)


def search(store, query, *, viewer="C1", **kwargs):
    with store.session() as s:
        return search_similar(s, team_id="T1", text=query, viewer_channel_id=viewer, **kwargs)


def test_a_private_item_never_comes_back_from_another_channel_through_the_vectors(store):
    secret = answered(store, GIT, GIT_ANSWER, channel="C_SECRET", private=True)
    public = answered(store, VACUUM, VACUUM_ANSWER, channel="C1")
    assert fill(store) == 2

    # No word in common: only the vectors can find it.
    assert [hit.id for hit in search(store, UNDO, viewer="C_SECRET", limit=1)] == [secret]
    for viewer in ("C1", "C_OTHER", None):
        hits = search(store, UNDO, viewer=viewer, limit=5)
        assert secret not in [hit.id for hit in hits]
        assert all(hit.channel_id != "C_SECRET" for hit in hits)
    assert [hit.id for hit in search(store, UNDO, viewer="C1", limit=5)] == [public]


def test_without_vectors_the_ranking_is_the_full_texts_and_a_new_document_counts_at_once(store):
    git = answered(store, GIT, GIT_ANSWER)
    assert search(store, UNDO) == []  # no vector yet: full text alone, which shares no word
    fill(store)
    assert [hit.id for hit in search(store, UNDO)] == [git]
    later = lesson(store, "To take back the newest commit but keep its changes: git reset --soft HEAD~1")
    fill(store)
    assert {hit.id for hit in search(store, UNDO)} == {git, later}  # caught up by seq, no reload


def test_an_excluded_or_replaced_document_keeps_nothing_stale_in_memory(store):
    first = answered(store, GIT, GIT_ANSWER)
    fill(store)
    assert [hit.id for hit in search(store, UNDO, exclude_question_id=first)] == []
    assert [hit.id for hit in search(store, UNDO)] == [first]  # excluded once, still found
    with store.session() as s:  # its text changes: the vector is dropped with the document row
        s.execute(text("UPDATE questions SET text = 'Which espresso grinder for a small office?'"))
    hits = search(store, UNDO)
    assert all(hit.similarity in (None, 0.0) for hit in hits) and hits == []
    fill(store)
    [hit] = search(store, "coffee machine for the office")
    assert hit.id == first and hit.similarity and hit.similarity > 0.3


# --- reindex ----------------------------------------------------------------------------------------------


@pytest.fixture
def run_cli(database_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_reindex_fills_what_is_missing_with_a_progress_bar_and_goes_on_where_it_stopped(store, run_cli, monkeypatch):
    with store.session() as s:
        s.add(Workspace(team_id="T1", created_at=NOW))
    for n in range(7):
        answered(store, f"Question number {n} about deploys", f"Answer {n}")
    monkeypatch.setattr(cli, "REINDEX_BATCH", 2)
    update = ProgressBar.update
    batches: list[int] = []

    def stopped_after_two_batches(bar: ProgressBar, done: int) -> None:
        update(bar, done)
        batches.append(done)
        if len(batches) == 2:
            raise KeyboardInterrupt  # Ctrl-C

    monkeypatch.setattr(ProgressBar, "update", stopped_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        run_cli("reindex")
    assert len(stored_vectors(store)) == 4  # the two batches done were committed

    monkeypatch.setattr(ProgressBar, "update", update)
    code, out, err = run_cli("reindex")
    assert code == 0, err
    assert "Computed 3 search vectors of every workspace" in out and "0 still missing" in out
    assert "3/3 vectors" in err and "ETA" in err
    assert_every_vector_current(store)

    code, out, err = run_cli("reindex", "--team", "T1", "--all")
    assert code == 0 and "Deleted 7 vectors of T1" in err and "Computed 7 search vectors of T1" in out
    assert_every_vector_current(store)


# --- forget-user ------------------------------------------------------------------------------------------


def test_forget_user_redacted_text_is_embedded_again(store, run_cli):
    with store.session() as s:
        s.add(Workspace(team_id="T1", created_at=NOW))
    _, ts = ask(store, "U0GONE1 asks: how do I undo my last commit?", asker="U0GONE1")
    accept(store, reply(store, ts, "git reset --soft HEAD~1"), asker="U0GONE1")
    fill(store)
    [(_, before, _)] = stored_vectors(store).values()
    code, _, err = run_cli("forget-user", "--team", "T1", "--user", "U0GONE1")
    assert code == 0, err
    assert stored_vectors(store) == {}  # the redacted document is a new row, owed a vector
    fill(store)
    assert_every_vector_current(store)
    [(title, _)] = documents(store).values()
    [(_, after, _)] = stored_vectors(store).values()
    assert "U0GONE1" not in title and after != before


# --- the index in memory, clustered at scale --------------------------------------------------------------


def test_clustered_nearest_vectors_agree_with_all_compared_and_follow_changes(monkeypatch):
    import numpy as np

    monkeypatch.setattr(vectors, "CLUSTERED_FROM", 2_000)
    rng = np.random.default_rng(1)
    topics = rng.standard_normal((40, 384)).astype(np.float32)
    index = vectors.VectorIndex("T1", "model")

    def unit(v):
        return (v / np.linalg.norm(v)).astype(np.float32)

    def put(document_id, vector, channel="C1", private=False):
        with index._lock:
            index._put(document_id, document_id, vector, channel, private)

    for document_id in range(1, 3001):
        put(document_id, unit(topics[document_id % 40] + 0.6 * rng.standard_normal(384)))
    queries = [unit(topics[t] + 0.6 * rng.standard_normal(384)) for t in range(40)]
    agree = [
        len(
            {n.document_id for n in index.nearest(q, 50, "C1")}
            & {n.document_id for n in index.nearest(q, 50, "C1", exact=True)}
        )
        for q in queries
    ]
    assert index._clusters is not None and sum(agree) / (50 * len(queries)) > 0.9

    # Added after the clustering: always compared. Replaced: the new vector counts. Forgotten: gone. Private: hidden.
    fresh = unit(rng.standard_normal(384))
    put(5000, fresh)
    put(7, -fresh)
    put(6000, fresh * 0.99 + 0.01, channel="C_SECRET", private=True)
    [first] = index.nearest(fresh, 1, "C1")
    assert first.document_id == 5000
    [opposite] = index.nearest(-fresh, 1, "C1")
    assert opposite.document_id == 7 and opposite.cosine > 0.99
    index.forget([5000])
    assert 5000 not in {n.document_id for n in index.nearest(fresh, 50, "C1")}
    assert 6000 not in {n.document_id for n in index.nearest(fresh, 3000, None)}
    assert index.nearest(fresh, 1, "C_SECRET")[0].document_id == 6000


def test_two_replicas_computing_one_vector_leave_one_and_the_tick_fills_what_a_crash_left(store):
    from bot.config import Settings
    from bot.services import Services

    model, owed, computed = computed_but_not_stored(store)
    for _ in range(2):  # both replicas write it, one after the other
        with store.session() as s:
            assert vectors.store_vectors(s, model, [owed], computed) == 1
    [(_, _, seq)] = stored_vectors(store).values()
    assert seq == 2  # the second write replaced the first, with a newer number: every process catches up

    # A crash between the change and its vector: the next tick (any replica) computes it.
    lesson(store, "To take back the newest commit but keep its changes: git reset --soft HEAD~1")
    services = Services(
        settings=Settings(database_url=store.engine.url.render_as_string(hide_password=False)), store=store
    )
    assert vectors.tick(services, None, None) == 1
    assert_every_vector_current(store)


def test_without_the_model_search_is_full_text_and_says_so_once(store, monkeypatch, caplog):
    import bot.embedding

    def unavailable():
        raise bot.embedding.EmbeddingUnavailable("weights missing")

    git = answered(store, GIT, GIT_ANSWER)
    fill(store)
    monkeypatch.setattr(bot.embedding, "embedder", unavailable)
    monkeypatch.setattr(vectors, "_unavailable_said", type(vectors._unavailable_said)())
    with caplog.at_level("ERROR", logger="peerlearn.search"):
        assert search(store, UNDO) == []  # shares no word: full text finds nothing
        [hit] = search(store, "revert git change")
        assert hit.id == git and hit.similarity is None
        assert (
            vectors.tick(type("S", (), {"store": store, "stopping": type(vectors._unavailable_said)()})(), None, None)
            == 0
        )
    said = [r for r in caplog.records if "semantic search is off" in r.getMessage()]
    assert len(said) == 1 and "weights missing" in said[0].getMessage()


def test_the_index_compacts_its_dead_rows_and_keeps_every_live_one():
    import numpy as np

    index = vectors.VectorIndex("T1", "model")
    rng = np.random.default_rng(2)
    live: dict[int, np.ndarray] = {}
    for document_id in range(1, 5001):
        vector = rng.standard_normal(384).astype(np.float32)
        vector /= np.linalg.norm(vector)
        with index._lock:
            index._put(document_id, document_id, vector, "C1", False)
        live[document_id] = vector
        if document_id % 3 == 0:  # edited: its old document gone
            index.forget([document_id - 1])
            live.pop(document_id - 1, None)
    assert len(index) == len(live)
    for document_id, vector in list(live.items())[::250]:
        [near] = index.nearest(vector, 1, "C1")
        assert near.document_id == document_id and near.cosine > 0.999
