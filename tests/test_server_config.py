"""ServerConfig: every field from flags, CORELOGIN_* variables or a TOML file, in that order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corelogin.server.config import ServerConfig


def test_every_field_comes_from_a_toml_file_by_its_name(tmp_path: Path) -> None:
    file = tmp_path / "corelogin.toml"
    file.write_text(
        'app_key = "from-file"\nport = 12000\nmin_password_length = 12\n'
        "hash_queue = 5\ninsecure_fast_hash = false\n"
    )
    config = ServerConfig.from_env({}, file=str(file))
    assert (config.app_key, config.port, config.min_password_length, config.hash_queue) == (
        "from-file",
        12000,
        12,
        5,
    )


def test_flags_win_over_the_environment_which_wins_over_the_file(tmp_path: Path) -> None:
    file = tmp_path / "corelogin.toml"
    file.write_text('app_key = "file"\nport = 1\nhost = "10.0.0.1"\nmin_password_length = 9\n')
    env = {"CORELOGIN_PORT": "2", "CORELOGIN_MIN_PASSWORD_LENGTH": "10", "CORELOGIN_KEY": "env"}
    config = ServerConfig.from_env(env, file=str(file), port=3)
    assert (config.port, config.min_password_length, config.host, config.app_key) == (
        3,
        10,
        "10.0.0.1",
        "env",
    )


@pytest.mark.parametrize(
    ("content", "env", "says"),
    [
        ('app_key = "k"\ncolour = "red"\n', {}, "unknown configuration keys: colour"),
        ('app_key = "k"\nport = \n', {}, "not valid TOML"),
        ('app_key = "k"\n', {"CORELOGIN_PORT": "ten"}, "CORELOGIN_PORT must be a int"),
        ('app_key = "k"\n', {"CORELOGIN_INSECURE_FAST_HASH": "maybe"}, "must be a bool"),
        ("port = 1\n", {}, "an app key is required"),
    ],
)
def test_bad_configuration_is_one_clear_line(
    tmp_path: Path, content: str, env: dict[str, str], says: str
) -> None:
    file = tmp_path / "corelogin.toml"
    file.write_text(content)
    with pytest.raises(ValueError, match=says) as caught:
        ServerConfig.from_env(env, file=str(file))
    assert "\n" not in str(caught.value)


def test_a_missing_configuration_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read the configuration file"):
        ServerConfig.from_env({"CORELOGIN_KEY": "k"}, file=str(tmp_path / "none.toml"))


@pytest.mark.parametrize(
    ("providers", "says"),
    [
        ({"face book": {"policy": "token"}}, "provider name"),
        ({"google": {"policy": "oidc"}}, "needs issuer, audiences"),
        ({"x": {"policy": "oidc", "issuer": "i", "audiences": ["a"]}}, "jwks_url or jwks_file"),
        ({"x": {"policy": "token", "signup": True}}, "signup works with"),
        ({"x": {"policy": "magic"}}, "policy must be one of"),
        ({"x": {"policy": "token", "colour": "red"}}, "unknown keys colour"),
        (
            {"x": {"policy": "introspect", "introspect_url": "u", "introspect_format": "facebook"}},
            "client_id and client_secret",
        ),
    ],
)
def test_a_provider_table_that_cannot_work_is_refused(providers: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        ServerConfig(app_key="k", providers=providers)
