"""The dependency resolver, on candidates only: no archive is read and nothing installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchain.core.errors import ResolutionError
from toolchain.installer.resolve import ActionKind, Candidate, resolve

INSTALL, UPGRADE, REPLACE = ActionKind.INSTALL, ActionKind.UPGRADE, ActionKind.REPLACE


def c(name: str, version: str, *requires: str, release: str = "1") -> Candidate:
    return Candidate(name, version, release, requires, Path(f"{name}-{version}-{release}.plugin"))


def plan(actions: list) -> list[tuple[str, str, str]]:
    return [(a.kind, a.candidate.name, a.candidate.version) for a in actions]


def problems(*args: object, **kwargs: object) -> list[str]:
    with pytest.raises(ResolutionError) as exc:
        resolve(*args, **kwargs)  # type: ignore[arg-type]
    assert str(exc.value).startswith("nothing installed: ")
    return exc.value.problems


def test_no_requirements_installs_the_requested_ones() -> None:
    actions = resolve([c("a", "1.0"), c("b", "2.0")], {})
    assert plan(actions) == [(INSTALL, "a", "1.0"), (INSTALL, "b", "2.0")]
    assert str(actions[0]) == "install a 1.0-1"


def test_two_requirers_the_highest_minimum_wins() -> None:
    repo = [c("lib", "1.0"), c("lib", "1.5"), c("lib", "2.0"), c("lib", "3.0")]
    actions = resolve([c("a", "1", "lib>=1.2,<3"), c("b", "1", "lib>=1.5")], {}, repo)
    assert plan(actions) == [(INSTALL, "lib", "2.0"), (INSTALL, "a", "1"), (INSTALL, "b", "1")]
    assert actions[0].reasons == ("a 1-1 (lib<3,>=1.2)", "b 1-1 (lib>=1.5)")
    assert "required by a 1-1" in str(actions[0])


def test_newest_release_of_the_newest_version() -> None:
    repo = [c("lib", "2.0"), c("lib", "2.0", release="3"), c("lib", "1.0", release="9")]
    assert resolve([c("a", "1", "lib")], {}, repo)[0].candidate.release == "3"


def test_a_chain_of_three_in_dependency_order() -> None:
    repo = [c("b", "1.0", "c>=2"), c("c", "1.0"), c("c", "2.0", "d"), c("d", "0.1")]
    actions = resolve([c("a", "1.0", "b")], {}, repo)
    assert plan(actions) == [
        (INSTALL, "d", "0.1"),
        (INSTALL, "c", "2.0"),
        (INSTALL, "b", "1.0"),
        (INSTALL, "a", "1.0"),
    ]


def test_installed_dependencies_that_fit_are_kept() -> None:
    installed = {"lib": c("lib", "1.5")}
    repo = [c("lib", "2.0")]
    assert plan(resolve([c("a", "1", "lib>=1")], installed, repo)) == [(INSTALL, "a", "1")]


def test_a_too_old_installed_dependency_is_upgraded() -> None:
    installed = {"lib": c("lib", "1.0"), "a": c("a", "1", "lib>=1")}
    repo = [c("lib", "1.9"), c("lib", "2.0")]
    actions = resolve([c("a", "2", "lib>=1.5")], installed, repo)
    assert plan(actions) == [(UPGRADE, "lib", "2.0"), (REPLACE, "a", "2")]
    assert str(actions[0]) == "upgrade lib 1.0-1 to 2.0-1 (required by a 2-1 (lib>=1.5))"


def test_installed_requirers_constrain_the_upgrade() -> None:
    installed = {"lib": c("lib", "1.0"), "old": c("old", "1", "lib<2")}
    repo = [c("lib", "1.5"), c("lib", "2.0")]
    actions = resolve([c("a", "1", "lib>=1.2")], installed, repo)
    assert plan(actions)[0] == (UPGRADE, "lib", "1.5")
    assert problems([c("a", "1", "lib>=2")], installed, repo) == [
        "no version of lib satisfies a 1-1 (lib>=2), old 1-1 (lib<2) "
        "(repository has lib 2.0-1, lib 1.5-1; installed: lib 1.0-1)"
    ]


def test_a_cycle_is_reported_once_with_its_path() -> None:
    repo = [c("b", "1", "c"), c("c", "1", "a")]
    assert problems([c("a", "1", "b")], {}, repo) == ["dependency cycle a -> b -> c -> a"]
    assert problems([c("self", "1", "self")], {}) == ["dependency cycle self -> self"]


def test_a_missing_dependency_deep_in_a_chain_and_every_other_problem() -> None:
    repo = [c("b", "1", "c"), c("c", "1", "d>=1", "e>=2"), c("e", "1.0"), c("e", "1.5")]
    found = problems([c("a", "1", "b"), c("x", "1", "nothere")], {}, repo)
    assert found == [
        "d is missing: required by c 1-1 (d>=1)",
        "no version of e satisfies c 1-1 (e>=2) (repository has e 1.5-1, e 1.0-1)",
        "nothere is missing: required by x 1-1",
    ]


def test_without_a_repository_a_missing_dependency_is_named() -> None:
    assert problems([c("a", "1", "lib>=1")], {}) == ["lib is missing: required by a 1-1 (lib>=1)"]


def test_a_downgrade_is_refused() -> None:
    installed = {"lib": c("lib", "2.0")}
    found = problems([c("a", "1", "lib<2")], installed, [c("lib", "1.0")])
    assert found == [
        "lib would be downgraded from 2.0-1 to 1.0-1 for a 1-1 (lib<2); downgrades are refused"
    ]


def test_a_requested_plugin_must_satisfy_its_requirers() -> None:
    found = problems([c("a", "1", "lib>=2"), c("lib", "1.0")], {}, [c("lib", "2.0")])
    assert found == ["lib 1.0-1 is given, but a 1-1 (lib>=2) require(s) lib"]
    assert plan(resolve([c("a", "1", "lib>=1"), c("lib", "1.0")], {})) == [
        (INSTALL, "lib", "1.0"),
        (INSTALL, "a", "1"),
    ]


def test_a_devlinked_dependency_is_never_replaced() -> None:
    installed = {"lib": c("lib", "1.0")}
    found = problems([c("a", "1", "lib>=2")], installed, [c("lib", "2.0")], devlinked=["lib"])
    assert found == [
        "lib 1.0-1 is devlinked and does not satisfy a 1-1 (lib>=2); update its source or unlink it"
    ]


def test_a_requested_replacement_must_keep_installed_requirers_satisfied() -> None:
    installed = {"lib": c("lib", "1.0"), "old": c("old", "1", "lib<2")}
    assert problems([c("lib", "2.0")], installed) == [
        "lib 2.0-1 is given, but old 1-1 (lib<2) require(s) lib"
    ]
    both = resolve([c("lib", "2.0"), c("old", "2", "lib>=2")], installed)
    assert plan(both) == [(REPLACE, "lib", "2.0"), (REPLACE, "old", "2")]
