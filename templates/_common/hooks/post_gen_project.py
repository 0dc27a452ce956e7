"""Keep the CI release pipelines that were asked for, drop the others."""

import shutil
from pathlib import Path

CHOICE = "{{ cookiecutter.ci }}"
PIPELINES = {
    "github": Path(".github"),
    "gitlab": Path(".gitlab-ci.yml"),
}


def main() -> None:
    wanted = {"github-and-gitlab": {"github", "gitlab"}}.get(CHOICE, {CHOICE})
    for kind, path in PIPELINES.items():
        if kind in wanted:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
