"""The Ansible collection against ten hosts of this machine, with ansible-core from PyPI.

`ansible_collections/plugin_toolchain/runtime` is found with ANSIBLE_COLLECTIONS_PATH set to
the checkout; every host is `ansible_connection=local` with its own runtime and copy
directory, and the modules call this installation's operator commands. One play per step:
deploy v1 (all changed), again (none), check mode with v2 (all would change, none does), a
rolling upgrade to v2 (`serial: 3`) with one host's copy corrupt (that host fails with the
installer's message, the others complete) and again once the copy is mended (all at v2),
then `state: absent` everywhere; on two hosts,
the `provision` and `plugin_info` modules. The
modules' documentation (`ansible-doc`) and `ansible-galaxy collection build` are checked too.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.installer.test_dependencies import plugin
from tests.realworld.conftest import CHECKOUT, run
from tests.support.plugin_dirs import tool_env

ANSIBLE = "ansible-core==2.19.14"
HOSTS = [f"h{i:02d}" for i in range(1, 11)]
MODULES = ["plugin", "provision", "plugin_info"]


@pytest.fixture(scope="session")
def ansible_bin(cache_root: Path) -> Path:
    """A virtualenv with ansible-core from PyPI, kept in the download cache between runs."""
    venv = cache_root / f"venv-{ANSIBLE.replace('==', '-')}"
    # Another checkout's run may share the cache: one builds it, under a lock (a venv
    # cannot be built aside and moved, its scripts name their interpreter's path).
    with open(cache_root / ".ansible-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "bin" / "ansible-playbook").exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
            env = {k: v for k, v in os.environ.items()
                   if k not in ("PIP_NO_INDEX", "PIP_CONFIG_FILE")}  # fmt: skip
            env["PIP_CACHE_DIR"] = str(cache_root / "pip")
            done = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q",
                                   ANSIBLE], capture_output=True, text=True, env=env)  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
    return venv / "bin"


def _env(ansible_bin: Path) -> dict[str, str]:
    return tool_env(
        ANSIBLE_COLLECTIONS_PATH=str(CHECKOUT), ANSIBLE_STDOUT_CALLBACK="default",
        ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(ansible_bin.parent / "tmp"),
        ANSIBLE_PYTHON_INTERPRETER=str(ansible_bin / "python"),
    )  # fmt: skip


def _inventory(root: Path) -> Path:
    lines = ["[fleet]"]
    for host in HOSTS:
        lines.append(f"{host} ansible_connection=local "
                     f"plugin_toolchain_runtime_home={root / host / 'runtime'} "
                     f"plugin_toolchain_dest={root / host / 'files'}")  # fmt: skip
    lines += ["[fleet:vars]", f"plugin_toolchain_bin={Path(sys.executable).parent}"]
    path = root / "inventory.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


PLAY = """- hosts: fleet
  gather_facts: false
  serial: {serial}
  roles:
    - role: plugin_toolchain.runtime.deploy
      vars:
        plugin_toolchain_plugins: ["{{{{ host_plugin_file | default(plugin_file) }}}}"]
        plugin_toolchain_state: {state}
"""


def _play(ansible_bin: Path, root: Path, file: Path, *extra: str, state: str = "latest",
          serial: str = "0") -> dict[str, Any]:  # fmt: skip
    """Run the deploy role over the fleet: its exit status, PLAY RECAP and output."""
    playbook = root / "deploy.yml"
    playbook.write_text(PLAY.format(serial=serial, state=state))
    args = ["-e", json.dumps({"plugin_file": str(file)})]
    done = subprocess.run(
        [ansible_bin / "ansible-playbook", "-i", _inventory(root), "-f", "10", playbook,
         *args, *extra], capture_output=True, text=True, env=_env(ansible_bin), cwd=root,
    )  # fmt: skip
    stats = {}
    for line in done.stdout[done.stdout.rindex("PLAY RECAP") :].splitlines()[1:]:
        if ":" in line:
            host, _, counts = line.partition(":")
            stats[host.strip()] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return {"rc": done.returncode, "stats": stats, "out": done.stdout,
            "batches": done.stdout.count("PLAY [fleet]")}  # fmt: skip


PROVISION = """- hosts: h01,h02
  gather_facts: false
  vars:
    home: "{{{{ plugin_toolchain_runtime_home }}}}"
    bin: "{{{{ plugin_toolchain_bin }}}}"
  tasks:
    - plugin_toolchain.runtime.provision: {{path: {path}, runtime_home: "{{{{ home }}}}",
                                           toolchain_bin: "{{{{ bin }}}}"}}
      check_mode: true
      register: would
    - plugin_toolchain.runtime.provision: {{path: {path}, runtime_home: "{{{{ home }}}}",
                                           toolchain_bin: "{{{{ bin }}}}"}}
      register: first
    - plugin_toolchain.runtime.provision: {{path: {path}, runtime_home: "{{{{ home }}}}",
                                           toolchain_bin: "{{{{ bin }}}}"}}
      register: second
    - plugin_toolchain.runtime.plugin_info: {{runtime_home: "{{{{ home }}}}",
                                              toolchain_bin: "{{{{ bin }}}}"}}
      register: facts
    - ansible.builtin.assert:
        that:
          - would.changed and would.plugins[0].action == "install"
          - first.changed and not second.changed
          - second.plugins[0].action == "unchanged"
          - facts.plugins[0].name == "fleetweb" and facts.plugins[0].version == "2.0"
          - facts.plugins[0].health == "none" and facts.plugins[0].content_hash | length == 64
          - not facts.plugins[0].devlinked
