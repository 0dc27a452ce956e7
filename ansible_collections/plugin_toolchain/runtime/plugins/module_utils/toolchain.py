# -*- coding: utf-8 -*-
"""Running the host's operator commands (plugins.*) and reading their --json reports.

The modules never import the toolchain: the toolchain installed on the host acts, with its
own version, and a failure comes back as the command's one-line error.
"""

from __future__ import annotations

import json

# The options of every module (documented once, in doc_fragments/runtime.py).
COMMON_OPTIONS = {
    "runtime_home": {"type": "path"},
    "toolchain_bin": {"type": "path"},
}


class Toolchain:
    """The operator commands of one host, for one runtime (`runtime_home`)."""

    def __init__(self, module):
        self.module = module
        self.bin = module.params.get("toolchain_bin")
        home = module.params.get("runtime_home")
        self.env = {"PLUGIN_RUNTIME_HOME": home} if home else {}
        self.env["NO_COLOR"] = "1"

    def _path(self, command):
        dirs = [self.bin] if self.bin else []
        return self.module.get_bin_path(command, required=True, opt_dirs=dirs)

    def run(self, command, *args):
        """(rc, stdout, stderr) of one command."""
        argv = [self._path(command), *[str(a) for a in args]]
        return self.module.run_command(argv, environ_update=self.env)

    def fail(self, command, rc, err, doc=None, **extra):
        errors = [line for line in err.splitlines() if line.startswith("ERROR: ")]
        msg = (doc or {}).get("error") or (errors[-1][7:] if errors else "")
        self.module.fail_json(
            msg=msg or f"{command} exited with status {rc}",
            details=(doc or {}).get("details", []),
            rc=rc,
            stderr=err,
            command=command,
            **extra,
        )

    def report(self, command, *args):
        """The --json report of a command that must succeed (else the module fails)."""
        rc, out, err = self.run(command, "--json", *args)
        try:
            doc = json.loads(out) if out.strip() else None
        except ValueError:
            doc = None
        if rc != 0 or not isinstance(doc, (dict, list)):
            self.fail(command, rc, err, doc if isinstance(doc, dict) else None)
        return doc

    def installed(self, name):
        """{name, version, release, content_hash, devlinked} of an installed plugin, or None."""
        listed = self.report("plugins.list")
        if not any(row.get("name") == name for row in listed):
            return None
        doc = self.report("plugins.info", name)
        meta = doc.get("metadata", {})
        return {
            "name": name,
            "version": f"{meta.get('version')}-{meta.get('release')}",
            # the file's, as installed (--new-name rewrites the tree's config.ini)
            "content_hash": doc.get("installed", {}).get("content_hash")
            or doc.get("content_hash"),
            "devlinked": bool(doc.get("dev_link")),
            "dev_link": doc.get("dev_link"),
        }

    def artifact(self, src):
        """{name, version, content_hash} of a .plugin file on the host."""
        doc = self.report("plugins.info", src)
        meta = doc.get("metadata", {})
        return {
            "name": doc.get("name"),
            "version": f"{meta.get('version')}-{meta.get('release')}",
            "content_hash": doc.get("content_hash"),
        }

    def preflight(self, *args):
        """`plugins.install --check --json ARGS`: (ok, the first refusal's check and detail)."""
        rc, out, err = self.run("plugins.install", "--check", "--json", *args)
        try:
            doc = json.loads(out)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or "error" in doc or "files" not in doc:
            # it could not check at all (a lock held, a usage error): its own error
            self.fail("plugins.install --check", rc, err, doc if isinstance(doc, dict) else None)
        checks = [c for f in doc.get("files", []) for c in f.get("checks", [])]
        checks += doc.get("checks", [])
        refused = [c for c in checks if not c.get("ok")]
        first = refused[0] if refused else {}
        return bool(doc.get("ok")), first.get("check"), first.get("detail")
