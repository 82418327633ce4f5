"""The lean RESP connection's command packing (hiredis in C) against the RESP spec."""

from __future__ import annotations

from balance.resp import pack_command


def test_pack_command_is_resp_array_of_bulk_strings() -> None:
    packed = pack_command([b"EVALSHA", "s\u00e9", 2, -1, b"", b"\x00\r\n"])
    assert packed == (
        b"*6\r\n$7\r\nEVALSHA\r\n$3\r\ns\xc3\xa9\r\n$1\r\n2\r\n$2\r\n-1\r\n$0\r\n\r\n"
        b"$3\r\n\x00\r\n\r\n"
    )
    assert pack_command(("PING",)) == b"*1\r\n$4\r\nPING\r\n"
