"""Plugin templates: listing them and rendering one with cookiecutter."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from toolchain.errors import TemplateError
from toolchain.layout import templates_dir
from toolchain.names import check_name

DEFAULT_TEMPLATE = "default"


@dataclass(frozen=True)
class Template:
    """A cookiecutter template directory of the toolchain."""

    name: str
    path: Path
    description: str


def available(root: Path | None = None) -> list[Template]:
    """The templates, sorted by name; those whose name starts with `_` are hidden."""
    root = root or templates_dir()
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        spec = path / "cookiecutter.json"
        if path.name.startswith("_") or not spec.is_file():
            continue
        try:
            description = str(json.loads(spec.read_text(encoding="utf-8")).get("_description", ""))
        except ValueError:
            raise TemplateError(f"{spec}: not valid JSON; fix the template") from None
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


def render(template: Template, name: str, dest_parent: Path, *, no_input: bool) -> Path:
    """Render `template` as plugin `name` into `dest_parent/name`; return that directory."""
    check_name(name)
    dest = dest_parent / name
    if dest.exists() or dest.is_symlink():
        raise TemplateError(f"{dest} already exists: remove it or choose another name")
    from cookiecutter.exceptions import CookiecutterException
    from cookiecutter.main import cookiecutter

    try:
        out = cookiecutter(
            str(template.path),
            no_input=no_input,
            extra_context={"_name": name},
            output_dir=str(dest_parent),
            accept_hooks=True,
        )
    except CookiecutterException as exc:
        raise TemplateError(f"template {template.name!r}: {exc}") from None
    except (EOFError, KeyboardInterrupt):
        raise TemplateError(
            f"template {template.name!r}: input ended before every answer was given"
        ) from None
    return Path(out)
