"""net9.aio, dial(2) for asyncio: conversations over one 9P connection
multiplexed by tag, StreamReader/StreamWriter methods, open_connection and
start_server, cancellation of a read, a listen and a connect (flushed,
nothing lost), many conversations at once, errors; then against Linux
peers (net9 serve in a network namespace: Python's http.server dialled,
curl calling a start_server)."""

import asyncio
import os
import threading

import pytest

pytest.importorskip("net9.stack", reason="net9.stack not built")
pytest.importorskip("pytest_asyncio", reason="pytest-asyncio not installed")

import net9.aio as aio  # noqa: E402
from net9.dial import AddrError, ServerUnreachable  # noqa: E402


@pytest.fixture(scope="module")
def served(served_module):
    return served_module           # one server for the module (conftest)


async def _connect(s):
    return await aio.Net.connect(s.addr, user="glenda")


async def _pair(net, port):
    """A connected pair over net: (client Conn, server Conn, Announcement)."""
    ann = await net.announce("tcp!*!%d" % port)
    lis = asyncio.ensure_future(ann.listen())
    c = await net.dial("tcp!127.0.0.1!%d" % port)
    call = await lis
    return c, await call.accept(), ann


@pytest.mark.asyncio
async def test_stream_methods(served):
    threads = threading.active_count()
    async with await _connect(served) as net:
        c, sc, ann = await _pair(net, 8000)
        assert c.get_extra_info("peername") == ("127.0.0.1", 8000)
        (la, lp), (ra, rp) = await c.addresses()
        assert (la, ra, rp) == ("127.0.0.1", "127.0.0.1", 8000)
        assert c.get_extra_info("sockname") == (la, lp)
        assert (await c.status()).startswith("Established")
        c.write(b"one\ntwo\nthree:four")
        c.writelines([b"|five", b"\n"])
        await c.drain()
        assert await sc.readline() == b"one\n"
        assert await sc.readexactly(4) == b"two\n"
        assert await sc.readuntil(b":") == b"three:"
        assert [ln async for ln in _take(sc, 1)] == [b"four|five\n"]
        big = os.urandom(300 * 1024)                 # several Twrites and Treads
        c.write(big)
        await c.drain()
        assert await sc.readexactly(len(big)) == big
        c.write(b"tail")
        assert not c.can_write_eof()
        c.close()
        assert c.is_closing()
        await c.wait_closed()
        assert await sc.read() == b"tail"            # read(-1): to end of file
        assert sc.at_eof() and await sc.read(10) == b""
        with pytest.raises(asyncio.IncompleteReadError):
            await sc.readexactly(1)
        sc.close()
        await sc.wait_closed()
        ann.close()
    assert threading.active_count() == threads       # no thread of ours


async def _take(conn, n):
    async for ln in conn:
        yield ln
        n -= 1
        if n == 0:
            return


@pytest.mark.asyncio
async def test_cancelled_read_is_flushed_and_loses_nothing(served):
    async with await _connect(served) as net:
        c, sc, ann = await _pair(net, 8001)
        got = b""
        cancelled = 0
        for i in range(20):
            t = asyncio.ensure_future(sc.read(100))
            await asyncio.sleep(0)                   # its Tread is out
            await asyncio.sleep(0)
            t.cancel()
            try:
                got += await t                       # it had come: fine too
            except asyncio.CancelledError:
                cancelled += 1
            c.write(b"msg %d;" % i)
            await c.drain()
        assert cancelled > 0
        want = b"".join(b"msg %d;" % i for i in range(20))
        while len(got) < len(want):
            got += await sc.read(1000)
        assert got == want
        # a read timed out by wait_for: the same
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(sc.readline(), 0.05)
        c.write(b"late\n")
        assert await sc.readline() == b"late\n"
        for x in (c, sc):
            await x.aclose()
        ann.close()


@pytest.mark.asyncio
async def test_cancelled_listen_keeps_the_call(served):
    async with await _connect(served) as net:
        ann = await net.announce("tcp!*!8002")
        for _ in range(5):
            t = asyncio.ensure_future(ann.listen())
            await asyncio.sleep(0.01)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
        c = await net.dial("tcp!127.0.0.1!8002")
        call = await asyncio.wait_for(aio.listen(ann), 20)
        sc = await aio.accept(call)
        c.write(b"x")
        assert await sc.read(1) == b"x"
        # a listen cancelled while calls come: every call is listened to
        conns = [await net.dial("tcp!127.0.0.1!8002") for _ in range(3)]
        got = []
        while len(got) < 3:
            t = asyncio.ensure_future(ann.listen())
            done, _ = await asyncio.wait([t], timeout=0.001)
            if not done:
                t.cancel()
                try:
                    got.append(await t)
                except asyncio.CancelledError:
                    pass
            else:
                got.append(t.result())
        assert len({x.number for x in got}) == 3
        for x in got:
            await x.reject("no")
        for x in conns + [c, sc]:
            await x.aclose()
        ann.close()


