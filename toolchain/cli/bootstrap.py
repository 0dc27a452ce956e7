"""`bootstrap_plugin.py`: list the templates, create a plugin from one."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from toolchain.cli.command import execute, parser
from toolchain.core.errors import CommandError, TemplateError, ToolchainError, UsageError
from toolchain.core.runner import run


def _list(args: argparse.Namespace) -> int:
    from toolchain.build import template

    templates = template.available()
    if args.json:
        rows = [
            {
                "name": t.name,
                "description": t.description,
                "default": t.name == template.DEFAULT_TEMPLATE,
            }
            for t in templates
        ]
        print(json.dumps(rows, indent=1))
        return 0
    width = max((len(t.name) for t in templates), default=0)
    for t in templates:
        marker = " (default)" if t.name == template.DEFAULT_TEMPLATE else ""
        print(f"{t.name:<{width}}  {t.description}{marker}")
    return 0


def _console_script(name: str) -> str:
    """A console script of this installation (next to the interpreter), else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def _create(args: argparse.Namespace) -> int:
    from toolchain.build import template
    from toolchain.core import names

    names.check_name(args.name)  # before anything is written
    chosen = template.find(args.template)
    answers = dict(_answer(item) for item in args.set)
    template.check_answers(chosen, answers)  # before --delete asks anything
    existing = Path.cwd() / args.name
    replace = existing.exists() or existing.is_symlink()
    if replace:
        if existing.is_symlink() or not existing.is_dir():
            template.replaceable(existing)  # refused, --delete or not: it says why
        if not args.delete:
            raise TemplateError(
                f"{existing} already exists: add --delete to replace it, or choose another name"
            )
        _confirm_delete(args, template.replaceable(existing))
    dest = template.render(
        chosen, args.name, Path.cwd(), no_input=args.no_input, answers=answers, replace=replace
    )
    if not args.json:
        print(f"created: {dest}")
    _warn_about_ci(dest)
    if args.make or args.install:
        try:
            out = sys.stderr if args.json else None  # with --json, stdout is the JSON alone
            subprocess.run(
                ["make", "-C", str(dest)], check=True, stdin=subprocess.DEVNULL, stdout=out
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            raise ToolchainError(
                f"{dest}: `make` failed ({exc}); fix it and run make there"
            ) from None
    if args.install:
        try:
            run(
                [_console_script("plugins.install"), "--devlink", str(dest), "--force"],
                what=f"plugins.install --devlink {dest}",
            )
        except CommandError as exc:
            raise ToolchainError(f"{dest}: created and built, but not installed: {exc}") from None
        if not args.json:
            print(f"installed in development mode: {args.name}")
    if args.json:
        doc = {"name": args.name, "template": chosen.name, "path": str(dest), "replaced": replace}
        print(json.dumps({**doc, "built": args.make or args.install, "devlinked": args.install}))
    return 0


def _confirm_delete(args: argparse.Namespace, files: int) -> None:
    """Ask before `create --delete` replaces ./NAME (not with --no-input); TemplateError
    when the answer is not yes, or when there is no terminal to ask on."""
    if args.no_input:
        return
    where = f"./{args.name}"
    if not sys.stdin.isatty():
        raise TemplateError(
            f"kept {where}: no terminal to confirm --delete on; add --no-input to replace it "
            "without asking"
        )
    plural = "" if files == 1 else "s"
    try:
        answer = input(f"Delete {where} ({files} file{plural}) and create it again? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise TemplateError(f"kept {where}: nothing deleted (answer y to replace it)")


def _ci_toolchain(dest: Path) -> str | None:
    """The default PLUGIN_TOOLCHAIN of the CI pipelines written into `dest`, if any."""
    gitlab = dest / ".gitlab-ci.yml"
    github = dest / ".github" / "workflows" / "release.yml"
    if gitlab.is_file():
        for line in gitlab.read_text(encoding="utf-8").splitlines():
            key, _sep, value = line.strip().partition(":")
            if key == "PLUGIN_TOOLCHAIN":
                return str(json.loads(value))
    if github.is_file():
        found = re.search(r"PLUGIN_TOOLCHAIN \|\| '((?:[^']|'')*)'", github.read_text("utf-8"))
        if found:
            return found[1].replace("''", "'")
    return None


def _warn_about_ci(dest: Path) -> None:
    """Say when the CI pipelines of `dest` install the toolchain from a local path."""
    from toolchain.build import toolchain_source

    requirement = _ci_toolchain(dest)
    said = toolchain_source.warning(requirement) if requirement else None
    if said:
        print(f"WARNING: {dest.name}: {said}", file=sys.stderr)


def _answer(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UsageError(f"--set {item!r}: write it KEY=VALUE")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    """The `bootstrap_plugin.py` command line."""
    p = parser("bootstrap_plugin.py", "Create a plugin directory from a template.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("list", help="list the templates with a one-line description")
    s.add_argument("--json", action="store_true", help="a JSON array of objects")
    s.set_defaults(func=_list)
    s = sub.add_parser("create", help="render a template into ./NAME")
    s.add_argument("name", metavar="NAME", help="the plugin name (letters, digits, _ and -)")
    s.add_argument("--template", default="default", help="template to use (default: default)")
    s.add_argument("--no-input", action="store_true", help="take every default, ask nothing")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="answer a field (version, ci, port, ...): the default when asked, the value "
        "with --no-input; repeatable",
    )
    s.add_argument(
        "--delete",
        action="store_true",
        help="replace an existing ./NAME directory (asks first, unless --no-input)",
    )
    s.add_argument("--json", action="store_true", help="print the result as one JSON object")
    s.add_argument("--make", action="store_true", help="also build the virtualenv (make)")
    s.add_argument(
        "--install", action="store_true", help="also build and install it in development mode"
    )
    s.set_defaults(func=_create)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `bootstrap_plugin.py`."""
    p = build_parser()
    return execute(p, lambda args: args.func(args), argv)


if __name__ == "__main__":
    sys.exit(main())
