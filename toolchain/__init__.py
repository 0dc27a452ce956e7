"""Bootstrap, release and install self-contained Python plugins."""

__version__ = "0.1.0"
