import socket

import pytest

from iot.mqtt import _ReadAheadSocket


def test_read_ahead_socket_hands_out_buffered_bytes_then_reports_empty_and_eof():
    a, b = socket.socketpair()
    a.setblocking(False)
    wrapped = _ReadAheadSocket(a)
    b.sendall(b"\x30\x05hello\x30\x02hi")
    assert wrapped.recv(1) == b"\x30"  # one system call read all 11 bytes
    assert wrapped.pending() == 10
    assert wrapped.recv(1) == b"\x05"
    assert wrapped.recv(5) == b"hello"
    assert wrapped.recv(100) == b"\x30\x02hi"  # a short read, as recv may give
    assert wrapped.pending() == 0
    with pytest.raises(BlockingIOError):
        wrapped.recv(1)  # nothing buffered and nothing on the wire: paho's "try again"
    b.close()
    assert wrapped.recv(1) == b""  # end of stream stays visible to paho
    assert wrapped.fileno() == a.fileno()
    wrapped.close()
