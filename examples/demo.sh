#!/usr/bin/env bash
# The main job on the built-in example: bootstrap the default template into a temporary
# folder, release it, install the .plugin file into a temporary runtime (offline), run it.
set -euo pipefail
work=$(mktemp -d "${TMPDIR:-/tmp}/plugin-demo.XXXXXX")
export PLUGIN_RUNTIME_HOME="$work/runtime"
cd "$work"
set -x
bootstrap_plugin.py create --no-input hello
make -C hello
make -C hello release
plugins.info hello/hello-*.plugin
PIP_NO_INDEX=1 plugins.install hello/hello-*.plugin
plugins.list
plugin_wrapper hello -- hello
PLUGIN_CONFIG_NAME=DEV plugin_wrapper hello -- hello
set +x
echo "demo ok: plugin source, artifact and runtime are in $work"
