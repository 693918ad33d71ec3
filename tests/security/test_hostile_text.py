"""Customer text cannot stall a conversation host: every rule that reads it does linear work.

The rules run on the host actor's event loop, where one stalled turn stalls every conversation
of that host. A backtracking pattern took 137 ms at 1,024 digits and seconds at 4,096 (work
quadratic in the input). The check runs the real rules over hostile texts four times longer
than a turn may ever read, in a child process whose CPU time is capped by the kernel
(``RLIMIT_CPU``): a quadratic pattern needs minutes of CPU for these inputs and is killed;
the linear code needs a fraction of a second. Nothing here measures wall time.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.domain.dialogue import turns
from engine.services import hosting

CPU_SECONDS = 20
SIZE = 16 * turns.MAX_TURN_TEXT  # 16,384: a quadratic rule needs minutes of CPU here

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_CPU, ({cpu}, {cpu}))
    from engine.domain.dialogue import constraints, intents
    from engine.domain.text import detect_language, expand_for_embedding, extract_price_limit
    from engine.domain.text import lexical_tokens
    from connectors.telegram import interpret_response
    for text in json.load(sys.stdin):
        extract_price_limit(text)
        constraints.extract(text)
        intents.classify(text)
        intents.commerce_intent(text, has_context=True, has_cart=True)
        detect_language(text)
        expand_for_embedding(text)
        lexical_tokens(text)
        interpret_response(400, json.dumps({"ok": False, "description": text}).encode())
    print("done")
    """
).replace("{cpu}", str(CPU_SECONDS))

PIECES = [
    "1",
    "٠",
    "١٢",
    ",",
    ".",
    " ",
    "1,",
    "1.",
    "ab",
    "ب",
    "ال",
    "under ",
    "اقل من ",
    "or less",
    "SAR",
    "ريال",
    "size ",
    "مقاس ",
    "red",
    "أحمر",
    ":",
    "-",
    "_",
    "x",
]


def hostile_texts() -> list[str]:
    """Long runs of one piece, and long random mixes of the pieces regexes trip over."""
    texts = [piece * (SIZE // len(piece)) for piece in PIECES]
    rng = random.Random(1234)
    for _ in range(20):
        out: list[str] = []
        while sum(map(len, out)) < SIZE:
            out.append(rng.choice(PIECES) * rng.randint(1, 200))
        texts.append("".join(out)[:SIZE])
    return texts


def run_child(texts: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_rules_do_linear_work_on_hostile_texts() -> None:
    done = run_child(hostile_texts())
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-2000:]


@settings(max_examples=10, deadline=None, database=None, derandomize=True)
@given(st.lists(st.lists(st.sampled_from(PIECES), min_size=1, max_size=4), min_size=1, max_size=5))
def test_rules_do_linear_work_on_generated_texts(groups: list[list[str]]) -> None:
    """Runs of small generated patterns ("1,a 1," repeated): what backtracking feeds on."""
    parts = ["".join(g) for g in groups]
    text = "".join(p * (SIZE // (len(p) * len(parts)) + 1) for p in parts)[:SIZE]
    done = run_child([text])
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-2000:]


def test_a_turn_reads_a_bounded_amount_of_text() -> None:
    assert turns.MAX_TURN_TEXT <= 4096 and hosting.MAX_BATCH <= 32
