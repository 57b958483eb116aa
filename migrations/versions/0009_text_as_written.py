"""text as written: user text that was stored in Slack's escaped form becomes what the person wrote

Since issue 18 stored user text is what the person wrote (`a < b && c > d`), with Slack's user mentions and
channel references kept as `<@U…>` / `<#C…>` (bot/tags.py). Before, text from slash commands and message
events was stored as Slack delivers it (`a &lt; b &amp;&amp; c &gt; d`, links and broadcasts as `<…>`): every
answer (message events), every lesson (`/teach`) and the questions asked with `/ask …` (request_key
`cmd:…`). Questions from the /ask form (request_key `view:…`) were stored raw already and stay as they are.
Only rows holding `&` or `<` can change; the search index follows through its triggers (0002).

The conversion is a frozen copy of bot.tags.from_slack as of this revision, so this migration does the same
thing whatever that function becomes. Downgrade escapes those rows again (a link stays the URL it became).

Revision ID: 0009
Revises: 0001
Create Date: 2026-12-06 09:00:00.000000
"""

import re
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000

_ENTITY = re.compile(r"<([^<>]*)>")
_ESCAPE = re.compile(r"&(amp|lt|gt);")
_ESCAPED = {"amp": "&", "lt": "<", "gt": ">"}
_MENTION_TARGET = re.compile(r"@[UW][A-Z0-9_]+|#[CG][A-Z0-9_]+")
_KEPT_ENTITY = re.compile(r"(<(?:@[UW][A-Z0-9_]+|#[CG][A-Z0-9_]+)(?:\|[^<>|]*)?>)")
_BROADCASTS = ("here", "channel", "everyone")


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPED[m.group(1)], text)


def _as_written(entity: str) -> str:
    target, _, label = entity.partition("|")
    label = _unescape(label)
    if _MENTION_TARGET.fullmatch(target):
        return f"<{target}|{label}>" if label and not re.search(r"[<>|]", label) else f"<{target}>"
    if target.startswith("!"):
        name = target[1:].split("^")[0]
        return "@" + name.lower() if name.lower() in _BROADCASTS else label or ("@group" if name == "subteam" else "")
    url = _unescape(target)
    if not label or label == url:
        return url
    if url.partition(":")[2].lstrip("/") == label:
        return label
    return f"{label} ({url})"


def from_slack(text: str) -> str:
    parts: list[str] = []
    position = 0
    for match in _ENTITY.finditer(text):
        parts += [_unescape(text[position : match.start()]), _as_written(match.group(1))]
        position = match.end()
    parts.append(_unescape(text[position:]))
    return "".join(parts)


def to_slack(text: str) -> str:
    """Escape & < > outside the mentions and channel references that both forms share."""
    pieces = _KEPT_ENTITY.split(text)  # every other piece is a kept entity
    return "".join(
        piece if i % 2 else piece.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        for i, piece in enumerate(pieces)
    )


def _text_table(name: str, *extra: sa.Column[str]) -> sa.Table:
    columns = (sa.Column("id", sa.Integer, primary_key=True), sa.Column("text", sa.Text), *extra)
    return sa.Table(name, sa.MetaData(), *columns)


def _convert(change: Callable[[str], str]) -> None:
    """Apply `change` to the text of every row that came from Slack's escaped form, a page of rows at a time."""
    questions = _text_table("questions", sa.Column("request_key", sa.String(255)))
    answers, lessons = _text_table("answers"), _text_table("lessons")
    bind = op.get_bind()
    for table, from_slack_form in (
        (questions, sa.not_(questions.c.request_key.startswith("view:"))),
        (answers, sa.true()),
        (lessons, sa.true()),
    ):
        can_change = sa.or_(table.c.text.contains("&"), table.c.text.contains("<"), table.c.text.contains(">"))
        page = sa.select(table.c.id, table.c.text).where(from_slack_form, can_change).order_by(table.c.id).limit(BATCH)
        update = table.update().where(table.c.id == sa.bindparam("row_id")).values(text=sa.bindparam("new_text"))
        last = 0
        while rows := bind.execute(page.where(table.c.id > last)).all():
            converted = [(row_id, text, change(text)) for row_id, text in rows]
            changed = [{"row_id": row_id, "new_text": new} for row_id, text, new in converted if new != text]
            if changed:
                bind.execute(update, changed)
            last = rows[-1][0]


def upgrade() -> None:
    _convert(from_slack)


def downgrade() -> None:
    _convert(to_slack)
