"""The operator's side that changes the runtime: staging, the journal and its recovery, the
lock, install, archive, rollback, provisioning, plugin dependencies, inspection. Imports
the shared layers and `running` (an install starts what it installs); never `build`."""
