"""The operator's commands: plugins.install, uninstall, list, info, check, repackage,
rollback, provision."""

from __future__ import annotations

import json
import os
import sys

from toolchain.cli.command import (
    EXIT_FAILURE,
    change_row,
    error,
    execute,
    json_option,
    parser,
    print_json,
    warnings_to_stderr,
)
from toolchain.core.errors import UsageError

TYPE_CHECKING = False  # typing's, without importing typing
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any


def install_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugins.install`."""
    from pathlib import Path

    p = parser(
        "plugins.install",
        "Install .plugin files (all or nothing), offline, into $PLUGIN_RUNTIME_HOME.",
    )
    p.add_argument("files", nargs="*", type=Path, metavar="FILE.plugin")
    strategy = p.add_mutually_exclusive_group()
    strategy.add_argument(
        "--upgrade", action="store_true", help="replace an installed plugin only with a newer one"
    )
    strategy.add_argument(
        "--force", action="store_true", help="replace an installed plugin whatever its version"
    )
    p.add_argument("--new-name", metavar="NAME", help="install the file under another name")
    p.add_argument(
        "--devlink",
        metavar="DIR",
        type=Path,
        help="development mode: the runtime entry links to the plugin source DIR",
    )
    p.add_argument(
        "--repository",
        metavar="DIR",
        type=Path,
        help="a directory of .plugin files to take missing or too old dependencies from",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be installed, change nothing"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="would these install here? (signature, target, name, disk, dependencies, pins); "
        "exit 1 if not, change nothing",
    )
    json_option(p, "of what was installed (or would be, with --check or --dry-run)")

    def body(args: argparse.Namespace) -> int | None:
        from toolchain.core.layout import Runtime
        from toolchain.installer import install, lock

        warnings_to_stderr()
        if args.devlink is not None:
            if args.files or args.new_name or args.upgrade or args.repository or args.dry_run:
                raise UsageError(
                    "--devlink takes no FILE, --new-name, --upgrade, --repository nor --dry-run"
                )
            cfg = install.source_config(args.devlink)
            with lock.locked(Runtime.current()) as rt:
                name = install.devlink(rt, cfg, force=args.force)
            if args.json:
                source = str(args.devlink.absolute())
                devlinked = {"name": name, "action": "devlinked", "source": source}
                print_json({"command": "install", "changed": True, "plugins": [devlinked]})
            else:
                print(f"devlinked {name} -> {args.devlink.absolute()}")
            return None
        if not args.files:
            raise UsageError("give at least one .plugin file (or --devlink DIR)")
        install.check_arguments(args.files, args.new_name)
        Strategy = install.Strategy
        chosen = Strategy.FORCE if args.force else Strategy.UPGRADE if args.upgrade else None
        if args.check:
            from toolchain.cli.signed import preflight

            return preflight(args, chosen or Strategy.DEFAULT)
        if args.dry_run:
            with lock.locked(Runtime.current()) as rt:
                actions = install.plan(
                    rt, args.files, new_name=args.new_name, repository_dir=args.repository
                )
                problems = install.pin_conflicts(rt, actions, args.new_name)
            if args.json:
                would = [
                    {"name": a.candidate.name, "version": a.candidate.version,
                     "release": a.candidate.release, "action": a.kind.value,
                     "previous": a.previous and f"{a.previous.version}-{a.previous.release}"}
                    for a in actions
                ]  # fmt: skip
                report = {"command": "install", "dry_run": True, "changed": False}
                print_json({**report, "plugins": would, "pin_problems": problems})
                return None
            for action in actions:
                print(f"would {action}")
            for problem in problems:
                print(f"would refuse (pins; --force installs anyway): {problem}")
            return None
        with lock.locked(Runtime.current()) as rt:
            changes = install.install(
                rt,
                args.files,
                strategy=chosen or Strategy.DEFAULT,
                new_name=args.new_name,
                repository_dir=args.repository,
            )
        if args.json:
            plugins = [change_row(c) for c in changes]
            print_json({"command": "install", "changed": bool(changes), "plugins": plugins})
            return None
        for change in changes:
            print(change)
        return None

    return execute(p, body, argv, runtime_writer=True)


def uninstall_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugins.uninstall`."""
    p = parser("plugins.uninstall", "Remove an installed (or devlinked) plugin.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--clean", action="store_true", help="also remove the OP override file")
    p.add_argument(
        "--force", action="store_true", help="remove it even if other plugins require it"
    )
    json_option(p, "of what was removed")

    def body(args: argparse.Namespace) -> None:
        from toolchain.core.layout import Runtime
        from toolchain.installer import install, lock

        warnings_to_stderr()
        with lock.locked(Runtime.current()) as rt:
            linked = install.uninstall(rt, args.name, clean=args.clean, force=args.force)
        if args.json:
            gone = {"name": args.name, "action": "uninstalled", "devlinked": linked}
            print_json({"command": "uninstall", "changed": True, "plugins": [gone]})
            return
        print(f"uninstalled {args.name}" + (" (link only)" if linked else ""))

    return execute(p, body, argv, runtime_writer=True)


def _print_rows(rows: list[dict[str, str | None]], *, as_json: bool, raw: bool) -> None:
    if as_json:
        import json

        print(json.dumps(rows, indent=1))
        return
    fields = ("name", "version", "release", "home", "dev_link")
    lines = [[str(row[f] or "") for f in fields] for row in rows]
    if raw:
        for line in lines:
            print("\t".join(line).rstrip("\t"))
        return
    table = [[f.upper() for f in fields], *lines]
    widths = [max(len(r[i]) for r in table) for i in range(len(fields))]
    for line in table:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def list_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugins.list`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in ([], ["--json"], ["--raw"]):
        from toolchain.runtime.listing import rows

        found = rows()
        if found is not None:
            _print_rows(found, as_json=args == ["--json"], raw=args == ["--raw"])
            return 0
    p = parser("plugins.list", "List the installed plugins: name, version, release, home.")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="a JSON array of objects")
    form.add_argument("--raw", action="store_true", help="tab-separated lines, no header")

    def body(args: argparse.Namespace) -> None:
        from toolchain.core.layout import Runtime
        from toolchain.installer import lock
        from toolchain.runtime import registry

        warnings_to_stderr()
        with lock.reading(Runtime.current()) as rt:
            rows = [entry.as_dict() for entry in registry.installed(rt)]
        _print_rows(rows, as_json=args.json, raw=args.raw)

    return execute(p, body, argv, runtime_writer=True)


def _print_info(doc: dict[str, Any]) -> None:
    meta = doc.get("metadata", {})
    for key in ("name", "home", "dev_link", "file", "verified"):
        if doc.get(key):
            print(f"{key}: {doc[key]}")
    for key, value in meta.items():
        if key != "name":
            shown = ", ".join(value) if isinstance(value, list) else value
            print(f"{key}: {shown}")
    for key, value in doc.get("installed", {}).items():
        print(f"{key}: {value}")
    if "signature" in doc:
        from toolchain.cli.signed import signature_line

        print(f"signature: {signature_line(doc['signature'])}")
    files = doc.get("files", [])
    if files:
        print("files:")
    for row in files:
        if row["type"] == "file":
            print(f"  {row['mode']:>4} {row['size']:>10} {row['path']}")
        elif row["type"] == "symlink":
            print(f"  link {'':>10} {row['path']} -> {row['target']}")
        else:
            print(f"  dir  {'':>10} {row['path']}/")


def _is_file_argument(target: str) -> bool:
    from pathlib import Path

    return os.sep in target or target.endswith(".plugin") or Path(target).is_file()


def info_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugins.info`."""
    from pathlib import Path

    p = parser("plugins.info", "Metadata and file list of an installed plugin or a .plugin file.")
    p.add_argument("target", metavar="NAME|FILE")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--sbom", action="store_true", help="print its CycloneDX bill of materials")

    def body(args: argparse.Namespace) -> None:
        from toolchain.core.layout import Runtime
        from toolchain.installer import inspection, lock

        warnings_to_stderr()
        if args.sbom:
            sys.stdout.write(inspection.sbom(args.target, _is_file_argument(args.target)))
            return
        if _is_file_argument(args.target):
            doc = inspection.file_info(Path(args.target), Runtime.current())
        else:
            with lock.locked(Runtime.current()) as rt:
                doc = inspection.installed_info(rt, args.target)
        if args.json:
            print(json.dumps(doc, indent=1))
        else:
            _print_info(doc)

    return execute(p, body, argv, runtime_writer=True)