"""


def _installed(root: Path) -> dict[str, str | None]:
    """Host -> the version of `fleetweb` in its runtime (None: not installed)."""
    found: dict[str, str | None] = {}
    for host in HOSTS:
        env = tool_env(PLUGIN_RUNTIME_HOME=str(root / host / "runtime"))
        listing = [Path(sys.executable).parent / "plugins.list", "--json"]
        exists = (root / host / "runtime").exists()
        rows = json.loads(run(listing, root, env).stdout) if exists else []
        found[host] = next((r["version"] for r in rows if r["name"] == "fleetweb"), None)
    return found


INSTALL_TASK = "TASK [plugin_toolchain.runtime.deploy : Install or upgrade the plugins]"


def _module(report: dict[str, Any]) -> dict[str, str]:
    """Host -> what the `plugin` module said (ok, changed, failed), from the play's output."""
    assert set(report["stats"]) == set(HOSTS), report["out"][-3000:]
    said: dict[str, str] = {}
    for section in report["out"].split(INSTALL_TASK)[1:]:
        for line in section.split("\nTASK [")[0].split("\nPLAY")[0].splitlines():
            found = re.match(r"(ok|changed|failed): \[(h\d\d)\]", line)
            if found:
                said[found.group(2)] = found.group(1)
    return said


def test_the_collection_deploys_upgrades_and_removes_across_ten_hosts(
    tmp_path: Path, online: Path, ansible_bin: Path
) -> None:
    files = {v: plugin(tmp_path / "releases" / v, "fleetweb", v) for v in ("1.0", "2.0", "3.0")}
    root = tmp_path / "fleet"
    root.mkdir()

    first = _play(ansible_bin, root, files["1.0"])
    assert first["rc"] == 0 and set(_module(first).values()) == {"changed"}, first["out"][-3000:]
    assert set(_installed(root).values()) == {"1.0"}
    again = _play(ansible_bin, root, files["1.0"])
    assert again["rc"] == 0 and set(_module(again).values()) == {"ok"}, again["out"][-3000:]
    assert all(stats["changed"] == 0 for stats in again["stats"].values())

    for host in HOSTS:  # on the hosts already: the module's own check mode decides
        shutil.copy(files["2.0"], root / host / "files")
    checked = _play(ansible_bin, root, files["2.0"], "--check", "--diff")
    assert checked["rc"] == 0 and set(_module(checked).values()) == {"changed"}
    assert checked["out"].count('"version": "2.0-1"') >= len(HOSTS)  # the diff's after
    assert set(_installed(root).values()) == {"1.0"}  # nothing installed

    corrupt = tmp_path / "corrupt" / files["2.0"].name
    corrupt.parent.mkdir()
    data = files["2.0"].read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])  # truncated on its way to h05
    (root / "host_vars").mkdir()
    (root / "host_vars" / "h05.yml").write_text(f"host_plugin_file: {corrupt}\n")
    rolling = _play(ansible_bin, root, files["2.0"], serial="3")
    (root / "host_vars" / "h05.yml").unlink()
    assert rolling["batches"] == 4  # of 3, 3, 3 and 1 hosts
    assert rolling["stats"]["h05"]["failed"] == 1, rolling["stats"]
    assert all(rolling["stats"][h]["failed"] == 0 for h in HOSTS if h != "h05")
    said = [line for line in rolling["out"].splitlines() if line.startswith("failed: [h05]")]
    assert len(said) == 1 and "corrupt or truncated archive" in said[0], rolling["out"][-3000:]
    versions = _installed(root)
    assert versions.pop("h05") == "1.0" and set(versions.values()) == {"2.0"}
    # The copy mended, the same rolling play again: h05 catches up, nobody else changes.
    mended = _play(ansible_bin, root, files["2.0"], serial="3")
    assert mended["rc"] == 0 and set(_installed(root).values()) == {"2.0"}
    assert {h for h, said in _module(mended).items() if said == "changed"} == {"h05"}

    gone = _play(ansible_bin, root, files["2.0"], state="absent")
    assert gone["rc"] == 0 and set(_installed(root).values()) == {None}

    # provision (check mode, then for real, then again) and plugin_info, on two hosts
    provisioning = tmp_path / "provisioning"
    provisioning.mkdir()
    shutil.copy(files["2.0"], provisioning)
    playbook = root / "provision.yml"
    playbook.write_text(PROVISION.format(path=provisioning))
    done = subprocess.run(
        [ansible_bin / "ansible-playbook", "-i", _inventory(root), playbook],
        capture_output=True, text=True, env=_env(ansible_bin), cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:]
    assert {h: v for h, v in _installed(root).items() if v} == {"h01": "2.0", "h02": "2.0"}


def test_every_module_is_documented_and_the_collection_builds(
    tmp_path: Path, online: Path, ansible_bin: Path
) -> None:
    env = _env(ansible_bin)
    for module in MODULES:
        doc = subprocess.run([ansible_bin / "ansible-doc", "--json",
                              f"plugin_toolchain.runtime.{module}"],
                             capture_output=True, text=True, env=env)  # fmt: skip
        assert doc.returncode == 0, doc.stderr
        assert json.loads(doc.stdout)[f"plugin_toolchain.runtime.{module}"]["doc"]["options"]
    source = CHECKOUT / "ansible_collections" / "plugin_toolchain" / "runtime"
    build = [ansible_bin / "ansible-galaxy", "collection", "build", source]
    build += ["--output-path", tmp_path]
    built = subprocess.run(build, capture_output=True, text=True, env=env)
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "plugin_toolchain-runtime-0.1.0.tar.gz").is_file()
