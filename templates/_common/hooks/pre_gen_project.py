"""Refuse answers that would make a plugin the toolchain cannot release or install."""

import json
import re
import sys

from packaging.version import InvalidVersion, Version

from toolchain.core import settings
from toolchain.core.errors import InvalidName
from toolchain.core.names import check_name

ANSWERS = json.loads(r"""{{ cookiecutter | jsonify }}""")
NUMBERS = {"port": (1, 65535), "workers": (1, 256)}
NPM_NAME = re.compile(r"^(?:@[a-z0-9~-][a-z0-9._~-]*/)?[a-z0-9~-][a-z0-9._~-]*$")


def problems(answers: dict) -> list[str]:
    found = []
    try:
        check_name(answers["_name"])
    except InvalidName as exc:
        found.append(str(exc))
    try:
        Version(answers["version"])
    except InvalidVersion:
        found.append(f"version {answers['version']!r} is not a PEP 440 version (e.g. 1.0.2)")
    if not answers["release"].isdigit() or int(answers["release"]) < 1:
        found.append(f"release {answers['release']!r} is not a positive integer")
    for key in ("summary", "license", "maintainer", "vendor", "url"):
        if "\n" in answers[key]:
            found.append(f"{key} must fit on one line")
    if answers["url"] and not re.match(r"^https?://\S+$", answers["url"]):
        found.append(f"url {answers['url']!r} is not an http(s) URL")
    for key, (low, high) in NUMBERS.items():
        value = answers.get(key)
        if value is not None and not (value.isdigit() and low <= int(value) <= high):
            found.append(f"{key} {value!r} is not a whole number from {low} to {high}")
    if answers.get("_node") and not NPM_NAME.match(answers["_name"].lower()):
        found.append(f"{answers['_name']!r} cannot be an npm package name")
    return found


def main() -> int:
    found = problems(ANSWERS)
    report = settings.template_problems_file()
    if found and report:  # bootstrap_plugin.py says them in its own one-line error
        with open(report, "w", encoding="utf-8") as handle:
            handle.write("\n".join(found) + "\n")
    else:
        for problem in found:
            print(f"ERROR: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
