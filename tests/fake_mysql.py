"""A stand-in for the ``mysql`` client, for the scripts that talk to the project's database.

:func:`install` writes ``DIR/mysql``; put DIR first on PATH. Each run appends what it was given
(its arguments, the option file's text, the statements from ``-e`` or stdin) to
``DIR/calls.jsonl`` and answers the first of ``DIR/answers.json``'s ``[substring, hex bytes]``
pairs whose substring is in the statements (bytes: a volunteer's stderr need not be UTF-8), or
nothing. ``DIR/fail`` makes it fail as mysql does: its text on stderr, exit 1.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

SOURCE = r'''#!{python}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
statements = args[args.index("-e") + 1] if "-e" in args else sys.stdin.read()
options = next((a.split("=", 1)[1] for a in args if a.startswith("--defaults-extra-file=")), "")
with open(options) as f:
    option_text = f.read()
with open(os.path.join(here, "calls.jsonl"), "a") as log:
    log.write(json.dumps({{"args": args, "options": option_text,
                          "mode": oct(os.stat(options).st_mode & 0o777),
                          "statements": statements}}) + "\n")
fail = os.path.join(here, "fail")
if os.path.exists(fail):
    sys.stderr.write(open(fail).read())
    sys.exit(1)
with open(os.path.join(here, "answers.json")) as f:
    answers = json.load(f)
for substring, answer in answers:
    if substring in statements:
        sys.stdout.buffer.write(bytes.fromhex(answer))
        break
'''


def install(directory: Path, answers: list[tuple[str, bytes]] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "mysql"
    script.write_text(SOURCE.format(python=sys.executable))
    script.chmod(0o755)
    answer(directory, answers or [])
    return directory


def answer(directory: Path, answers: list[tuple[str, bytes]]) -> None:
    (directory / "answers.json").write_text(json.dumps([[s, a.hex()] for s, a in answers]))


def calls(directory: Path) -> list[dict[str, Any]]:
    log = directory / "calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def path_with(directory: Path) -> dict[str, str]:
    """The environment with ``directory`` first on PATH."""
    return dict(os.environ, PATH=f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")
