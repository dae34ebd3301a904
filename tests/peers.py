#!/usr/bin/env python3
"""Traffic peers for the nat64 end-to-end tests and demo: real sockets, real bytes.

  tcp-sink PORT                 accept one connection, read to EOF, answer with sha256
  tcp-send HOST PORT NBYTES     send NBYTES random bytes, print "<sent-sha256> <peer-sha256>"
  udp-echo PORT                 echo every datagram back (IPv4 and IPv6)
  udp-ping HOST PORT COUNT      send COUNT numbered datagrams, print how many came back intact
  udp-recv PORT                 print "<length> <sha256>" of the first datagram received
  udp-send HOST PORT NBYTES     send one datagram of NBYTES random bytes, print "<length> <sha256>"
  udp-send-nodf HOST PORT NBYTES  the same with DF clear (IPv4: IP_PMTUDISC_DONT)
  udp-whoami PORT               answer every datagram with the address it came from
  udp-ask HOST PORT             send one datagram, print the answer (retries for 5 s)
  dns-aaaa SERVER NAME          ask SERVER for NAME's AAAA records, print one address a line
  udp-stream HOST PORT RATE SECS  send numbered datagrams at RATE a second for SECS seconds,
                                print how many were sent
  udp-count PORT IDLE           count numbered datagrams until IDLE seconds pass without one;
                                print JSON: received, distinct, missing (up to 20), bad, sources
  http-serve PORT DIR           HTTP/1.1 server (IPv4): files from DIR, /whoami answers with the
                                client's address
  http-many NAME PORT PATH SRC N  resolve NAME (the system resolver, AAAA), fetch PATH once from
                                each of the N addresses SRC, SRC+1, ... (bound as source), 32 at a
                                time; print "<source> <answer>" a line, fail if any fetch fails
  tcp-simopen LOCAL LPORT HOST PORT DELAY NAME  after DELAY seconds connect from LOCAL:LPORT to
                                HOST:PORT, which connects back at the same time (TCP simultaneous
                                open, no listener): send NAME, print what the other side sent
  tcp-refused HOST PORT TIMEOUT connect; print "refused SECONDS" (connection refused, e.g. by
                                ICMP Port Unreachable), "connected" or "timeout"
  ra-send IFACE PREFIX LIFETIME EVERY  send a router advertisement with a PREF64 option (RFC 8781:
                                PREFIX of length 96/64/56/48/40/32, LIFETIME seconds) to ff02::1 on
                                IFACE every EVERY seconds, and answer router solicitations
"""
import hashlib, ipaddress, os, socket, sys, threading, time


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


def read_all(c):
    """Everything the peer sends until it closes."""
    data = b""
    while True:
        b = c.recv(65536)
        if not b:
            return data
        data += b


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
    print(h.hexdigest(), read_all(c).decode())


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


def udp_send(host, port, n, df=True):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    if not df:
        # Linux IP_MTU_DISCOVER (10), IP_PMTUDISC_DONT (0): Python does not name them.
        s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10), 0)
    data = os.urandom(n)
    s.sendto(data, (host, port))
    print(len(data), hashlib.sha256(data).hexdigest())


def udp_roundtrip(host, port, n):
    """Sends one n-byte datagram to an echo server; prints the SHA-256 of what was
    sent and of what came back ("none" if nothing did within 3 s)."""
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.settimeout(3)
    data = os.urandom(n)
    s.sendto(data, (host, port))
    try:
        back, _ = s.recvfrom(65535)
        got = hashlib.sha256(back).hexdigest()
    except socket.timeout:
        got = "none"
    print(hashlib.sha256(data).hexdigest(), got)


def udp_whoami(port, with_port=False):
    """Answers each datagram with the sender's address (and port) as seen here."""
    s = listen(socket.SOCK_DGRAM, port)
    print("ready", flush=True)
    while True:
        _, peer = s.recvfrom(65535)
        addr = peer[0][7:] if peer[0].startswith("::ffff:") else peer[0]
        s.sendto((("%s:%d" % (addr, peer[1])) if with_port else addr).encode(), peer)


