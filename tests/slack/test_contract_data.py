"""The contract data the emulator ships: generated from the Slack reference, listed as package data, and all the
contract reads (an installed PeerLearn has no shared/ beside it)."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from bot.playground.emulator import contract, contract_data

from .conftest import SHARED_DIR

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "bot.playground.emulator"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
REFERENCE_HERE = (SHARED_DIR / contract_data.METHODS).is_dir() and (SHARED_DIR / contract_data.CONTRACT).is_file()


@pytest.mark.skipif(not REFERENCE_HERE, reason="the Slack reference (shared/ beside the repository) is not here")
def test_the_shipped_data_is_what_the_reference_generates() -> None:
    shipped = (Path(contract_data.__file__).parent / contract_data.DATA_FILE).read_text(encoding="utf-8")
    assert shipped == contract_data.dumps(contract_data.build(SHARED_DIR)), (
        "slack_contract.json is stale: python -m bot.playground.emulator.contract_data ../shared"
    )


def test_the_data_holds_every_method_the_emulator_answers_and_the_limits_the_contract_checks() -> None:
    data = contract_data.load()
    assert set(data["block_kit"]) == set(contract_data.LIMITS)
    assert {"chat.postMessage", "chat.update", "views.open", "views.publish", "users.info"} <= set(data["methods"])
    assert contract.method_specs()["chat.postEphemeral"].required == {"channel", "user"}
    assert (contract.MESSAGE_BLOCKS_MAX, contract.VIEW_BLOCKS_MAX) == (50, 100)


def test_a_changed_limits_table_fails_the_generation_loudly(tmp_path: Path) -> None:
    (tmp_path / "SLACK-CONTRACT.md").write_text(
        "### 5.1 Block Kit\n| item | limit |\n| --- | --- |\n| blocks per message | fifty |\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match="blocks per message"):
        contract_data.block_kit_limits(tmp_path)


def shipped_packages() -> list[str]:
    """The packages pyproject's `packages.find` selects (directories with an __init__.py)."""
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    tops = [path for path in ROOT.iterdir() if path.is_dir() and not path.name.startswith(".")]
    names = [".".join(init.parent.relative_to(ROOT).parts) for top in tops for init in top.rglob("__init__.py")]
    return sorted(name for name in names if any(fnmatch.fnmatchcase(name, pattern) for pattern in include))


def shipped_files(package: str) -> list[Path]:
    """A package's files as a wheel holds them: its modules and the package data pyproject lists for it."""
    folder = ROOT.joinpath(*package.split("."))
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"].get(package, [])
    data = [path for pattern in patterns for path in folder.glob(pattern) if path.is_file()]
    return sorted(folder.glob("*.py")) + data


def test_the_package_ships_the_emulator_with_its_data_and_the_playgrounds_page() -> None:
    packages = shipped_packages()
    assert {"bot", "bot.playground", PACKAGE, "handlers", "models"} <= set(packages)
    assert not [name for name in packages if name.startswith("tests")]
    assert contract_data.DATA_FILE in {path.name for path in shipped_files(PACKAGE)}
    assert {"index.html", "playground.js", "playground.css", "emoji.json"} <= {
        path.name for path in shipped_files("bot.playground")
    }


def test_the_contract_reads_only_what_the_package_ships(tmp_path: Path) -> None:
    """The emulator's package as a wheel would install it, alone in a directory with nothing beside it."""
    for package in ("bot", "bot.playground", PACKAGE):
        for path in shipped_files(package):
            target = tmp_path.joinpath(*package.split("."), path.relative_to(ROOT.joinpath(*package.split("."))))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        sys.path.insert(0, str(Path.cwd()))  # the copy, before the checkout PeerLearn is installed from
        from bot.playground.emulator import contract
        assert Path(contract.__file__).is_relative_to(Path.cwd()), contract.__file__
        assert contract.method_specs()["chat.update"].required == {"channel", "ts"}
        assert [p.error for p in contract.check_arguments("users.info", {})] == ["invalid_arguments"]
        assert [p.error for p in contract.check_blocks([{"type": "divider"}] * 51)] == ["invalid_blocks"]
        print("ok")
        """
    )
    run = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert run.stdout.strip() == "ok", run.stderr
