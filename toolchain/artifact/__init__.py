"""The `.plugin` file format: its names and documents, the one writer (`pack`), the reader
(`read`) and the safe extraction of untrusted archives (`extract`). Imports only `core`;
an operator's machine loads the reader and `extract`, never the writer."""
