"""Builds static/emoji.json, the shortcode table the playground page renders emoji with (`:hourglass_flowing_sand:`
→ ⏳), from iamcal/emoji-data: the data set behind Slack's own shortcodes, MIT-licensed, published on npm as
`emoji-datasource` (its `emoji.json`; the images in that package are not needed).

    npm pack emoji-datasource@16.0.0 && tar xzf emoji-datasource-16.0.0.tgz package/emoji.json
    python -m bot.playground.emoji_table package/emoji.json 16.0.0
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TABLE = Path(__file__).resolve().parent / "static" / "emoji.json"


def shortcodes(emoji_data: list[dict[str, Any]]) -> dict[str, str]:
    """Every short name (`+1`, `thumbsup`, `skin-tone-2`, …) → the emoji, as its fully qualified code points."""
    table: dict[str, str] = {}
    for entry in emoji_data:
        character = "".join(chr(int(point, 16)) for point in entry["unified"].split("-"))
        for name in entry["short_names"]:
            table[name] = character
    return dict(sorted(table.items()))


def main(argv: list[str]) -> int:
    source, version = Path(argv[0]), argv[1]
    table = shortcodes(json.loads(source.read_text(encoding="utf-8")))
    document = {
        "source": f"iamcal/emoji-data {version} (npm emoji-datasource), built by bot/playground/emoji_table.py",
        "license": "MIT, Copyright (c) 2013 Cal Henderson",
        "emoji": table,
    }
    TABLE.write_text(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{len(table)} shortcodes written to {TABLE.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