def check_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugins.check`."""
    p = parser(
        "plugins.check",
        "Verify an installed plugin's files against its artifact's hashes (exit 1 if any "
        "file is modified, missing or extra).",
    )
    p.add_argument("name", metavar="NAME")

    def body(args: argparse.Namespace) -> int:
        from toolchain.core.layout import Runtime
        from toolchain.installer import inspection, lock

        warnings_to_stderr()
        with lock.locked(Runtime.current()) as rt:
            report = inspection.check(rt, args.name)
        for label, paths in (
            ("modified", report.modified),
            ("missing", report.missing),
            ("extra", report.extra),
        ):
            for path in paths:
                print(f"{label}: {path}")
        if report.ok:
            print(f"{args.name}: ok")
            return 0
        error(
            f"plugin {args.name}: {len(report.modified)} modified, {len(report.missing)} "
            f"missing, {len(report.extra)} extra file(s); reinstall it with --force to repair"
        )
        return EXIT_FAILURE

    return execute(p, body, argv, runtime_writer=True)


def repackage_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugins.repackage`."""
    from pathlib import Path

    p = parser(
        "plugins.repackage",
        "Build a .plugin from an installed plugin, with its installed name and its "
        "effective configuration (overrides folded into config.ini).",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--output", type=Path, metavar="DIR", help="directory for the file (default: here)"
    )

    def body(args: argparse.Namespace) -> None:
        from toolchain.core.layout import Runtime
        from toolchain.installer import inspection, lock

        warnings_to_stderr()
        output = (args.output or Path.cwd()).absolute()
        with lock.locked(Runtime.current()) as rt:
            out = inspection.repackage(rt, args.name, output)
        print(out)

    return execute(p, body, argv, runtime_writer=True)


def rollback_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugins.rollback`."""
    p = parser(
        "plugins.rollback",
        "Cancel an upgrade: put the newest archived version of a plugin back in place "
        "(its virtualenv rebuilt offline, its override file kept).",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--force", action="store_true", help="even if installed plugins require a newer version"
    )
    json_option(p, "of the version put back")

    def body(args: argparse.Namespace) -> None:
        from toolchain.core.layout import Runtime
        from toolchain.installer import lock, rollback

        warnings_to_stderr()
        with lock.locked(Runtime.current()) as rt:
            change = rollback.rollback(rt, args.name, force=args.force)
        if args.json:
            back = [change_row(change, "rolled_back")]
            print_json({"command": "rollback", "changed": True, "plugins": back})
            return
        was = f" from {change.previous}" if change.previous else ""
        print(f"rolled back {change.name}{was} to {change.version}-{change.release}")

    return execute(p, body, argv, runtime_writer=True)


def provision_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugins.provision`."""
    from pathlib import Path

    p = parser(
        "plugins.provision",
        "Make the installed plugins match the .plugin files of DIR: install the new ones, "
        "replace those whose content differs, leave identical and devlinked ones alone.",
    )
    p.add_argument("directory", metavar="DIR", type=Path)
    p.add_argument("--dry-run", action="store_true", help="print the decisions, change nothing")
    json_option(p, "of the decision for every plugin")

    def body(args: argparse.Namespace) -> None:
        from toolchain.core.layout import Runtime
        from toolchain.installer import lock, provision

        warnings_to_stderr()
        with lock.locked(Runtime.current()) as rt:
            decisions = provision.provision(rt, args.directory, dry_run=args.dry_run)
        if args.json:
            rows = [
                {"name": d.name, "action": d.action.value, "detail": d.detail} for d in decisions
            ]
            changed = any(d.changes for d in decisions) and not args.dry_run
            report = {"command": "provision", "dry_run": args.dry_run, "changed": changed}
            print_json({**report, "plugins": rows})
            return
        prefix = "would " if args.dry_run else ""
        for decision in decisions:
            print(f"{prefix if decision.changes else ''}{decision}")

    return execute(p, body, argv, runtime_writer=True)
