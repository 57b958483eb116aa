"""The Store on SQLite: this process's transactions take turns (models/session.py), and a turn is always given
back, whether the transaction commits, rolls back or its connection is simply closed."""

import threading

import pytest
from sqlalchemy import text

from models.session import Store

WAIT = 10.0  # seconds; a thread still blocked after this is a lost turn


@pytest.fixture
def store(tmp_path):
    store = Store.from_url(f"sqlite:///{tmp_path / 'turns.db'}")
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (n INTEGER NOT NULL)"))
    yield store
    store.dispose()


def write(store, n):
    with store.session() as session:
        session.execute(text("INSERT INTO notes (n) VALUES (:n)"), {"n": n})


def in_thread(function, *args):
    thread = threading.Thread(target=function, args=args, daemon=True)
    thread.start()
    return thread


def notes(store):
    with store.session() as session:
        return list(session.execute(text("SELECT n FROM notes ORDER BY rowid")).scalars())


def test_a_writer_waits_for_the_open_transaction_then_goes(store):
    holding, release = threading.Event(), threading.Event()

    def first():
        with store.session() as session:
            session.execute(text("INSERT INTO notes (n) VALUES (1)"))
            holding.set()
            release.wait(WAIT)

    one = in_thread(first)
    assert holding.wait(WAIT)
    two = in_thread(write, store, 2)  # starts while the first transaction is open
    release.set()
    one.join(WAIT)
    two.join(WAIT)
    assert not one.is_alive() and not two.is_alive()
    assert notes(store) == [1, 2]


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_the_turn_comes_back_when_the_transaction_ends(store, end):
    conn = store.engine.connect()  # kept checked out, so the other writer needs another connection
    conn.execute(text("INSERT INTO notes (n) VALUES (1)"))
    getattr(conn, end)()
    other = in_thread(write, store, 2)
    other.join(WAIT)
    assert not other.is_alive()
    conn.close()
    assert notes(store) == ([1, 2] if end == "commit" else [2])


def test_the_turn_comes_back_after_a_failed_session(store):
    with pytest.raises(RuntimeError), store.session() as session:
        session.execute(text("INSERT INTO notes (n) VALUES (1)"))
        raise RuntimeError("the handler failed")
    threads = [in_thread(write, store, n) for n in (2, 3)]
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(notes(store)) == [2, 3]


def test_many_threads_writing_at_once_all_get_their_turn(store):
    threads = [in_thread(write, store, n) for n in range(20)]
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(notes(store)) == list(range(20))


def test_the_turn_comes_back_when_a_broken_connection_is_thrown_away(store):
    conn = store.engine.connect()  # kept checked out, as a request that hit a broken connection would
    conn.execute(text("INSERT INTO notes (n) VALUES (1)"))
    conn.invalidate()
    other = in_thread(write, store, 2)
    other.join(WAIT)
    assert not other.is_alive()
    conn.rollback()  # what SQLAlchemy asks of an invalidated connection's owner
    conn.close()
    assert notes(store) == [2]
