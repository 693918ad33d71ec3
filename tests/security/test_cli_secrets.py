"""Channel secrets reach the CLI on stdin, never in argv (any local user's ``ps`` reads argv)."""

from __future__ import annotations

import io

import pytest

from engine.cli import _channel_secrets, build_parser
from engine.cli.common import CliError


def _args(*extra: str) -> object:
    return build_parser().parse_args(["channel", "create", "telegram", "--merchant", "m1", *extra])


def test_secrets_are_read_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("123:bot-token-from-stdin\nwebhook-secret\n"))
    args = _args()
    assert _channel_secrets(args) == ("123:bot-token-from-stdin", "webhook-secret")  # type: ignore[arg-type]


def test_missing_secrets_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CliError, match="two lines on stdin"):
        _channel_secrets(_args())  # type: ignore[arg-type]


def test_argv_secrets_still_work_but_warn(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    args = _args("--bot-token", "1:x", "--secret-token", "s")
    assert _channel_secrets(args) == ("1:x", "s")  # type: ignore[arg-type]
    assert "visible to other local users" in capsys.readouterr().err
