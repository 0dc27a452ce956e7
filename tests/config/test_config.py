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
        ("[general\nname = x\n", "line 1: '[general' is not a [section] header"),
        (VALID + "name = twice\n", "line 4: [general] name is set twice"),
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


GOOD = "[general]\nname = hello\n_version = 1.0\n\n[custom]\nx = 1\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "missing section [general]: add it"),
        (GOOD.replace("[general]", "[General]").encode(), "there is [General]: section names"),
        (b"\xef\xbb\xbf" + GOOD.encode(), "line 1: starts with a UTF-8 byte order mark"),
        (GOOD.replace("x = 1", "x = \0").encode(), "line 6: holds a NUL byte"),
        (GOOD.replace("x = 1", "x = caf\xe9").encode("latin-1"), "line 6: not UTF-8 text"),
        (GOOD.replace("x = 1", "oops").encode(), "line 6: 'oops\\n' is neither a [section]"),
        (b"name = x\n" + GOOD.encode(), "line 1: 'name = x' stands before any [section]"),
        (GOOD.replace("x = 1", "x = 1\nx = 2").encode(), "line 7: [custom] x is set twice"),
        (GOOD.encode() + b"[custom]\n", "line 7: section [custom] appears twice"),
        (GOOD.replace("= hello", "= -h").encode(), "[general] name: invalid plugin name '-h'"),
        (
            GOOD.replace("1.0", "1" * 1_000_000).encode(),
            "[general] _version: '111111111111111111111111111111111111111111111111111111111111"
            "... (1000000 characters)' is too long",
        ),
        (GOOD.replace("1.0", "{{ -1 }}").encode(), "[general] _version: the plugin's metadata"),
        (GOOD.replace("= hello", "= {{ x }}").encode(), "[general] name: the plugin's metadata"),
        (GOOD.replace("1.0\n", "1.0\n_release = " + "9" * 5000 + "\n"), "_release: '999"),
    ],
)
def test_broken_config_is_one_line_naming_file_line_section_or_key(
    tmp_path: Path, data: bytes | str, expected: str
) -> None:
    path = tmp_path / "config.ini"
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    with pytest.raises(ConfigError) as exc:
        layers.load(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert expected in message, message
    assert len(message) < 400


@pytest.mark.parametrize(
    "value",
    [
        "{{ lipsum.__globals__['os'].system('touch ' ~ HOME ~ '/pwned') }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.system('touch ' ~ HOME ~ '/pwned') }}",
    ],
)
def test_values_render_in_a_sandbox(tmp_path: Path, value: str) -> None:
    merged = layers.merge([{"custom": {"evil": value}}])
    with pytest.raises(ConfigError, match=r"\[custom\] evil: cannot render"):
        layers.render(merged, {"HOME": str(tmp_path)})
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("daemon", ["a b", "x:y", "x/y", "d" * 65])
def test_daemon_names_the_process_manager_cannot_take_are_refused(
    tmp_path: Path, daemon: str
) -> None:
    text = VALID + f"[extra_daemon_{daemon}]\n_cmd_and_args = run\n"
    with pytest.raises(ConfigError, match="a daemon name is 1 to 64 letters"):
        _load(tmp_path, text)


def test_a_value_longer_than_an_environment_variable_may_be_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[custom\] big: 140000 characters, more than an env"):
        _load(tmp_path, VALID + "[custom]\nbig = " + "x" * 140_000 + "\n")
