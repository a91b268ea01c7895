#!/usr/bin/env python3
"""A TCP proxy in front of Prometheus whose behaviour `scripts/reliability` switches.

Usage: fault-proxy.py LISTEN_PORT UPSTREAM_PORT MODE_FILE

MODE_FILE holds one word, read at each new connection:
  pass     forward bytes both ways
  slow     forward, but delay every upstream->client chunk by 2 s and send it 64 bytes at
           a time (a congested or overloaded path)
  garbage  answer every request with HTTP 200 and a body of junk (never contacts upstream)
"""
import asyncio
import os
import sys

LISTEN, UPSTREAM, MODE_FILE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
JUNK = b"\x00\xffnot json at all {\"status\":\"succ" + os.urandom(64)


def mode():
    try:
        with open(MODE_FILE) as f:
            return f.read().strip() or "pass"
    except OSError:
        return "pass"


async def pump(reader, writer, slow, started):
    """Copies reader to writer; ends (closing both ways) once the mode is not `started`,
    so pooled keep-alive connections do not outlive a switch."""
    try:
        while True:
            data = await reader.read(65536)
            if not data or mode() != started:
                break
            if slow:
                await asyncio.sleep(2.0)
                for i in range(0, len(data), 64):
                    writer.write(data[i:i + 64])
                    await writer.drain()
                    await asyncio.sleep(0.01)
            else:
                writer.write(data)
                await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def garbage(reader, writer):
    try:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(JUNK) + JUNK)
        await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def handle(reader, writer):
    m = mode()
    if m == "garbage":
        await garbage(reader, writer)
        return
    try:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", UPSTREAM)
    except OSError:
        writer.close()
        return
    await asyncio.gather(pump(reader, up_w, False, m), pump(up_r, writer, m == "slow", m))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    async with server:
        await server.serve_forever()


asyncio.run(main())
