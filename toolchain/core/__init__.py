"""The small core every other package stands on: errors, settings, paths, names, the
subprocess runner. It imports nothing of the toolchain outside itself."""
