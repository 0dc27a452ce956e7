"""Where things are: the toolchain's data files, a plugin directory, the runtime tree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolchain.core import settings

_PACKAGE = Path(__file__).resolve().parent.parent  # the toolchain package


def data_dir() -> Path:
    """Directory holding `templates/` and `Makefile.plugin` (installed wheel or checkout)."""
    installed = _PACKAGE / "_data"
    if installed.is_dir():
        return installed
    return _PACKAGE.parent


def templates_dir() -> Path:
    """Directory of the cookiecutter templates."""
    return data_dir() / "templates"


def makefile_plugin() -> Path:
    """The `Makefile.plugin` that every plugin's Makefile includes."""
    return data_dir() / "Makefile.plugin"


# Paths inside a plugin directory, relative to it.
CONFIG_INI = "config.ini"
SOURCES = "python3_virtualenv_sources"
REQ_IN = f"{SOURCES}/requirements-to-freeze.txt"
REQ_OUT = f"{SOURCES}/requirements3.txt"
ALLOW_BINARY = f"{SOURCES}/allow_binary_packages"
VENV = "local"
VENV_STAMP = "local/.venv-stamp"
RELEASEIGNORE = ".releaseignore"
FORMAT_FILE = ".plugin_format_version"
POSTINSTALL = "postinstall"
CRONTAB = "crontab"
# Generated inside a `.plugin` file and kept in an installed plugin.
RELEASE_DIR = ".release"
METADATA = f"{RELEASE_DIR}/metadata.json"
MANIFEST = f"{RELEASE_DIR}/manifest.json"
# A signed release: the statement (name, version, digests of metadata and manifest) and
# its OpenSSH signature, after the manifest in the archive's head, in no manifest.
STATEMENT = f"{RELEASE_DIR}/statement"
SIGNATURE = f"{RELEASE_DIR}/statement.sig"
WHEELHOUSE = f"{RELEASE_DIR}/wheelhouse"
SBOM = f"{RELEASE_DIR}/sbom.cdx.json"  # CycloneDX: the release's Python and Node.js packages
NPM_CACHE = f"{RELEASE_DIR}/npm-cache"
# Written by the installer into an installed plugin; never taken from an archive.
INSTALL_RECORD = f"{RELEASE_DIR}/install.json"
# A signed release installed under another name keeps the metadata and manifest its
# signature covers here (the installed ones name it differently).
SIGNED_COPY = f"{RELEASE_DIR}/signed"
INSTALLER_OWNED = (INSTALL_RECORD, VENV, SIGNED_COPY)
ARTIFACT_SUFFIX = ".plugin"


@dataclass(frozen=True)
class PluginDir:
    """A plugin's source (or installed) directory."""

    root: Path

    def __truediv__(self, rel: str) -> Path:
        return self.root / rel

    @property
    def config(self) -> Path:
        return self.root / CONFIG_INI

    @property
    def req_in(self) -> Path:
        return self.root / REQ_IN

    @property
    def req_out(self) -> Path:
        return self.root / REQ_OUT

    @property
    def venv(self) -> Path:
        return self.root / VENV


def runtime_home() -> Path:
    """The runtime tree (`settings.runtime_home`) as a path."""
    return Path(settings.runtime_home())


def provisioning_dir() -> Path | None:
    """The read-only provisioning override directory, when `$PLUGIN_PROVISIONING_DIR` is set."""
    env = settings.provisioning_dir()
    return Path(env) if env else None


@dataclass(frozen=True)
class Runtime:
    """Paths of the runtime tree."""

    home: Path

    @classmethod
    def current(cls) -> Runtime:
        return cls(runtime_home())

    @property
    def plugins(self) -> Path:
        return self.home / "plugins"

    @property
    def overrides(self) -> Path:
        return self.home / "config" / "plugins"

    @property
    def logs(self) -> Path:
        return self.home / "log"

    @property
    def tmp(self) -> Path:
        return self.home / "tmp"

    @property
    def archive(self) -> Path:
        return self.home / "archive"

    @property
    def venvs(self) -> Path:
        return self.home / "venvs"

    @property
    def store(self) -> Path:
        """The wheel store: each wheel's library files once, hard-linked into venvs."""
        return self.home / "store"

    @property
    def allowed_signers(self) -> Path:
        """Who may sign what this runtime installs (OpenSSH allowed_signers format)."""
        return self.home / "config" / "allowed_signers"

    @property
    def revoked_keys(self) -> Path:
        """Public keys whose signatures are refused, one per line."""
        return self.home / "config" / "revoked_keys"

    @property
    def lock(self) -> Path:
        return self.home / "lock"

    @property
    def cache(self) -> Path:
        return self.home / "cache"

    def plugin(self, name: str) -> Path:
        return self.plugins / name

    def override(self, name: str) -> Path:
        return self.overrides / f"{name}.ini"
