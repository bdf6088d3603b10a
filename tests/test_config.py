from __future__ import annotations

from pathlib import Path

import pytest

from gas.config import (
    DiscriminatorSettings,
    GeneratorSettings,
    SettingsError,
    ValidatorSettings,
    env_var_name,
    load_settings,
    setting_sources,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAS_CACHE_DIR")
    s = load_settings(ValidatorSettings, env_file=False)
    assert s.cache_dir == Path("~/.cache/gas").expanduser()
    assert s.network == "dev" and s.netuid == 34
    assert s.callback_port == 10525


def test_cache_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAS_CACHE_DIR", str(tmp_path / "c"))
    assert load_settings(GeneratorSettings, env_file=False).cache_dir == tmp_path / "c"


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = write(tmp_path / ".env.validator", "GAS_CALLBACK_PORT=2000\nGAS_WALLET_NAME=fromfile\nGAS_EPOCH_LENGTH=7\n")
    monkeypatch.setenv("GAS_CALLBACK_PORT", "3000")
    monkeypatch.setenv("GAS_WALLET_NAME", "fromenv")
    s = load_settings(ValidatorSettings, env_file=env_file, overrides={"callback_port": 4000, "wallet_name": None})
    assert s.callback_port == 4000  # flag beats env and file
    assert s.wallet_name == "fromenv"  # env beats file; a None flag means "not given"
    assert s.epoch_length == 7  # file beats default
    src = setting_sources(s, env_file=env_file, overrides={"callback_port": 4000})
    assert src["callback_port"] == "flag"
    assert src["wallet_name"] == "env GAS_WALLET_NAME"
    assert src["epoch_length"] == "file .env.validator"
    assert src["log_level"] == "default"


def test_netuid_derived_from_network() -> None:
    assert load_settings(ValidatorSettings, env_file=False, overrides={"network": "test"}).netuid == 379
    assert load_settings(ValidatorSettings, env_file=False, overrides={"network": "finney"}).netuid == 34
    s = load_settings(ValidatorSettings, env_file=False, overrides={"network": "ws://127.0.0.1:9944", "netuid": 2})
    assert s.netuid == 2


def test_url_network_needs_netuid() -> None:
    with pytest.raises(SettingsError, match="GAS_NETUID"):
        load_settings(ValidatorSettings, env_file=False, overrides={"network": "wss://example.invalid:443"})


def test_errors_name_variable_field_and_value(tmp_path: Path) -> None:
    env_file = write(tmp_path / "bad.env", "GAS_CALLBACK_PORT=notaport\nGAS_NETWORK=mainnet\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(ValidatorSettings, env_file=env_file)
    msg = str(exc.value)
    assert "GAS_CALLBACK_PORT / callback_port" in msg and "'notaport'" in msg
    assert "GAS_NETWORK / network" in msg and "'mainnet'" in msg
    assert str(env_file) in msg


def test_out_of_range_port_is_rejected() -> None:
    with pytest.raises(SettingsError, match="callback_port"):
        load_settings(ValidatorSettings, env_file=False, overrides={"callback_port": 70000})


def test_missing_env_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(ValidatorSettings, env_file=tmp_path / "nope.env")


def test_role_env_file_found_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / ".env.gen_miner", "GAS_AXON_PORT=9999\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings(GeneratorSettings).axon_port == 9999
    monkeypatch.setenv("GAS_ENV_FILE", str(write(tmp_path / "other.env", "GAS_AXON_PORT=8888\n")))
    assert load_settings(GeneratorSettings).axon_port == 8888


def test_discriminator_store_defaults_under_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAS_CACHE_DIR", str(tmp_path))
    assert load_settings(DiscriminatorSettings, env_file=False).model_store == f"file://{tmp_path / 'models'}"
    with pytest.raises(SettingsError, match="model_store"):
        load_settings(DiscriminatorSettings, env_file=False, overrides={"model_store": "s3://bucket"})


def test_env_var_name_nested() -> None:
    assert env_var_name("cache_dir") == "GAS_CACHE_DIR"
    assert env_var_name("lanes", "burn") == "GAS_LANES__BURN"


def test_nested_reward_and_lane_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = write(tmp_path / ".env.validator", "GAS_REWARDS__IMAGE_WEIGHT=0.25\nGAS_LANES__BURN_UID=7\n")
    monkeypatch.setenv("GAS_REWARDS__VIDEO_WEIGHT", "0.75")
    s = load_settings(ValidatorSettings, env_file=env_file)
    assert (s.rewards.image_weight, s.rewards.video_weight) == (0.25, 0.75)
    assert s.lanes.burn_uid == 7 and s.lanes.image == 0.40
    assert setting_sources(s, env_file=env_file)["rewards"] == "env GAS_REWARDS"


def test_lane_shares_must_sum_to_one() -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(ValidatorSettings, env_file=False, overrides={"lanes": {"burn": 0.5}})
    assert "lanes" in str(exc.value)
