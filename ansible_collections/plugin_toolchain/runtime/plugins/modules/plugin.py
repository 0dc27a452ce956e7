#!/usr/bin/python
# -*- coding: utf-8 -*-
"""plugin_toolchain.runtime.plugin: one plugin of a runtime, installed, upgraded or removed."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: plugin
short_description: Install, upgrade or remove a plugin from a .plugin file
description:
  - Runs the host's own C(plugins.install), C(plugins.uninstall), C(plugins.info) and
    C(plugins.list) with their C(--json) reports, so the toolchain installed on the host is
    the one that acts.
  - Idempotent. With C(state=present), a plugin already installed under that name is left
    alone unless I(force) is set and its content differs. With C(state=latest), it is
    upgraded when I(src) is newer (version, then release), as C(plugins.install --upgrade)
    decides. C(state=absent) removes it.
  - An upgrade of a running plugin swaps its workers without downtime and is gated by its
    health checks; a new version that fails them is swapped back by the toolchain, and the
    task fails with the check's output.
  - Check mode changes nothing and reports what would change (the toolchain's
    C(plugins.install --check) decides whether it could install).
version_added: "0.1.0"
options:
  src:
    description: Path of a C(.plugin) file on the target host. Required unless I(state=absent).
    type: path
  name:
    description:
      - The plugin's name in the runtime. Defaults to the name in I(src) (or I(new_name)).
        A different name than I(src)'s needs I(new_name).
      - With I(state=absent) and no I(src), required.
    type: str
  state:
    description: What the plugin should be.
    type: str
    choices: [present, latest, absent]
    default: present
  force:
    description:
      - Replace an installed plugin whose content differs, whatever its version, or a
        devlinked one (left alone otherwise).
      - With I(state=absent), remove it even if other plugins require it.
    type: bool
    default: false
  new_name:
    description: Install I(src) under this name (C(plugins.install --new-name)).
    type: str
  repository:
    description: A directory of C(.plugin) files on the host to take missing dependencies from.
    type: path
  clean:
    description: With I(state=absent), also remove the plugin's override file.
    type: bool
    default: false
extends_documentation_fragment:
  - plugin_toolchain.runtime.runtime
"""

EXAMPLES = r"""
- name: Install or upgrade the web plugin
  plugin_toolchain.runtime.plugin:
    src: /srv/plugins/web-2.0.0-1.linux_x86_64.plugin
    state: latest
    runtime_home: /srv/runtime

- name: Remove it, override file included
  plugin_toolchain.runtime.plugin:
    name: web
    state: absent
    clean: true
    runtime_home: /srv/runtime
"""

RETURN = r"""
name:
  description: The plugin's name in the runtime.
  returned: always
  type: str
version_before:
  description: C(VERSION-RELEASE) installed before the task, null when none.
  returned: always
  type: str
version_after:
  description: C(VERSION-RELEASE) installed after the task (what would be, in check mode).
  returned: always
  type: str
plugins:
  description: The C(plugins) of the command's --json report (what it installed or removed).
  returned: when changed and not in check mode
  type: list
  elements: dict
msg:
  description: Why nothing changed, when that needs saying.
  returned: sometimes
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.plugin_toolchain.runtime.plugins.module_utils.toolchain import (
    COMMON_OPTIONS,
    Toolchain,
)


def _view(plugin):
    if plugin is None:
        return {}
    keys = ("name", "version", "content_hash", "devlinked")
    return {k: plugin[k] for k in keys if k in plugin}


def _absent(module, tc, name):
    p = module.params
    before = tc.installed(name)
    result = {"name": name, "version_before": before and before["version"]}
    changed = before is not None
    result.update(changed=changed, version_after=None)
    if changed and module._diff:
        result["diff"] = {"before": _view(before), "after": {}}
    if changed and not module.check_mode:
        args = [name] + (["--clean"] if p["clean"] else []) + (["--force"] if p["force"] else [])
        result["plugins"] = tc.report("plugins.uninstall", *args)["plugins"]
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path"),
            name=dict(type="str"),
            state=dict(type="str", choices=["present", "latest", "absent"], default="present"),
            force=dict(type="bool", default=False),
            new_name=dict(type="str"),
            repository=dict(type="path"),
            clean=dict(type="bool", default=False),
            **COMMON_OPTIONS,
        ),
        required_if=[("state", "present", ("src",)), ("state", "latest", ("src",))],
        required_one_of=[("src", "name")],
        supports_check_mode=True,
    )
    p = module.params
    tc = Toolchain(module)
    if p["state"] == "absent" and (p["new_name"] or p["name"]):
        _absent(module, tc, p["new_name"] or p["name"])
    if p["src"] and not os.path.exists(p["src"]):
        if not module.check_mode:
            module.fail_json(msg=f"{p['src']}: no such file on the host")
        # not copied yet (a copy task in check mode): it would be, then installed
        name = p["new_name"] or p["name"]
        before = tc.installed(name) if name else None
        module.exit_json(
            changed=True, name=name, version_before=before and before["version"],
            version_after=None, msg=f"{p['src']} is not on the host yet; it would be once copied",
        )  # fmt: skip
    artifact = tc.artifact(p["src"])
    if p["name"] and not p["new_name"] and p["name"] != artifact["name"]:
        module.fail_json(
            msg=f"{p['src']} holds plugin {artifact['name']}, not {p['name']}: set "
            f"new_name: {p['name']} to install it under that name"
        )
    name = p["new_name"] or artifact["name"]
    if p["state"] == "absent":
        _absent(module, tc, name)
    before = tc.installed(name)
    result = {"name": name, "version_before": before and before["version"]}

    args = [p["src"]]
    if p["new_name"]:
        args += ["--new-name", p["new_name"]]
    if p["repository"]:
        args += ["--repository", p["repository"]]
    strategy = []
    if before is None:
        pass
    elif before["devlinked"] and not p["force"]:
        msg = f"{name} is devlinked to {before['dev_link']}: left alone (force=true replaces it)"
        module.exit_json(changed=False, version_after=before["version"], msg=msg, **result)
    elif before["content_hash"] == artifact["content_hash"]:
        module.exit_json(changed=False, version_after=before["version"], **result)
    elif p["force"]:
        strategy = ["--force"]
    elif p["state"] == "latest":
        strategy = ["--upgrade"]
    else:
        msg = f"{name} {before['version']} is installed; state=latest or force=true replaces it"
        module.exit_json(changed=False, version_after=before["version"], msg=msg, **result)

    ok, check, detail = tc.preflight(*strategy, *args)
    if not ok and strategy == ["--upgrade"] and check == "name" and "is not newer" in detail:
        # the toolchain's own comparison: what is installed is as new or newer
        module.exit_json(changed=False, version_after=before["version"], msg=detail, **result)
    if not ok:
        module.fail_json(msg=f"{p['src']}: {check}: {detail}", **result)
    after = {**artifact, "name": name, "devlinked": False}
    result.update(changed=True, version_after=artifact["version"])
    if module._diff:
        result["diff"] = {"before": _view(before), "after": _view(after)}
    if not module.check_mode:
        result["plugins"] = tc.report("plugins.install", *strategy, *args)["plugins"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