@pytest.mark.asyncio
async def test_cancelled_dial_frees_the_conversation(served):
    async with await _connect(served) as net:
        before = {n for n, _, d in await net.ls("tcp") if d}
        with pytest.raises(TimeoutError):
            await net.dial("tcp!10.77.0.1!80", timeout=0.2)     # the black hole
        t = asyncio.ensure_future(aio.dial("tcp!10.77.0.1!80", net=net))
        await asyncio.sleep(0.1)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        for _ in range(100):
            now = {n for n, _, d in await net.ls("tcp") if d}
            left = [n for n in now - before
                    if not (await net.cat("tcp/%s/status" % n)).startswith("Closed")]
            if not left:
                break
            await asyncio.sleep(0.05)
        assert left == []


@pytest.mark.asyncio
async def test_errors(served):
    async with await _connect(served) as net:
        with pytest.raises(ConnectionRefusedError) as e:
            await net.dial("tcp!127.0.0.1!1")
        assert e.value.strerror == "connection refused"
        with pytest.raises(AddrError):
            await net.dial("tcp!127.0.0.1")
        ann = await net.announce("tcp!*!8003")
        with pytest.raises(OSError) as e:
            await net.announce("tcp!*!8003")
        assert e.value.strerror == "address in use"
        lis = asyncio.ensure_future(ann.listen())
        await asyncio.sleep(0.05)
        await ann.hangup()
        with pytest.raises(OSError) as e:
            await lis
        assert e.value.strerror == "listen hungup"
        ann.close()
    with pytest.raises(ServerUnreachable):
        await aio.dial("tcp!127.0.0.1!80", srv="unix!/nonexistent/net9")


@pytest.mark.asyncio
async def test_many_conversations_on_one_connection(served):
    """100 conversations alive at once, 20 KB echoed by each, all through
    one shared 9P connection (the module functions'), by tag."""
    gate = asyncio.Semaphore(8)         # calls not yet accepted: devip keeps 10

    async def echo(reader, writer):
        gate.release()
        while True:
            d = await reader.read(65536)
            if not d:
                break
            writer.write(d)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
    srv = await aio.start_server(echo, "tcp!*!8004", srv=served.addr, user="glenda")
    assert srv.is_serving()
    opened = []
    go = asyncio.Event()

    async def client(i):
        await gate.acquire()            # released by the accept
        r, w = await aio.open_connection("tcp!127.0.0.1!8004", srv=served.addr,
                                         user="glenda")
        opened.append(w)
        if len(opened) == 100:
            go.set()
        await go.wait()                 # all 100 are open now
        msg = (b"%03d" % i) * 7000
        w.write(msg)
        await w.drain()
        got = await r.readexactly(len(msg))
        w.close()
        await w.wait_closed()
        return got == msg
    results = await asyncio.wait_for(asyncio.gather(*[client(i) for i in range(100)]), 120)
    assert all(results)
    assert len({id(w.net.cl) for w in opened}) == 1 and len(aio._shared) == 1
    srv.close()
    await srv.wait_closed()
    for _ in range(100):
        if not aio._shared:
            break
        await asyncio.sleep(0.05)
    assert aio._shared == {}            # closed with its last conversation


# ---- against Linux --------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("addr", ["tcp!10.9.0.1!8080", "tcp!fd09::1!http-alt"])
async def test_fetch_from_linux(linuxhttp, addr):
    ns, srv = linuxhttp
    for _ in range(100):
        try:
            r, w = await aio.open_connection(addr, srv=srv)
            break
        except ConnectionRefusedError:
            await asyncio.sleep(0.1)             # http.server not up yet
    w.write(b"GET /index.html HTTP/1.0\r\n\r\n")
    await w.drain()
    assert (await r.readline()).startswith(b"HTTP/1.0 200 ")
    page = await r.read()
    assert page.endswith(b"\r\n\r\nhello from linux\n")
    w.close()
    await w.wait_closed()


@pytest.mark.asyncio
async def test_linux_calls_a_start_server(linuxhttp):
    ns, srv = linuxhttp
    seen = []

    async def hello(reader, writer):
        req = await reader.readline()
        seen.append(req)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nhello from net9.aio\n")
        await writer.drain()
        writer.close()
    server = await aio.start_server(hello, "tcp!*!8090", srv=srv)
    loop = asyncio.get_running_loop()
    try:
        outs = await asyncio.gather(*[loop.run_in_executor(
            None, lambda: ns.run("curl", "-s", "-m", "20", "http://10.9.0.2:8090/x"))
            for _ in range(5)])
        for r in outs:
            assert r.returncode == 0 and r.stdout == "hello from net9.aio\n", r.stderr
        assert seen == [b"GET /x HTTP/1.1\r\n"] * 5
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_refused_by_linux(linuxhttp):
    ns, srv = linuxhttp
    with pytest.raises(ConnectionRefusedError):
        await aio.dial("tcp!10.9.0.1!9", srv=srv)
