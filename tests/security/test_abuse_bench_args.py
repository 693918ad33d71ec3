"""``bench/abuse.py`` parses and bounds its arguments (the benchmark itself is run by hand: it
measures, it does not assert)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.abuse import parse_args


def test_defaults_are_the_documented_attack() -> None:
    args = parse_args([])
    assert (args.webchat_sockets, args.live_sockets, args.login_ips) == (200, 100, 50)
    assert args.attacker is None and not args.customer and args.rounds == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["--webchat-ips", "0"],
        ["--login-ips", "201"],
        ["--rate", "100", "--seconds", "60"],
        ["--rounds", "0"],
        ["--rounds", "11"],
    ],
)
def test_unbounded_or_off_loopback_runs_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)
