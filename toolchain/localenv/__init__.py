"""The local environments of a plugin: its virtualenv and its `node_modules`, built by one
backend object (pip or uv, `backend`). Imports only `core`."""