def udp_flow(host, port, secs, every):
    """One UDP flow (one socket, one source port) for `secs`: a datagram every `every`
    seconds, each answer noted. Prints the transport addresses the server saw, the
    datagrams sent and answered, and the longest time without an answer."""
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.setblocking(False)
    seen, sent, got = set(), 0, 0
    start = last = time.monotonic()
    gap = 0.0
    next_send = start
    while time.monotonic() - start < secs:
        now = time.monotonic()
        if now >= next_send:
            s.sendto(b"?", (host, port))
            sent += 1
            next_send += every
        try:
            seen.add(s.recv(100).decode())
            got += 1
            now = time.monotonic()
            gap = max(gap, now - last)
            last = now
        except BlockingIOError:
            time.sleep(0.005)
    gap = max(gap, time.monotonic() - last)
    for a in sorted(seen):
        print("seen", a)
    print("sent %d got %d gap %.2f" % (sent, got, gap), flush=True)


def udp_ask(host, port):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.settimeout(0.5)
    for _ in range(10):
        s.sendto(b"?", (host, port))
        try:
            print(s.recv(100).decode())
            return
        except socket.timeout:
            pass
    sys.exit("no answer")


def dns_aaaa(server, name):
    q = bytearray(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")
    for label in name.strip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00\x00\x1c\x00\x01"
    s = socket.socket(family(server), socket.SOCK_DGRAM)
    s.settimeout(1)
    s.sendto(bytes(q), (server, 53))
    m = s.recv(1500)
    at = len(q)
    for _ in range(int.from_bytes(m[6:8], "big")):
        while m[at] != 0 and m[at] & 0xC0 != 0xC0:
            at += 1 + m[at]
        at += 2 if m[at] & 0xC0 == 0xC0 else 1
        rtype, rdlen = int.from_bytes(m[at:at + 2], "big"), int.from_bytes(m[at + 8:at + 10], "big")
        if rtype == 28 and rdlen == 16:
            print(socket.inet_ntop(socket.AF_INET6, m[at + 10:at + 26]))
        at += 10 + rdlen


def payload(seq):
    head = seq.to_bytes(8, "big")
    return head + hashlib.sha256(head).digest()


def udp_stream(host, port, rate, secs):
    import time
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    start = time.monotonic()
    n = int(rate * secs)
    for seq in range(n):
        due = start + seq / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        s.sendto(payload(seq), (host, port))
    print(n, flush=True)


def udp_count(port, idle):
    import json
    s = listen(socket.SOCK_DGRAM, port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    print("ready", flush=True)
    seen, received, bad, sources = set(), 0, 0, set()
    s.settimeout(None)  # wait for the first datagram as long as it takes
    while True:
        try:
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            break
        s.settimeout(idle)
        received += 1
        sources.add(peer[0][7:] if peer[0].startswith("::ffff:") else peer[0])
        seq = int.from_bytes(data[:8], "big")
        if data != payload(seq):
            bad += 1
        else:
            seen.add(seq)
    top = max(seen) + 1 if seen else 0
    missing = [i for i in range(top) if i not in seen]
    print(json.dumps({"received": received, "distinct": len(seen), "top": top, "missing": missing[:20],
                      "missing_count": len(missing), "bad": bad, "sources": sorted(sources)}), flush=True)


def http_serve(port, root):
    import functools, http.server

    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path == "/whoami":
                body = self.client_address[0].encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                super().do_GET()

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer.allow_reuse_address = True
    srv = http.server.ThreadingHTTPServer(("0.0.0.0", port), functools.partial(Handler, directory=root))
    print("ready", flush=True)
    srv.serve_forever()


def http_get(src, addr, port, name, path):
    c = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    c.settimeout(20)
    c.bind((src, 0))
    c.connect((addr, port))
    c.sendall(f"GET {path} HTTP/1.0\r\nHost: {name}\r\n\r\n".encode())
    data = read_all(c)
    c.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n")[0]:
        raise OSError("bad answer: " + head[:60].decode(errors="replace"))
    return body.decode(errors="replace")


def http_many(name, port, path, first, n):
    addr = socket.getaddrinfo(name, port, socket.AF_INET6, socket.SOCK_STREAM)[0][4][0]
    base = ipaddress.IPv6Address(first)
    todo = [str(base + i) for i in range(n)]
    out, failed, lock = {}, [], threading.Lock()

    def work():
        while True:
            with lock:
                if not todo:
                    return
                src = todo.pop()
            try:
                got = http_get(src, addr, port, name, path)
                with lock:
                    out[src] = got
            except OSError as e:
                with lock:
                    failed.append(f"{src}: {e}")

    threads = [threading.Thread(target=work) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for src in sorted(out, key=ipaddress.IPv6Address):
        print(src, out[src])
    if failed:
        sys.exit(f"{len(failed)} of {n} fetches failed: " + "; ".join(failed[:5]))


def ra_send(iface, prefix, lifetime, every):
    net = ipaddress.IPv6Network(prefix)
    plc = {96: 0, 64: 1, 56: 2, 48: 3, 40: 4, 32: 5}[net.prefixlen]
    # RFC 4861 §4.2: type 134, hop limit 64, no flags, router lifetime 0 (not a
    # default router), reachable and retransmit timers 0; then the PREF64 option:
    # type 38, length 2 (16 bytes), scaled lifetime (8-second units) << 3 | PLC, and
    # the prefix's highest 96 bits. The kernel fills the ICMPv6 checksum.
    ra = bytes([134, 0, 0, 0, 64, 0, 0, 0]) + bytes(8)
    ra += bytes([38, 2]) + ((min(lifetime // 8, 8191) << 3) | plc).to_bytes(2, "big")
    ra += net.network_address.packed[:12]
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    idx = socket.if_nametoindex(iface)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
    s.settimeout(every)
    print("ready", flush=True)
    while True:
        s.sendto(ra, ("ff02::1", 0, 0, idx))
        try:
            while True:
                m = s.recv(1500)
                if m and m[0] == 133:  # a router solicitation: answer at once
                    break
        except socket.timeout:
            pass


def tcp_simopen(local, lport, host, port, delay, name):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((local, lport))
    time.sleep(delay)
    s.settimeout(20)
    s.connect((host, port))
    s.sendall(name.encode())
    s.shutdown(socket.SHUT_WR)
    print(read_all(s).decode(), flush=True)


def tcp_refused(host, port, timeout):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.settimeout(timeout)
    t = time.monotonic()
    try:
        s.connect((host, port))
        print("connected")
    except ConnectionRefusedError:
        print("refused %.1f" % (time.monotonic() - t))
    except socket.timeout:
        print("timeout")


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
elif cmd == "udp-send-nodf":
    udp_send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), df=False)
elif cmd == "udp-roundtrip":
    udp_roundtrip(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
elif cmd == "udp-whoami":
    udp_whoami(int(sys.argv[2]))
elif cmd == "udp-whoami-port":
    udp_whoami(int(sys.argv[2]), with_port=True)
elif cmd == "udp-flow":
    udp_flow(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
elif cmd == "udp-ask":
    udp_ask(sys.argv[2], int(sys.argv[3]))
elif cmd == "dns-aaaa":
    dns_aaaa(sys.argv[2], sys.argv[3])
elif cmd == "udp-stream":
    udp_stream(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
elif cmd == "udp-count":
    udp_count(int(sys.argv[2]), float(sys.argv[3]))
elif cmd == "http-serve":
    http_serve(int(sys.argv[2]), sys.argv[3])
elif cmd == "http-many":
    http_many(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]))
elif cmd == "tcp-simopen":
    tcp_simopen(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), float(sys.argv[6]), sys.argv[7])
elif cmd == "tcp-refused":
    tcp_refused(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
elif cmd == "ra-send":
    ra_send(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
else:
    sys.exit("unknown command " + cmd)
