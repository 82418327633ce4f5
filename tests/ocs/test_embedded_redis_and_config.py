from __future__ import annotations

from pathlib import Path

import pytest
import redis

from ocs.config import ConfigError, load_config, parse_host_port
from ocs.embedded_redis import EmbeddedRedis, EmbeddedRedisError


def test_embedded_redis_sets_ledger_settings_and_survives_kill(
    private_redis: EmbeddedRedis,
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.config_get("appendfsync")["appendfsync"] == "always"
    client.set("k", "v")
    client.close()
    private_redis.kill()
    assert not private_redis.running
    private_redis.start()
    client = redis.Redis.from_url(private_redis.url)
    assert client.get("k") == b"v"  # replayed from the AOF after SIGKILL
    client.close()


def test_embedded_redis_rejects_unknown_fsync(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match="appendfsync"):
        EmbeddedRedis(tmp_path, appendfsync="sometimes")


def test_missing_binary_is_named(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match="apt-get install -y redis-server"):
        EmbeddedRedis(tmp_path, server_bin="no-such-redis-server").start()


def test_config_layers_file_env_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "ocs.toml"
    path.write_text('[diameter]\norigin_host = "file.example"\nlisten_port = 3999\n')
    config = load_config(
        path,
        environ={"OCS_DIAMETER_LISTEN_PORT": "4000", "OCS_SIP_ALLOWED_SOURCES": "127.0.0.1,::1"},
        overrides={"diameter": {"origin_realm": "cli.example"}},
    )
    assert config.diameter.origin_host == "file.example"
    assert config.diameter.listen_port == 4000
    assert config.diameter.origin_realm == "cli.example"
    assert config.sip.allowed_sources == ("127.0.0.1", "::1")


def test_ledger_limits_from_file_and_env(tmp_path: Path) -> None:
    path = tmp_path / "ocs.toml"
    path.write_text("[ledger]\nsessions_max = 4\nidempotency_ttl_s = 600\n")
    config = load_config(path, environ={"OCS_LEDGER_BUCKETS_MAX": "16"})
    assert config.ledger.limits() == {
        "idempotency_ttl_s": 600,
        "session_idle_s": 86400.0,
        "sessions_max": 4,
        "buckets_max": 16,
        "waiting_max": 256,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[diameter]\nbogus = 1\n", "bogus"),
        ("[diameter]\nlisten_port = 70000\n", "diameter.listen_port"),
        ('[redis]\nappendfsync = "sometimes"\n', "redis.appendfsync"),
        ("[ledger]\nsessions_max = 0\n", "ledger.sessions_max"),
        ("[charging]\nserver_request_poll_s = 0\n", "charging.server_request_poll_s"),
        ("[export]\nread_streams_max = 0\n", "export.read_streams_max"),
        ("[export]\nread_entries_max = -1\n", "export.read_entries_max"),
        ("[diameter\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "ocs.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ={})


def test_unknown_env_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="OCS_DIAMETER_NOPE"):
        load_config(None, environ={"OCS_DIAMETER_NOPE": "1"})


@pytest.mark.parametrize("text", ["nohost", ":80", "h:port", "h:99999"])
def test_host_port_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_host_port(text, "--diameter-listen")


def test_host_port_v6() -> None:
    assert parse_host_port("[::1]:3868", "x") == ("::1", 3868)


def test_relative_data_dir_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    server = EmbeddedRedis(Path("var/redis"))
    server.start()
    try:
        assert (tmp_path / "var/redis/redis.log").exists()
    finally:
        server.stop()
