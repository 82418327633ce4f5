"""``[diameter] tls_*`` settings: checked at load, files re-read when they change, a broken
replacement keeps the previous certificate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ocs.config import ConfigError, DiameterConfig, load_config
from ocs.diameter_tls import TlsConfigError, TlsContextSource, build_context, certificate_names
from ocs.logging_setup import make_logger
from tests.support.certs import authority


def test_tls_settings_are_checked_at_load(tmp_path: Path) -> None:
    def problems(**diameter: object) -> str:
        with pytest.raises(ConfigError) as caught:
            load_config(environ={}, overrides={"diameter": diameter})
        return str(caught.value)

    assert "needs tls_cert_file and tls_key_file" in problems(tls_listen_port=3869)
    assert "is not a TCP port" in problems(
        tls_listen_port=70000, tls_cert_file="c", tls_key_file="k"
    )
    assert "must differ from listen_port" in problems(
        tls_listen_port=3868, tls_cert_file="c", tls_key_file="k"
    )
    assert "need tls_listen_port" in problems(tls_ca_file="ca.pem")
    ok = load_config(
        environ={},
        overrides={
            "diameter": {"tls_listen_port": 3869, "tls_cert_file": "c", "tls_key_file": "k"}
        },
    )
    assert ok.diameter.tls_listen_port == 3869 and ok.diameter.listen_port == 3868


def test_unusable_files_name_the_file(tmp_path: Path) -> None:
    config = DiameterConfig(
        tls_listen_port=0, tls_cert_file=str(tmp_path / "none.crt"), tls_key_file="k"
    )
    with pytest.raises(TlsConfigError, match=r"none\.crt"):
        build_context(config)


def test_changed_files_are_reloaded_and_a_broken_one_keeps_the_previous(tmp_path: Path) -> None:
    ca = authority(tmp_path)
    first = ca.issue(tmp_path, "ocs.test.local", dns=("ocs.test.local",), file_stem="server")
    config = DiameterConfig(
        tls_listen_port=0,
        tls_cert_file=str(first.cert),
        tls_key_file=str(first.key),
        tls_ca_file=str(ca.cert),
    )
    source = TlsContextSource(config, make_logger("error"))
    original = source.current()
    assert source.current() is original and source.reloads == 0  # unchanged files: same context
    renewed = ca.issue(tmp_path, "ocs.test.local", dns=("ocs.test.local",), file_stem="renewed")
    os.replace(renewed.key, first.key)
    os.replace(renewed.cert, first.cert)
    reloaded = source.current()
    assert reloaded is not original and source.reloads == 1
    first.key.write_text("not a key\n")  # a half-written replacement
    assert source.current() is reloaded and source.reloads == 1


def test_certificate_names_prefer_subject_alt_names() -> None:
    san = {
        "subject": ((("commonName", "cn.example"),),),
        "subjectAltName": (("DNS", "a.example"), ("IP Address", "127.0.0.1"), ("DNS", "b.example")),
    }
    assert certificate_names(san) == ("a.example", "b.example")
    assert certificate_names({"subject": ((("commonName", "cn.example"),),)}) == ("cn.example",)
    assert certificate_names(None) == ()
