/**
 * fetchWithRetry against local servers whose answer breaks down after the headers: the body is
 * read within the timeout, and a stalled or cut body is retried like a network error, then
 * reported as a NetworkError naming the URL (never a raw abort in the caller's read).
 */
import assert from "node:assert/strict";
import { SourceError } from "../lib/errors.ts";
import { BodyTooLargeError, fetchWithRetry, NetworkError } from "../lib/http.ts";

const encoder = new TextEncoder();

/** A server whose first `bad` answers send headers and half a body, then stall. */
function startStallingServer(bad: number) {
  const closing = new AbortController();
  let requests = 0;
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: closing.signal, onListen() {} },
    () => {
      requests++;
      if (requests > bad) return Response.json({ items: [1, 2, 3] });
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(encoder.encode('{"items": ['));
          closing.signal.addEventListener("abort", () => {
            try {
              controller.close();
            } catch { /* already closed */ }
          });
        },
      });
      return new Response(body, { headers: { "content-type": "application/json" } });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/v1/me/top/tracks?limit=50`,
    get requests() {
      return requests;
    },
    async [Symbol.asyncDispose]() {
      closing.abort();
      await server.finished;
    },
  };
}

/** A raw TCP server announcing a 100-byte body, sending 11 bytes and closing the connection. */
function startCuttingServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let requests = 0;
  const served = (async () => {
    for await (const conn of listener) {
      requests++;
      await conn.read(new Uint8Array(4096));
      await conn.write(encoder.encode(
        'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"items": [',
      ));
      conn.close();
    }
  })();
  return {
    url: `http://127.0.0.1:${listener.addr.port}/v1/me/top/tracks?limit=50`,
    get requests() {
      return requests;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      await served.catch(() => {});
    },
  };
}

const fast = { timeoutMs: 300, sleep: () => Promise.resolve(), random: () => 0 };

Deno.test("a body that stalls after the headers is retried and the next answer returned", async () => {
  await using server = startStallingServer(1);
  const { response, stats } = await fetchWithRetry(server.url, {}, { ...fast, maxRetries: 2 });
  assert.equal(stats.attempts, 2);
  assert.deepEqual(await response.json(), { items: [1, 2, 3] });
});

Deno.test("a body that keeps stalling or breaks off ends in a NetworkError naming the URL", async () => {
  for (const mode of ["stall", "cut"] as const) {
    await using server = mode === "stall" ? startStallingServer(10) : startCuttingServer();
    const error = await fetchWithRetry(server.url, {}, { ...fast, maxRetries: 1 }).then(
      () => assert.fail("expected a NetworkError"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof NetworkError, `${mode}: ${error}`);
    assert.match(error.message, /127\.0\.0\.1:\d+\/v1\/me\/top\/tracks/);
    assert.match(
      error.message,
      mode === "stall" ? /No complete answer within 300 ms/ : /Reading the answer failed/,
    );
    assert.equal(server.requests, 2);
  }
});

Deno.test("an answer larger than the cap is a BodyTooLargeError naming the URL, not retried, whether it declares its length or streams", async () => {
  const big = new Uint8Array(64 * 1024);
  let requests = 0;
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    (req) => {
      requests++;
      if (new URL(req.url).pathname === "/declared") {
        return new Response(new Uint8Array(200 * 1024), {
          headers: { "content-type": "application/json" },
        });
      }
      let sent = 0;
      return new Response(
        new ReadableStream({
          pull(c) {
            if (sent > 300 * 1024) return c.close();
            sent += big.length;
            c.enqueue(big);
          },
        }),
        { headers: { "content-type": "application/json" } },
      );
    },
  );
  try {
    const base = `http://127.0.0.1:${server.addr.port}`;
    for (const path of ["/declared", "/streamed"]) {
      requests = 0;
      await assert.rejects(
        fetchWithRetry(`${base}${path}`, {}, { maxBodyBytes: 100 * 1024, maxRetries: 3 }),
        (e: Error) => {
          assert.ok(e instanceof BodyTooLargeError, String(e));
          assert.ok(e instanceof SourceError);
          assert.match(e.message, new RegExp(`${path} answered more than 102400 bytes`));
          return true;
        },
      );
      assert.equal(requests, 1, `${path}: not retried`);
    }
    const ok = await fetchWithRetry(`${base}/declared`, {}, { maxBodyBytes: 1024 * 1024 });
    assert.equal((await ok.response.arrayBuffer()).byteLength, 200 * 1024);
  } finally {
    ac.abort();
    await server.finished;
  }
});
