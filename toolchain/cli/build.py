"""`plugin-build`: the steps `Makefile.plugin` runs in a plugin directory."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from toolchain.cli.command import EXIT_FAILURE, EXIT_OK, error, execute, parser
from toolchain.core.errors import UsageError, VenvError
from toolchain.core.layout import ALLOW_BINARY, CONFIG_INI, VENV_STAMP, PluginDir

TESTS = "tests"
REPOSITORY_HELP = (
    "a directory of .plugin files where required plugins that are not installed are "
    "found (default: $PLUGIN_REPOSITORY)"
)


def _emit(args: argparse.Namespace, label: str, path: Path | None, **extra: object) -> None:
    """One line `label: path`, or with --json one JSON object for the step."""
    if args.json:
        doc = {"step": args.step, "status": label, "path": str(path) if path else None}
        print(json.dumps({**doc, **extra}))
    elif path is not None:
        print(f"{label}: {path}")
    else:
        print(label)


def _plugin(args: argparse.Namespace) -> PluginDir:
    root = Path(args.directory).absolute()
    if not (root / CONFIG_INI).is_file():
        raise UsageError(f"{root}: no {CONFIG_INI} here; run me in a plugin directory")
    return PluginDir(root)


def _freeze(args: argparse.Namespace) -> int:
    from toolchain.build import constraints
    from toolchain.core.layout import Runtime

    plugin = _plugin(args)
    repository = Path(args.repository).absolute() if args.repository else None
    changed = constraints.freeze_with_plugins(
        plugin, Runtime.current(), force=args.force, repository=repository
    )
    _emit(args, "froze" if changed else "unchanged", plugin.req_out)
    return 0


def _venv(args: argparse.Namespace) -> int:
    from toolchain.localenv import venv

    plugin = _plugin(args)
    stamp = plugin.root / VENV_STAMP
    allow_binary = (plugin.root / ALLOW_BINARY).exists()
    want = venv.fingerprint(plugin.req_out, allow_binary)
    if not args.force and stamp.is_file() and stamp.read_text(encoding="utf-8") == want:
        stamp.touch()
        _emit(args, "unchanged", plugin.venv)
        return 0
    venv.build(plugin.venv, plugin.req_out, allow_binary=allow_binary)
    stamp.write_text(want, encoding="utf-8")
    _emit(args, "built", plugin.venv)
    return 0


def _wheelhouse(args: argparse.Namespace) -> int:
    from toolchain.build import wheelhouse

    _emit(args, "wheelhouse", wheelhouse.build_wheelhouse(_plugin(args)))
    return 0


def _release(args: argparse.Namespace) -> int:
    from toolchain.build import release

    output = Path(args.output).absolute() if args.output else None
    repository = Path(args.repository).absolute() if args.repository else None
    _emit(args, "released", release.release(_plugin(args), output, repository))
    return 0


def _artifact_name(args: argparse.Namespace) -> int:
    from toolchain.artifact import spec
    from toolchain.build import cross
    from toolchain.config import layers

    plugin = _plugin(args)
    cfg = layers.load(plugin.config)  # validated: name, PEP 440 version, release
    platform = cross.platform_of(cross.chosen(plugin, cfg.general))
    print(spec.artifact_name(cfg.name, cfg.version, cfg.release, platform))
    return 0


def _node(args: argparse.Namespace) -> int:
    from toolchain.localenv import node

    plugin = _plugin(args)
    if not node.wanted(plugin.root):
        raise UsageError(f"{plugin.root / node.PACKAGE_JSON}: missing; nothing to install")
    _emit(args, "built", node.build(plugin.root))
    return 0


def _test(args: argparse.Namespace) -> int:
    from toolchain.config import layers
    from toolchain.core.layout import Runtime
    from toolchain.core.runner import run
    from toolchain.localenv.backend import venv_python
    from toolchain.runtime import plugin_env

    plugin = _plugin(args)
    if not (plugin.root / TESTS).is_dir():
        _emit(args, f"no {TESTS}/ directory: nothing to test", None)
        return 0
    python = venv_python(plugin.venv)
    if not python.exists():
        raise VenvError(f"{plugin.venv}: no virtualenv; run `make` first")
    name = layers.load(plugin.config).name
    env = plugin_env.variables(Runtime.current(), name, plugin.root)
    out = run(
        [python, "-m", "unittest", "discover", "-s", TESTS],
        cwd=plugin.root,
        env=env,
        what=f"plugin {name}: python -m unittest discover -s {TESTS}",
    )
    if args.json:
        _emit(args, "passed", plugin.root / TESTS, output=out)
    else:
        print(out, end="")
    return 0


def _check(args: argparse.Namespace) -> int:
    from toolchain.running import validate

    plugin = _plugin(args)  # a usage error when there is no config.ini
    report = validate.check(Path(args.directory))  # problems name paths as -C gave them
    if args.json:
        status = "ok" if report.ok else "failed"
        doc = {"step": args.step, "status": status, "path": str(plugin.root)}
        print(json.dumps({**doc, **report.as_dict()}))
    elif report.ok:
        print(f"ok: {report.summary()}")
    for problem in report.problems:
        print(problem, file=sys.stderr)
    if report.ok:
        return EXIT_OK
    count = f"{len(report.problems)} problem{'s' if len(report.problems) > 1 else ''}"
    error(f"plugin {report.name}: {count} in {plugin.root}; fix them and check again")
    return EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    """The `plugin-build` command line."""
    p = parser("plugin-build", "Build steps of a plugin directory (run by its Makefile).")
    p.add_argument("-C", "--directory", default=".", help="the plugin directory (default: .)")
    p.add_argument("--json", action="store_true", help="print one JSON object per step")
    sub = p.add_subparsers(dest="step", required=True)
    s = sub.add_parser("freeze", help="pin requirements-to-freeze.txt into requirements3.txt")
    s.add_argument("--force", action="store_true", help="re-resolve even if the input is unchanged")
    s.add_argument("--repository", metavar="DIR", help=REPOSITORY_HELP)
    s.set_defaults(func=_freeze)
    s = sub.add_parser("venv", help="(re)build the virtualenv in local/ when the pins changed")
    s.add_argument("--force", action="store_true", help="rebuild even if nothing changed")
    s.set_defaults(func=_venv)
    s = sub.add_parser("wheelhouse", help="download or build one wheel per pin")
    s.set_defaults(func=_wheelhouse)
    s = sub.add_parser("release", help="build the .plugin file")
    s.add_argument("--output", help="artifact path (default: NAME-VERSION-RELEASE.PLATFORM.plugin)")
    s.add_argument("--repository", metavar="DIR", help=REPOSITORY_HELP)
    s.set_defaults(func=_release)
    s = sub.add_parser(
        "artifact-name", help="print NAME-VERSION-RELEASE.PLATFORM.plugin of config.ini"
    )
    s.set_defaults(func=_artifact_name)
    s = sub.add_parser("node", help="npm install node_sources/package.json into local/")
    s.set_defaults(func=_node)
    s = sub.add_parser("test", help="run tests/ (python -m unittest) in the plugin env")
    s.set_defaults(func=_test)
    s = sub.add_parser(
        "check",
        help="check config.ini, the daemons, the crontab, postinstall and healthcheck; "
        "build nothing",
    )
    s.set_defaults(func=_check)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `plugin-build`."""
    import logging

    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.WARNING)
    p = build_parser()
    return execute(p, lambda args: args.func(args), argv)


if __name__ == "__main__":
    sys.exit(main())
