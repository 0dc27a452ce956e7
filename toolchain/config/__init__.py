"""`config.ini` and its override layers: the schema (`schema`) and reading, merging,
rendering and exporting values (`layers`). Imports only `core`."""
