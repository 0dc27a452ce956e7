"""Case 9: deploying one plugin to ten hosts with Ansible (5 forks).

Ten `ansible_connection=local` hosts, each with its own runtime and copy directory, both
emptied before every run. Ours: the collection's `plugin_toolchain.runtime.deploy` role
(copy, then the `plugin` module: `plugins.info`, `plugins.list`, `plugins.install --check`,
`plugins.install --json`). Baseline: the play an operator writes by hand, `copy` then
`command: plugins.install FILE`. ansible-core comes from PyPI into bench/.cache once.
"""

from __future__ import annotations

import shutil
import sys
import venv
from pathlib import Path

from inputs import CACHE, HERE, _online_env, offline_env, sh, tool
from measure import Command, Row, compare

ANSIBLE = "ansible-core==2.19.14"
HOSTS = [f"h{i:02d}" for i in range(1, 11)]
PLAIN = """- hosts: fleet
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        src: "{{ plugin_file }}"
        dest: "{{ plugin_toolchain_dest }}/"
        mode: "0644"
    - ansible.builtin.command:
        argv: ["{{ plugin_toolchain_bin }}/plugins.install",
               "{{ plugin_toolchain_dest }}/{{ plugin_file | basename }}"]
      environment:
        PLUGIN_RUNTIME_HOME: "{{ plugin_toolchain_runtime_home }}"
"""
ROLE = """- hosts: fleet
  gather_facts: false
  roles:
    - role: plugin_toolchain.runtime.deploy
      vars:
        plugin_toolchain_plugins: ["{{ plugin_file }}"]
"""


def ansible_bin() -> Path:
    """bench/.cache/ansible: a virtualenv with ansible-core, installed from PyPI once."""
    root = CACHE / "ansible"
    if not (root / "bin" / "ansible-playbook").exists():
        shutil.rmtree(root, ignore_errors=True)
        venv.create(root, with_pip=True)
        sh([root / "bin" / "python", "-m", "pip", "install", "-q", ANSIBLE], env=_online_env())
    return root / "bin"


def deploy(reps: int, work: Path, artifact: Path) -> list[Row]:
    """Case 9, ours against the plain play, alternately, on emptied hosts."""
    ansible = ansible_bin()
    hosts = work / "hosts"
    lines = ["[fleet]"] + [
        f"{h} ansible_connection=local plugin_toolchain_runtime_home={hosts / h / 'runtime'} "
        f"plugin_toolchain_dest={hosts / h / 'files'}"
        for h in HOSTS
    ]
    lines += ["[fleet:vars]", f"plugin_toolchain_bin={tool('plugins.install').parent}"]
    inventory = work / "inventory.ini"
    inventory.write_text("\n".join(lines) + "\n")
    plays = {"role": work / "role.yml", "plain": work / "plain.yml"}
    plays["role"].write_text(ROLE)
    plays["plain"].write_text(PLAIN)
    env = offline_env(
        ANSIBLE_COLLECTIONS_PATH=str(HERE.parent),
        ANSIBLE_PYTHON_INTERPRETER=str(ansible / "python"),
        ANSIBLE_LOCAL_TEMP=str(work / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
    )

    def empty() -> None:
        shutil.rmtree(hosts, ignore_errors=True)

    def play(name: str) -> Command:
        argv = [ansible / "ansible-playbook", "-i", inventory, "-f", "5", plays[name]]
        argv += ["-e", f"plugin_file={artifact}"]
        return Command(f"ansible-playbook ({name})", argv, env, cwd=work, prepare=empty)

    row = Row(
        "9 deploy one plugin to 10 hosts, 5 forks",
        "role plugin_toolchain.runtime.deploy",
        "copy + command: plugins.install",
        "report",
        None,
    )
    compare(row, play("role"), play("plain"), reps)
    row.note = f"ansible-core {ANSIBLE.split('==')[1]}, python {sys.version.split()[0]}"
    return [row]
