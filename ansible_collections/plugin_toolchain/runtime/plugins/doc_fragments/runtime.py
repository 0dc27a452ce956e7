# -*- coding: utf-8 -*-
"""The options every module of the collection shares: which runtime, which toolchain."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  runtime_home:
    description: The runtime (C(PLUGIN_RUNTIME_HOME)); the toolchain's default when omitted.
    type: path
  toolchain_bin:
    description: Directory of the toolchain's commands, when they are not on the PATH.
    type: path
author:
  - plugin-toolchain maintainers (!UNKNOWN)
"""
