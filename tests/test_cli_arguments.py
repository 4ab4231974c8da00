"""The command line takes a command's options anywhere among its words, as users type
them: `vigil project create --org acme app` as well as `vigil project --org acme create
app` (argparse alone refused the first, the slug being "unrecognized")."""

from __future__ import annotations

import pytest

from tests.conftest import run_vigil
from vigil.cli import build_parser
from vigil.config import Settings


@pytest.mark.parametrize(
    "argv",
    [
        ["project", "create", "--org", "acme", "app"],
        ["project", "--org", "acme", "create", "app"],
        ["project", "create", "app", "--org", "acme"],
        ["project", "create", "--org=acme", "--name", "The app", "app"],
    ],
)
def test_options_go_anywhere_among_a_commands_words(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.command, args.action, args.slug, args.org) == ("project", "create", "app", "acme")


def test_two_optional_words_after_options_keep_their_order() -> None:
    args = build_parser().parse_args(["option", "set", "--force", "system.url-prefix", '"x"'])
    assert (args.action, args.key, args.value, args.force) == (
        "set",
        "system.url-prefix",
        '"x"',
        True,
    )


def test_commands_with_their_own_commands_still_parse() -> None:
    args = build_parser().parse_args(["bench", "occurrences", "--scenario", "hot"])
    assert (args.command, args.benchmark, args.scenario) == ("bench", "occurrences", ["hot"])


def test_a_word_too_many_is_still_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["project", "create", "--org", "acme", "app", "extra"])
    assert exited.value.code == 2
    assert "unrecognized arguments: extra" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["serve", "web"])
def test_the_help_of_what_listens_says_how_to_choose_the_address(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # There is no --port: the address is the VIGIL_BIND setting, as the help says.
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # as wrapped for any terminal
    assert "`VIGIL_BIND=0.0.0.0:9000 vigil serve`" in shown


def test_project_create_with_the_org_before_the_slug(stack: Settings) -> None:
    assert run_vigil(stack, "org", "create", "acme").returncode == 0
    created = run_vigil(stack, "project", "create", "--org", "acme", "app")
    assert created.returncode == 0, created.stderr
    assert "created project app" in created.stdout
    listed = run_vigil(stack, "project", "list", "--org", "acme")
    assert listed.stdout.split()[1:3] == ["app", "app"]
