/**
 * The connection guard in front of `serve` (`lib/server/guard.ts`), over real loopback sockets:
 * head and body deadlines, one request per connection, 411/431/505, the connection cap (the oldest
 * unfinished head gives way to a newcomer; 503 when every slot carries a request), and the cap
 * derived from the file limit. The flood of 1,100 half-open sockets against a `serve` process
 * under a 512-descriptor limit is a fault-suite case (`tests/faults/_http.ts`).
 */

import { connectionCap, FD_RESERVE, type GuardOptions, serveGuarded } from "../lib/server/guard.ts";
import { assert, assertEquals, assertStringIncludes, testLog } from "./_spotify_test_util.ts";

async function start(limits: Partial<GuardOptions> = {}, handler?: GuardOptions["handler"]) {
  const { log, lines } = testLog();
  const server = await serveGuarded({
    hostname: "127.0.0.1",
    port: 0,
    log,
    handler: handler ?? (async (req) => {
      const body = req.body ? await req.text() : "";
      return new Response(`${req.method} ${new URL(req.url).pathname} ${body}`);
    }),
    ...limits,
  });
  return {
    server,
    lines,
    port: server.addr.port,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

const enc = new TextEncoder();

/** Sends raw bytes and reads until the server closes (or `ms` pass). */
async function raw(port: number, text: string, ms = 5_000): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(enc.encode(text));
  return await readAll(conn, ms);
}

async function readAll(conn: Deno.Conn, ms: number): Promise<string> {
  let out = "";
  const buf = new Uint8Array(4096);
  const timer = setTimeout(() => conn.close(), ms);
  try {
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      out += new TextDecoder().decode(buf.subarray(0, n));
    }
  } catch {
    out += "<closed by the test>";
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed */ }
  }
  return out;
}

Deno.test("guard: a request is served once and the connection closed (no idle keep-alive)", async () => {
  await using g = await start();
  const res = await fetch(`http://127.0.0.1:${g.port}/healthz`);
  assertEquals([res.status, await res.text()], [200, "GET /healthz "]);
  const two = await raw(
    g.port,
    "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
      "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  assertStringIncludes(two, "POST /a hello");
  assertStringIncludes(two.toLowerCase(), "connection: close");
  assert(!two.includes("GET /b"), "a pipelined second request is not served on the connection");
});

Deno.test("guard: a head that never ends gets 408 after the header deadline", async () => {
  await using g = await start({ headerTimeoutMs: 300 });
  const started = performance.now();
  const answer = await raw(g.port, "GET /runs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1");
  assertStringIncludes(answer, "HTTP/1.1 408 Request Timeout");
  assertStringIncludes(answer, '"error": "request_timeout"');
  assert(performance.now() - started < 3_000);
  assertEquals(g.server.active(), 0);
});

Deno.test("guard: a body that stops short is cut off at the body deadline; the handler never runs", async () => {
  let calls = 0;
  await using g = await start({ bodyTimeoutMs: 300 }, async (req) => {
    calls++;
    return new Response(await req.text());
  });
  const started = performance.now();
  const answer = await raw(
    g.port,
    "POST /run-top-tracks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + '{"date": "',
  );
  assert(!answer.includes("200 OK"), answer);
  assert(performance.now() - started < 3_000, "cut at the deadline");
  await new Promise((r) => setTimeout(r, 50));
  assertEquals(g.server.active(), 0);
  assertEquals(calls <= 1, true);
});

Deno.test("guard: chunked bodies get 411, oversized heads 431, HTTP/2 prior knowledge 505, garbage 400", async () => {
  await using g = await start({ maxHeaderBytes: 1024 });
  assertStringIncludes(
    await raw(g.port, "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "411 Length Required",
  );
  assertStringIncludes(
    await raw(g.port, `GET /x HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(2000)}\r\n\r\n`),
    "431 Request Header Fields Too Large",
  );
  assertStringIncludes(
    await raw(g.port, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    "505 HTTP Version Not Supported",
  );
  assertStringIncludes(await raw(g.port, "hello\r\n\r\n"), "400 Bad Request");
  assertStringIncludes(
    await raw(g.port, "POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"),
    "400 Bad Request",
  );
});

Deno.test("guard: at the cap the oldest unfinished head gives way to a newcomer; 503 when every slot carries a request", async () => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  await using g = await start({ maxConnections: 3 }, async (req) => {
    if (new URL(req.url).pathname === "/hold") await held;
    return new Response("ok");
  });
  const slow = await Promise.all(
    [0, 1, 2].map(async () => {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: g.port });
      await c.write(enc.encode("GET /x HTTP/1.1\r\nHost: x\r\n"));
      return c;
    }),
  );
  await new Promise((r) => setTimeout(r, 300)); // older than the newcomer's grace
  const res = await fetch(`http://127.0.0.1:${g.port}/healthz`);
  assertEquals([res.status, await res.text()], [200, "ok"]);
  // the first slow client was dropped for it
  assertEquals(await readAll(slow[0]!, 2_000), "");
  for (const c of slow.slice(1)) c.close();
  await new Promise((r) => setTimeout(r, 50));

  // three real requests in flight: a fourth gets 503 at once
  const holds = [0, 1, 2].map(() => fetch(`http://127.0.0.1:${g.port}/hold`));
  await new Promise((r) => setTimeout(r, 300));
  const busy = await fetch(`http://127.0.0.1:${g.port}/healthz`);
  assertEquals(busy.status, 503);
  assertStringIncludes(await busy.text(), "Too many connections");
  release();
  for (const h of await Promise.all(holds)) assertEquals(await h.text(), "ok");
});

Deno.test("connectionCap(): three descriptors a connection above the reserve, between 8 and 512", () => {
  assertEquals(connectionCap(1024), Math.floor((1024 - FD_RESERVE) / 3));
  assertEquals(connectionCap(512), 128);
  assertEquals(connectionCap(100), 8);
  assertEquals(connectionCap(1_048_576), 512);
});
