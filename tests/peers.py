#!/usr/bin/env python3
"""Traffic peers for the nat64 end-to-end tests and demo: real sockets, real bytes.

  tcp-sink PORT                 accept one connection, read to EOF, answer with sha256
  tcp-send HOST PORT NBYTES     send NBYTES random bytes, print "<sent-sha256> <peer-sha256>"
  udp-echo PORT                 echo every datagram back (IPv4 and IPv6)
  udp-ping HOST PORT COUNT      send COUNT numbered datagrams, print how many came back intact
  udp-recv PORT                 print "<length> <sha256>" of the first datagram received
  udp-send HOST PORT NBYTES     send one datagram of NBYTES random bytes, print "<length> <sha256>"
"""
import hashlib, os, socket, sys


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listen(kind, port):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("::", port))
    except OSError:  # host with IPv6 disabled
        s = socket.socket(socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
    return s


def tcp_sink(port):
    s = listen(socket.SOCK_STREAM, port)
    s.listen(1)
    print("ready", flush=True)
    c, _ = s.accept()
    h = hashlib.sha256()
    while True:
        b = c.recv(65536)
        if not b:
            break
        h.update(b)
    c.sendall(h.hexdigest().encode())
    c.close()


def tcp_send(host, port, n):
    c = socket.create_connection((host, port), timeout=30)
    h = hashlib.sha256()
    left = n
    while left:
        b = os.urandom(min(left, 65536))
        h.update(b)
        c.sendall(b)
        left -= len(b)
    c.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = c.recv(128)
        if not b:
            break
        got += b
    print(h.hexdigest(), got.decode())


def udp_echo(port):
    s = listen(socket.SOCK_DGRAM, port)
    print("ready", flush=True)
    while True:
        data, addr = s.recvfrom(65535)
        s.sendto(data, addr)


def udp_ping(host, port, count):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.settimeout(0.5)
    ok = 0
    for i in range(count):
        msg = ("nat64-%06d-" % i).encode() + os.urandom(32).hex().encode()
        for _ in range(3):
            s.sendto(msg, (host, port))
            try:
                data, _ = s.recvfrom(65535)
            except socket.timeout:
                continue
            if data == msg:
                ok += 1
                break
    print(ok)


def udp_recv(port):
    s = listen(socket.SOCK_DGRAM, port)
    print("ready", flush=True)
    data, _ = s.recvfrom(65535)
    print(len(data), hashlib.sha256(data).hexdigest(), flush=True)


def udp_send(host, port, n):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    data = os.urandom(n)
    s.sendto(data, (host, port))
    print(len(data), hashlib.sha256(data).hexdigest())


cmd = sys.argv[1]
if cmd == "tcp-sink":
    tcp_sink(int(sys.argv[2]))
elif cmd == "tcp-send":
    tcp_send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
elif cmd == "udp-echo":
    udp_echo(int(sys.argv[2]))
elif cmd == "udp-ping":
    udp_ping(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
elif cmd == "udp-recv":
    udp_recv(int(sys.argv[2]))
elif cmd == "udp-send":
    udp_send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
else:
    sys.exit("unknown command " + cmd)
