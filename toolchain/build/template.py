"""Plugin templates: listing them and rendering one with cookiecutter.

Files every template shares live once, in the hidden `_common` template. A template is
rendered from a merged tree: `_common` first, the chosen template copied over it (its
files win), and one `cookiecutter.json` whose fields are `_common`'s updated by the
template's. Shared Jinja fragments (`{% extends %}`, `{% import %}`) sit in the merged
tree's `templates/` directory, which cookiecutter puts on its loader path; they are not
rendered into the plugin. The hooks (`hooks/pre_gen_project.py`, `post_gen_project.py`)
come from `_common` too, unless a template brings its own.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.core import settings
from toolchain.core.errors import TemplateError, UsageError
from toolchain.core.layout import templates_dir
from toolchain.core.names import check_name

DEFAULT_TEMPLATE = "default"
# Answers `--set` may give that no prompt asks for: the pip requirement the CI pipelines
# install the toolchain from (by default, where this toolchain was installed from).
UNPROMPTED = {"toolchain": "_toolchain"}
COMMON_TEMPLATE = "_common"
SPEC_FILE = "cookiecutter.json"


@dataclass(frozen=True)
class Template:
    """A cookiecutter template directory of the toolchain."""

    name: str
    path: Path
    description: str


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise TemplateError(f"{path}: not valid JSON; fix the template") from None
    if not isinstance(spec, dict):
        raise TemplateError(f"{path}: not a JSON object; fix the template")
    return spec


def available(root: Path | None = None) -> list[Template]:
    """The templates, sorted by name; those whose name starts with `_` are hidden."""
    root = root or templates_dir()
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        spec = path / SPEC_FILE
        if path.name.startswith("_") or not spec.is_file():
            continue
        description = str(_read_spec(spec).get("_description", ""))
        found.append(Template(path.name, path, description))
    return found


def find(name: str, root: Path | None = None) -> Template:
    """The template called `name`, or TemplateError listing the known ones."""
    templates = available(root)
    for template in templates:
        if template.name == name:
            return template
    known = ", ".join(t.name for t in templates) or "none"
    raise TemplateError(f"unknown template {name!r}: choose one of {known}")


def fields(template: Template) -> list[str]:
    """The answers `template` asks for (its merged `cookiecutter.json`, private keys left out)."""
    spec: dict[str, Any] = {}
    common = template.path.parent / COMMON_TEMPLATE / SPEC_FILE
    if common.is_file():
        spec.update(_read_spec(common))
    spec.update(_read_spec(template.path / SPEC_FILE))
    public = [key for key in spec if not key.startswith("_")]
    return public + [answer for answer, key in UNPROMPTED.items() if key in spec]


def merge(template: Template, work: Path) -> Path:
    """Build in `work` the tree cookiecutter renders: `_common` overlaid with `template`."""
    common = template.path.parent / COMMON_TEMPLATE
    merged = work / template.name
    spec: dict[str, Any] = {}
    # Bytecode compiled when the toolchain was installed is no part of any template.
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")
    if common.is_dir():
        shutil.copytree(common, merged, symlinks=True, ignore=skip)
        if (common / SPEC_FILE).is_file():
            spec.update(_read_spec(common / SPEC_FILE))
    shutil.copytree(template.path, merged, symlinks=True, dirs_exist_ok=True, ignore=skip)
    spec.update(_read_spec(template.path / SPEC_FILE))
    (merged / SPEC_FILE).write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return merged


def check_answers(template: Template, answers: Mapping[str, str]) -> None:
    """UsageError when `answers` (`--set`) name a field `template` does not have."""
    unknown = sorted(set(answers) - set(fields(template)))
    if unknown:
        known = ", ".join(fields(template))
        raise UsageError(
            f"--set {', '.join(unknown)}: template {template.name!r} has no such field; "
            f"its fields are {known}"
        )


def render(
    template: Template,
    name: str,
    dest_parent: Path,
    *,
    no_input: bool,
    answers: Mapping[str, str] | None = None,
    replace: bool = False,
) -> Path:
    """Render `template` as plugin `name` into `dest_parent/name`; return that directory.

    `answers` preset fields (`ci`, `port`, ...): they become the defaults when prompting,
    the values with `no_input`. An existing `dest_parent/name` is an error, unless
    `replace`: then that directory (never a link nor a file) is replaced by the new one.

    The plugin is rendered in a hidden scratch directory beside its destination and
    renamed into place, so a failed rendering (a refused answer, a hook) leaves nothing
    behind and a replaced directory as it was. A replaced directory is renamed into the
    scratch directory, the new one renamed in, and the scratch directory then removed.
    """
    check_name(name)
    check_answers(template, answers or {})
    answers = {UNPROMPTED.get(key, key): value for key, value in (answers or {}).items()}
    if "toolchain" in fields(template) and "_toolchain" not in answers:
        from toolchain.build import toolchain_source

        answers["_toolchain"] = toolchain_source.requirement()
    dest = dest_parent / name
    if dest.exists() or dest.is_symlink():
        if not replace:
            raise TemplateError(f"{dest} already exists: remove it or choose another name")
        replaceable(dest)  # before anything is asked or rendered
    from cookiecutter.exceptions import CookiecutterException, FailedHookException
    from cookiecutter.main import cookiecutter

    # The hook prints its reasons itself; cookiecutter would add a traceback of its own.
    logging.getLogger("cookiecutter").addHandler(logging.NullHandler())

    dest_parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".rendering", dir=dest_parent))
    try:
        merged = merge(template, scratch / "template")
        out = scratch / "out"
        report = scratch / "problems.txt"
        os.environ[settings.TEMPLATE_PROBLEMS] = str(report)
        try:
            rendered = cookiecutter(
                str(merged),
                no_input=no_input,
                extra_context={**answers, "_name": name},
                output_dir=str(out),
                accept_hooks=True,
            )
        except FailedHookException:
            said = report.read_text(encoding="utf-8").split("\n") if report.is_file() else []
            why = "; ".join(p for p in said if p) or "an answer was refused (see above)"
            raise TemplateError(
                f"template {template.name!r}: {why}; run create again with valid answers"
            ) from None
        except CookiecutterException as exc:
            raise TemplateError(f"template {template.name!r}: {exc}") from None
        except (EOFError, KeyboardInterrupt):
            raise TemplateError(
                f"template {template.name!r}: input ended before every answer was given"
            ) from None
        finally:
            os.environ.pop(settings.TEMPLATE_PROBLEMS, None)
        _move_in(Path(rendered), dest, scratch / "replaced")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if scratch.exists():  # e.g. a read-only directory in a replaced tree
            logging.getLogger(__name__).warning(
                "%s: could not remove all of it; delete it yourself", scratch
            )
    return dest


def replaceable(dest: Path) -> int:
    """The number of files under `dest`, a directory `render(replace=True)` may replace;
    TemplateError when it is a symbolic link or not a directory (it is never replaced)."""
    if dest.is_symlink():
        raise TemplateError(
            f"{dest} is a symbolic link: only a real directory is replaced; remove the link "
            "or choose another name"
        )
    if not dest.is_dir():
        raise TemplateError(
            f"{dest} exists and is not a directory: it is not replaced; remove it or choose "
            "another name"
        )
    count = 0
    for top, dirs, files in os.walk(dest):  # links to directories are listed, not entered
        count += len(files) + sum(1 for d in dirs if os.path.islink(os.path.join(top, d)))
    return count


def _move_in(rendered: Path, dest: Path, aside: Path) -> None:
    """Rename `rendered` to `dest`; an existing `dest` is renamed to `aside` first (and
    removed with the scratch directory holding it), or back if the second rename fails."""
    replacing = dest.exists() or dest.is_symlink()
    if replacing:
        replaceable(dest)  # still a directory, as when it was counted
        try:
            dest.rename(aside)
        except OSError as exc:
            raise TemplateError(f"{dest}: cannot move it aside ({exc.strerror}); kept") from None
    try:
        rendered.rename(dest)
    except BaseException as exc:
        if replacing:
            aside.rename(dest)
        if isinstance(exc, OSError):
            said = "kept as it was" if replacing else "nothing created"
            raise TemplateError(
                f"{dest}: cannot rename the new plugin into place ({exc.strerror}); {said}"
            ) from None
        raise
