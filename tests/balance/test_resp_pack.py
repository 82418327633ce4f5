"""The lean RESP connection's command packing (hiredis in C) against the RESP spec."""

from __future__ import annotations

import hiredis

from balance.resp import encoded_keys, fcall_head, pack_command, pack_fcall


def test_pack_command_is_resp_array_of_bulk_strings() -> None:
    packed = pack_command([b"EVALSHA", "s\u00e9", 2, -1, b"", b"\x00\r\n"])
    assert packed == (
        b"*6\r\n$7\r\nEVALSHA\r\n$3\r\ns\xc3\xa9\r\n$1\r\n2\r\n$2\r\n-1\r\n$0\r\n\r\n"
        b"$3\r\n\x00\r\n\r\n"
    )
    assert pack_command(("PING",)) == b"*1\r\n$4\r\nPING\r\n"


def test_pack_fcall_is_the_same_bytes_as_hiredis() -> None:
    """The hot path's own FCALL packing (kept head and keys) against hiredis' for the same
    command: short and long arguments (past the header table), str, int and empty ones."""
    keys = ["{t:acme:7}:op:s\u00e9ss;1:3", "{t:acme:7}:a:sub", "{t:acme:7}:exp", "{t:acme:7}:cdr"]
    for args in (
        [b"\x93\x01\x02", b"ctx" * 50],
        [b"x" * 4095, b"y" * 4096, b"z" * 70_000],
        [b"", "caf\u00e9", 12, -3],
    ):
        packed = pack_fcall(
            fcall_head("ocs_ccr", len(keys), len(args)), keys[0], encoded_keys(keys[1:]), args
        )
        assert packed == hiredis.pack_command(("FCALL", "ocs_ccr", len(keys), *keys, *args))
