"""bench/sites.py: choosing the sites, pooling per-query values and the paired bootstrap; and the search and
routing benchmarks run on several sites. Pure and fast (a few seconds with the tiny dumps)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from bench import routing, search
from bench.sites import (
    Column,
    SiteValues,
    build_report,
    format_table,
    paired_intervals,
    pooled_means,
    select_sites,
    site_name,
)
from bench.vector_cache import VectorCache
from bot.config import Settings
from bot.search import SUGGESTION_FLOOR, fulltext

PAIR = {"x_vs_base": ("x", "base_x")}


def site(name: str, ours: list[float], baseline: list[float]) -> SiteValues:
    return SiteValues(name, {"x": ours, "base_x": baseline})


# --- pooling and intervals ------------------------------------------------------------------------------


def test_pooled_means_weigh_each_query_not_each_site() -> None:
    sites = [site("small", [1.0], [0.0]), site("large", [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])]

    assert pooled_means(sites, ["x", "base_x"]) == {"x": 0.25, "base_x": 0.0}


def test_a_site_without_queries_has_no_figures_and_does_not_move_the_pool() -> None:
    empty = site("empty", [], [])
    full = site("full", [1.0, 0.0], [0.0, 0.0])

    assert pooled_means([empty], ["x"]) == {"x": None}
    assert paired_intervals([empty], PAIR) == {"x_vs_base": None}
    assert pooled_means([empty, full], ["x"]) == pooled_means([full], ["x"]) == {"x": 0.5}
    assert paired_intervals([empty, full], PAIR) == paired_intervals([full], PAIR)


def test_the_interval_of_identical_rankers_is_zero() -> None:
    values = [1.0, 0.0, 0.5, 0.0]

    assert paired_intervals([site("a", values, values)], PAIR) == {"x_vs_base": (0.0, 0.0)}


def test_the_interval_follows_the_paired_differences() -> None:
    # 30 questions only the first ranker gets, 10 only the second: +0.5, standard error ~0.14.
    one = site("one", [1.0] * 30 + [0.0] * 10, [0.0] * 30 + [1.0] * 10)

    (low, high) = paired_intervals([one], PAIR)["x_vs_base"]  # type: ignore[misc]

    assert 0.15 < low < 0.35 and 0.65 < high < 0.85


def test_the_pooled_bootstrap_is_stratified_by_site() -> None:
    # Every query of one site differs by +1, every query of the other by 0: resampling within each site keeps
    # 10 of 40 queries at +1 in every resample, so the interval is exactly 0.25; a pooled draw would spread it.
    sites = [site("plus", [1.0] * 10, [0.0] * 10), site("zero", [0.0] * 30, [0.0] * 30)]

    assert paired_intervals(sites, PAIR) == {"x_vs_base": (0.25, 0.25)}


def test_the_bootstrap_is_deterministic_and_seeded() -> None:
    sites = [site("a", [1.0, 0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0, 0.0]), site("b", [0.0, 1.0], [1.0, 1.0])]

    first = paired_intervals(sites, PAIR, samples=500)

    assert paired_intervals(sites, PAIR, samples=500) == first
    assert any(paired_intervals(sites, PAIR, samples=500, seed=seed) != first for seed in range(1, 5))


def test_the_report_gives_each_site_and_the_pool_with_todays_keys_on_top() -> None:
    a, b = site("a", [1.0, 1.0], [0.0, 1.0]), site("b", [0.0, 0.0, 1.0], [0.0, 0.0, 0.0])

    several = build_report([a, b], PAIR).as_json()
    single = build_report([a], PAIR).as_json()

    assert several["x"] == 0.6 and several["base_x"] == 0.2 and several["n"] == 5
    assert several["difference"] == {"x_vs_base": 0.4}
    assert several["sites"] == ["a", "b"]
    per_site = several["per_site"]
    assert isinstance(per_site, dict) and per_site["a"]["x"] == 1.0 and per_site["b"]["x"] == pytest.approx(0.3333)
    assert {key: single[key] for key in ("x", "base_x", "n", "difference", "ci95")} == {
        key: per_site["a"][key] for key in ("x", "base_x", "n", "difference", "ci95")
    }


def test_the_table_has_a_pooled_row_only_for_several_sites() -> None:
    a, b = site("a", [1.0], [0.0]), site("b", [0.0], [0.0])
    columns = [Column("X", "x")]

    assert "pooled" in format_table(build_report([a, b], PAIR), columns, PAIR)
    assert "pooled" not in format_table(build_report([a], PAIR), columns, PAIR)


# --- choosing the sites -------------------------------------------------------------------------------------


def test_all_sites_takes_every_stackexchange_folder_once_in_order(tmp_path: Path) -> None:
    for name in ("stackexchange-zeta", "stackexchange-alpha", "notes"):
        (tmp_path / name).mkdir()
    (tmp_path / "stackexchange-file").write_text("not a folder")
    alpha = tmp_path / "stackexchange-alpha"

    chosen = select_sites([alpha], tmp_path)

    assert [site_name(folder) for folder in chosen] == ["alpha", "zeta"]
    assert site_name(tmp_path / "notes") == "notes"


def test_no_site_or_two_sites_of_one_name_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "one" / "stackexchange-x").mkdir(parents=True)
    (tmp_path / "two" / "stackexchange-x").mkdir(parents=True)

    with pytest.raises(ValueError, match="at least one site"):
        select_sites([])
    with pytest.raises(ValueError, match="same site name: x"):
        select_sites([tmp_path / "one" / "stackexchange-x", tmp_path / "two" / "stackexchange-x"])


# --- the benchmarks on several sites --------------------------------------------------------------------------


def write_dump(folder: Path, *, experts: tuple[int, int], linked: bool) -> Path:
    """Twenty kafka questions, each answered (and accepted) by one of two experts; optionally linked pairs."""
    folder.mkdir()
    posts = ['<?xml version="1.0" encoding="utf-8"?>', "<posts>"]
    for i in range(20):
        asked = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=i)
        topic = ("consumer lag", "broker disk")[i % 2]
        posts.append(
            f'<row Id="{100 + i}" PostTypeId="1" CreationDate="{asked:%Y-%m-%dT%H:%M:%S}" OwnerUserId="{50 + i}" '
            f'Title="kafka {topic} {i}" Body="&lt;p&gt;{topic}&lt;/p&gt;" Tags="|kafka|" Score="1" '
            f'AcceptedAnswerId="{200 + i}" />'
        )
        posts.append(
            f'<row Id="{200 + i}" PostTypeId="2" ParentId="{100 + i}" OwnerUserId="{experts[i % 2]}" Score="2" '
            f'CreationDate="{asked + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}" Body="{topic}: raise the partitions" />'
        )
    posts.append("</posts>")
    (folder / "Posts.xml").write_text("\n".join(posts), encoding="utf-8")
    if linked:
        links = ['<?xml version="1.0" encoding="utf-8"?>', "<postlinks>"]
        links += [
            f'<row Id="{i}" CreationDate="2024-02-01T00:00:00" PostId="{100 + i}" RelatedPostId="{102 + i}" '
            'LinkTypeId="1" />'
            for i in range(0, 16, 4)
        ]
        (folder / "PostLinks.xml").write_text("\n".join([*links, "</postlinks>"]), encoding="utf-8")
    return folder


def test_routing_reports_each_site_the_pool_and_hit_at_the_bots_k(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dump(tmp_path / "stackexchange-one", experts=(10, 11), linked=False)
    write_dump(tmp_path / "stackexchange-two", experts=(12, 13), linked=False)

    assert routing.main(["--all-sites", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)

    assert result["k"] == Settings().route_top_n == routing.ROUTE_TOP_N
    assert set(result["per_site"]) == {"one", "two"} and result["sites"] == ["one", "two"]
    assert result["n_test"] == sum(site["n_test"] for site in result["per_site"].values()) == 8
    for key in ("hit_at_k", "tag_overlap_hit_at_k", "p_at_1", "mrr", "hit_at_5"):
        assert 0.0 <= result[key] <= 1.0
    assert result["hit_at_k"] == 1.0  # two experts, both answered before every test question
    low, high = result["ci95"]["hit_at_k_vs_tag_overlap"]
    assert low <= result["difference"]["hit_at_k_vs_tag_overlap"] <= high
    assert result["p_at_1_minus_tag_overlap_ci95"] == result["ci95"]["p_at_1_vs_tag_overlap"]


def test_routing_fits_on_one_site_only(tmp_path: Path) -> None:
    one = write_dump(tmp_path / "stackexchange-one", experts=(10, 11), linked=False)
    two = write_dump(tmp_path / "stackexchange-two", experts=(12, 13), linked=False)

    with pytest.raises(SystemExit):
        routing.main(["--data", str(one), str(two), "--fit"])


def test_routing_reports_the_cardano_weights_beside_the_current_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dump(tmp_path / "stackexchange-one", experts=(10, 11), linked=False)

    assert routing.main(["--all-sites", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)

    assert result["before_hit_at_k"] == 1.0
    low, high = result["ci95"]["mrr_vs_before"]
    assert low <= result["difference"]["mrr_vs_before"] <= high


def test_routing_fits_across_sites_leaving_each_site_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, experts in (("one", (10, 11)), ("two", (12, 13)), ("three", (14, 15))):
        write_dump(tmp_path / f"stackexchange-{name}", experts=experts, linked=False)

    assert routing.main(["--all-sites", str(tmp_path), "--fit-sites", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)

    chosen = result["chosen"]
    assert chosen in result["trials"]  # the best held-out log-likelihood of every feature set and penalty
    assert chosen["log_likelihood"] == max(trial["log_likelihood"] for trial in result["trials"])
    assert set(chosen["per_site"]) == {"one", "two", "three"}  # each site measured by a fit on the others
    assert list(result["weights"]) == chosen["features"]
    test = result["test"]
    assert test["n"] == 12 and set(test["per_site"]) == {"one", "two", "three"}
    assert test["before_hit_at_k"] == test["hit_at_k"] == 1.0  # both experts answered before every test


def test_the_fit_ranks_as_the_bots_ranker_does(tmp_path: Path) -> None:
    folder = write_dump(tmp_path / "stackexchange-one", experts=(10, 11), linked=False)
    bench = routing.Benchmark(routing.load_site(folder), split="rolling")
    tables = routing.site_tables(folder, split="rolling", cache=None)
    weights = [0.3, 0.2, -0.1, -0.25, 4.0, 0.1, 0.05, 0.2]
    params = routing.replace(routing.DEFAULT_PARAMS, weights=routing.FeatureWeights(*weights))
    columns = range(len(routing.FEATURE_NAMES))

    assert len(tables.cases) == len(bench.cases) > 5
    for case, table in zip(bench.cases, tables.tables, strict=True):
        assert routing.ranking_by(table, weights, columns) == bench.peerlearn(case, params)
    assert tables.ranks(columns, weights) == bench.ranks(partial(bench.peerlearn, params=params))


def topic_vectors(texts: Sequence[str]) -> np.ndarray:
    """A stand-in for the model: one axis per topic of write_dump's questions, one for its answers."""
    rows = np.zeros((len(texts), 4), dtype=np.float32)
    for row, text in zip(rows, texts, strict=True):
        row[0 if "consumer lag" in text else 1 if "broker disk" in text else 2] = 1.0
        row[3] = 0.1
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_the_semantic_features_favour_who_answered_that_topic(tmp_path: Path) -> None:
    folder = write_dump(tmp_path / "stackexchange-one", experts=(10, 11), linked=False)
    cache = VectorCache(tmp_path / "vectors.pkl", embed=topic_vectors)

    tables = routing.site_tables(folder, split="test", cache=cache)

    assert tables.names[-2:] == routing.SEMANTIC_FEATURES
    for case, table in zip(tables.cases, tables.tables, strict=True):
        mean, top = tables.names.index("similar_mean"), tables.names.index("similar_max")
        on_topic, other = ("10", "11") if "consumer lag" in case.text else ("11", "10")
        assert table[on_topic][top] > table[other][top] and table[on_topic][mean] > table[other][mean]
        assert 0.0 < table[other][mean] <= table[on_topic][top] <= 1.0 + 1e-6
    cache.save()
    again = VectorCache(tmp_path / "vectors.pkl")  # from the file: no model needed
    text = routing.question_text(tables.cases[0].question)
    assert np.array_equal(again.embed([text]), topic_vectors([text]))
    assert again.computed == 0


