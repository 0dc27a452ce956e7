"""Bootstrap, release and install self-contained Python plugins."""

__version__ = "0.1.0"

# Bumped when the layout of a plugin directory or of a `.plugin` file changes.
FORMAT_VERSION = 1
