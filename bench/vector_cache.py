"""Sentence vectors of a dump's texts for the benchmarks, computed once and kept in a file between runs.

    python bench/vector_cache.py --all-sites DIR --vector-cache FILE   # fill the cache (routing's texts)

The model is the bot's (bot/embedding.py, through bot.search.vectors.embedder_or_none); a text's key is the
sha256 of the model's name and the text, so a cache never serves another model's vectors. The file is a pickle
of {key: float32 vector} (the same form bench/search.py's --vector-cache keeps, so one file may serve both).
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `bot` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import numpy.typing as npt

from bot.embedding import DIMENSIONS
from bot.search import vectors

Vectors = npt.NDArray[np.float32]


class VectorCache:
    """`embed(texts)` with every text's vector remembered (and kept in `path`, when given, by `save`)."""

    def __init__(self, path: Path | None, embed: Callable[[Sequence[str]], npt.ArrayLike] | None = None) -> None:
        self.path = path
        self._embed = embed
        self.known: dict[str, Vectors] = {}
        if path is not None and path.exists():
            with path.open("rb") as file:
                self.known = pickle.load(file)
        self.computed = 0

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(f"{vectors.model_name()}\0{text}".encode()).hexdigest()

    def embed(self, texts: Sequence[str], *, chunk: int = 256) -> Vectors:
        keys = [self.key(text) for text in texts]
        todo = list({key: text for key, text in zip(keys, texts, strict=True) if key not in self.known}.items())
        if todo and self._embed is None:
            self._embed = vectors.embedder_or_none()
            if self._embed is None:
                raise SystemExit("the embedding model cannot be loaded: no vectors")
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            assert self._embed is not None
            computed = np.asarray(self._embed([text for _, text in part]), dtype=np.float32)
            for (key, _), vector in zip(part, computed, strict=True):
                self.known[key] = vector
            self.computed += len(part)
        if not keys:
            return np.zeros((0, DIMENSIONS), np.float32)
        return np.stack([self.known[key] for key in keys])

    def save(self) -> None:
        if self.path is not None and self.computed:
            partial = self.path.with_suffix(self.path.suffix + ".partial")
            with partial.open("wb") as file:
                pickle.dump(self.known, file)
            partial.replace(self.path)


def main(argv: Sequence[str] | None = None) -> int:
    from bench.routing import site_texts
    from bench.sites import add_site_arguments, site_folders
    from bench.stackexchange import load_site

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_site_arguments(parser)
    parser.add_argument("--vector-cache", type=Path, required=True, help="the file keeping the vectors")
    args = parser.parse_args(argv)
    cache = VectorCache(args.vector_cache)
    for folder in site_folders(parser, args):
        started = time.perf_counter()
        texts = site_texts(load_site(folder))
        for start in range(0, len(texts), 512):  # saved as it goes: a stopped run keeps what it computed
            cache.embed(texts[start : start + 512])
            cache.save()
        print(f"{folder.name}: {len(texts)} texts, {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