def test_search_pools_the_sites_with_queries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_dump(tmp_path / "stackexchange-linked", experts=(10, 11), linked=True)
    write_dump(tmp_path / "stackexchange-unlinked", experts=(12, 13), linked=False)

    assert search.main(["--all-sites", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)

    linked, unlinked = result["per_site"]["linked"], result["per_site"]["unlinked"]
    assert linked["n_queries"] == 8 and unlinked["n_queries"] == 0 and unlinked["recall_at_3"] is None
    assert result["n_queries"] == result["n"] == 8
    assert {key: result[key] for key in ("recall_at_3", "mrr", "bm25_mrr")} == {
        key: linked[key] for key in ("recall_at_3", "mrr", "bm25_mrr")
    }
    assert set(result["ci95"]) == {"recall_at_3_vs_bm25", "mrr_vs_bm25", "recall_at_3_vs_fulltext", "mrr_vs_fulltext"}
    # The other site's questions were searched in each store: how often something unrelated passes the floor.
    assert linked["n_foreign_queries"] == unlinked["n_foreign_queries"] > 0
    assert 0.0 <= result["false_suggestion_rate"] <= 1.0 and result["floor"] == SUGGESTION_FLOOR
    assert result["n_vectors"] == result["n_documents"]  # every answered question got its vector


def test_search_chooses_the_column_weights_leaving_one_site_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_dump(tmp_path / "stackexchange-one", experts=(10, 11), linked=True)
    write_dump(tmp_path / "stackexchange-two", experts=(12, 13), linked=True)
    shipped = (fulltext.TITLE_WEIGHT, fulltext.BODY_WEIGHT, fulltext.TAGS_WEIGHT)

    assert search.main(["--all-sites", str(tmp_path), "--json", "--column-weights", "1,0.2,1", "1,1,0.4"]) == 0
    result = json.loads(capsys.readouterr().out)

    columns = result["column_weights"]
    assert list(columns["settings"]) == ["1,0.2,1", "1,1,0.4"]
    first = columns["settings"]["1,0.2,1"]
    assert [first["recall_at_3"], first["mrr"]] == pytest.approx([result["recall_at_3"], result["mrr"]], abs=1e-4)
    for site, other in (("one", "two"), ("two", "one")):  # each site gets the setting that did best on the other
        fold = columns["folds"][site]
        quality = {name: sum(figures["per_site"][other][:2]) for name, figures in columns["settings"].items()}
        best = max(quality, key=lambda name: (quality[name], name == "1,0.2,1"))
        assert ",".join(f"{w:g}" for w in fold["chosen"]) == best
        assert fold["mrr"] == pytest.approx(columns["settings"][best]["per_site"][site][1])
    assert shipped == (fulltext.TITLE_WEIGHT, fulltext.BODY_WEIGHT, fulltext.TAGS_WEIGHT)  # put back afterwards


def test_search_refuses_column_weights_it_cannot_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_dump(tmp_path / "stackexchange-one", experts=(10, 11), linked=True)
    for bad in ("1,2,0.4", "1,0.6", "a,b,c", "0,1,1"):
        with pytest.raises(SystemExit):
            search.main(["--all-sites", str(tmp_path), "--column-weights", bad])
        assert "--column-weights" in capsys.readouterr().err


def test_search_takes_one_sqlite_file_for_one_site_only(tmp_path: Path) -> None:
    one = write_dump(tmp_path / "stackexchange-one", experts=(10, 11), linked=True)
    two = write_dump(tmp_path / "stackexchange-two", experts=(12, 13), linked=True)

    with pytest.raises(SystemExit):
        search.main(["--data", str(one), "--data", str(two), "--database-url", f"sqlite:///{tmp_path / 'x.db'}"])
