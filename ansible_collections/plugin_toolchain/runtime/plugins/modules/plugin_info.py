#!/usr/bin/python
# -*- coding: utf-8 -*-
"""plugin_toolchain.runtime.plugin_info: facts about a runtime's plugins, for drift reports."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: plugin_info
short_description: Facts about the plugins of a runtime
description:
  - Reads the host's C(plugins.list), C(plugins.info) and C(plugins.status) C(--json)
    reports. Changes nothing.
version_added: "0.1.0"
options:
  name:
    description: Only this plugin (an empty list when it is not installed).
    type: str
  health:
    description: Also run each plugin's health checks (C(plugins.status)).
    type: bool
    default: true
extends_documentation_fragment:
  - plugin_toolchain.runtime.runtime
"""

EXAMPLES = r"""
- name: What runs where
  plugin_toolchain.runtime.plugin_info:
    runtime_home: /srv/runtime
  register: found

- name: Hosts whose web plugin drifted
  ansible.builtin.debug:
    msg: "{{ found.plugins | selectattr('name', 'eq', 'web') | map(attribute='version') }}"
"""

RETURN = r"""
plugins:
  description: One entry per installed plugin.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Its name in the runtime., type: str}
    version: {description: Its version., type: str}
    release: {description: Its release., type: str}
    content_hash: {description: sha256 of its content, as provisioning compares it., type: str}
    devlinked: {description: Whether it links to a source directory., type: bool}
    health:
      description: ok, failing or none (null when I(health=false)).
      type: str
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.plugin_toolchain.runtime.plugins.module_utils.toolchain import (
    COMMON_OPTIONS,
    Toolchain,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str"),
            health=dict(type="bool", default=True),
            **COMMON_OPTIONS,
        ),
        supports_check_mode=True,
    )
    tc = Toolchain(module)
    wanted = module.params["name"]
    rows = [r for r in tc.report("plugins.list") if wanted is None or r["name"] == wanted]
    health = {}
    if module.params["health"] and rows:
        # exit status 1 while a check fails: the report on stdout says which
        rc, out, err = tc.run("plugins.status", "--json", *[r["name"] for r in rows])
        try:
            health = {r["plugin"]: r["health"]["state"] for r in json.loads(out)}
        except (ValueError, KeyError, TypeError):
            tc.fail("plugins.status", rc, err)
    plugins = []
    for row in rows:
        info = tc.report("plugins.info", row["name"])
        plugins.append(
            {
                "name": row["name"],
                "version": row["version"],
                "release": row["release"],
                "content_hash": info.get("content_hash"),
                "devlinked": row.get("dev_link") is not None,
                "health": health.get(row["name"]),
            }
        )
    module.exit_json(changed=False, plugins=plugins)


if __name__ == "__main__":
    main()
