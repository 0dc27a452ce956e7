#!/usr/bin/python
# -*- coding: utf-8 -*-
"""plugin_toolchain.runtime.provision: a runtime made to match a directory of .plugin files."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: provision
short_description: Make a runtime's plugins match a directory of .plugin files
description:
  - Runs the host's C(plugins.provision PATH --json) - C(--dry-run) in check mode. Each
    plugin of I(path) is installed when absent, replaced when its content differs, left
    alone when identical; devlinked plugins and plugins not in I(path) are kept. All of it
    is one transaction, gated by the plugins' health checks.
version_added: "0.1.0"
options:
  path:
    description: A directory of C(.plugin) files on the target host.
    type: path
    required: true
extends_documentation_fragment:
  - plugin_toolchain.runtime.runtime
"""

EXAMPLES = r"""
- name: Provision a runtime from a directory copied to the host
  plugin_toolchain.runtime.provision:
    path: /srv/provisioning
    runtime_home: /srv/runtime
"""

RETURN = r"""
plugins:
  description: The decision for every plugin (C(name), C(action), C(detail)); C(action) is
    one of install, upgrade, unchanged, devlinked, kept.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.plugin_toolchain.runtime.plugins.module_utils.toolchain import (
    COMMON_OPTIONS,
    Toolchain,
)

CHANGES = ("install", "upgrade")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            **COMMON_OPTIONS,
        ),
        supports_check_mode=True,
    )
    tc = Toolchain(module)
    listed = tc.report("plugins.list")
    before = {row["name"]: f"{row['version']}-{row['release']}" for row in listed}
    args = (["--dry-run"] if module.check_mode else []) + [module.params["path"]]
    doc = tc.report("plugins.provision", *args)
    changing = [row for row in doc["plugins"] if row["action"] in CHANGES]
    result = {"changed": bool(changing), "plugins": doc["plugins"]}
    if changing and module._diff:
        names = sorted(row["name"] for row in changing)
        after = {row["name"]: row["detail"] for row in changing}
        result["diff"] = {
            "before": {n: before[n] for n in names if n in before},
            "after": after,
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
