"""config.ini: names, schema errors (one line naming file, section, key), variants, merge."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolchain.config import layers, schema
from toolchain.core.errors import ConfigError, InvalidName
from toolchain.core.names import check_name

VALID = "[general]\nname = hello\n_version = 1.0\n"


@pytest.mark.parametrize("name", ["a", "hello", "Hello_World-2", "x" * 64])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "1 to 64"),
        ("x" * 65, "1 to 64"),
        ("has space", "1 to 64"),
        ("dot.ted", "1 to 64"),
        ("plugin_x", "plugin_"),
        ("__x", "__"),
        ("base", "reserved"),
        ("config", "reserved"),
    ],
)
def test_invalid_names(name: str, why: str) -> None:
    with pytest.raises(InvalidName, match=why):
        check_name(name)


def _load(tmp_path: Path, text: str) -> layers.PluginConfig:
    path = tmp_path / "config.ini"
    path.write_text(text, encoding="utf-8")
    return layers.load(path)


def test_valid_config_defaults(tmp_path: Path) -> None:
    cfg = _load(tmp_path, VALID + "[custom]\nanything = goes\n")
    assert (cfg.name, cfg.version, cfg.release) == ("hello", "1.0", "1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[custom]\na = 1\n", "missing section [general]"),
        ("[general]\n_version = 1.0\n", "[general] missing required key 'name'"),
        ("[general]\nname = hello\n", "[general] missing required key '_version'"),
        (VALID.replace("1.0", "one.two"), "[general] _version: 'one.two' is not a valid PEP 440"),
        (VALID.replace("hello", "plugin_x"), "[general] name: invalid plugin name 'plugin_x'"),
        (VALID + "_release = zero\n", "[general] _release: 'zero' is not an integer"),
        (VALID + "_release = 0\n", "[general] _release: 0 is below the minimum 1"),
        (VALID + "colour = red\n", "[general] unknown key 'colour'"),
        (VALID + "[weird]\na = 1\n", "unknown section [weird]"),
        (VALID + "_requires = ok, bad name!\n", "[general] _requires: invalid plugin requirement"),
        (VALID + "[extra_daemon_web]\nnumprocesses = 2\n", "[extra_daemon_web] missing required"),
        (
            VALID + "[extra_daemon_web]\n_cmd_and_args = run\nnumprocesses = -1\n",
            "[extra_daemon_web] numprocesses: -1 is below the minimum 1",
        ),
        (VALID + "[extra_daemon_web]\n_cmd_and_args = run\nspeed = 2\n", "unknown key 'speed'"),
        ("[general\nname = x\n", "not a valid ini file"),
        (VALID + "name = twice\n", "not a valid ini file"),
    ],
)
def test_invalid_config_message(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "config.ini"))
    assert expected in message
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        layers.load(tmp_path / "config.ini")


def test_variants_inherit_and_later_layers_win() -> None:
    plugin = {"custom": {"a": "plain", "a[DEV]": "dev", "b": "plain", "c[PROD]": "prod"}}
    override = {"custom": {"b[DEV_JOHN]": "john"}}
    merged = layers.merge([plugin, override], "DEV_JOHN")
    assert merged["custom"] == {"a": "dev", "b": "john"}
    assert layers.merge([plugin, override], "")["custom"] == {"a": "plain", "b": "plain"}


def test_override_cannot_set_private_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[general\] _version: private keys"):
        schema.validate({"general": {"_version": "9"}}, "override.ini", override=True)


def test_jinja_values_and_export() -> None:
    merged = layers.merge([{"custom": {"path": "{{ HOME }}/data", "my-key": "x"}}])
    rendered = layers.render(merged, {"HOME": "/home/op"})
    assert layers.exported(rendered, "plugins") == {
        "PLUGINS_CURRENT_PLUGIN_CUSTOM_PATH": "/home/op/data",
        "PLUGINS_CURRENT_PLUGIN_CUSTOM_MY_KEY": "x",
    }
    with pytest.raises(ConfigError, match=r"\[custom\] path: cannot render"):
        layers.render(merged, {})


def test_requires_parsing() -> None:
    assert schema.parse_requires("other>=1.2,<2, third") == [("other", "<2,>=1.2"), ("third", "")]
