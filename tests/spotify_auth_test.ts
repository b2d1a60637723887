/**
 * Spotify auth against the mock Spotify: the PKCE flow end to end through the loopback callback,
 * the token store (mode 0600), refresh on expiry and on 401, `invalid_grant`, `--status`.
 */

import { join } from "node:path";
import { basicCredentialForms, type Config, loadConfig } from "../lib/config.ts";
import { ConfigError, ExitCode, exitCodeOf, SourceError } from "../lib/errors.ts";
import { HttpError } from "../lib/http.ts";
import type { Logger } from "../lib/log.ts";
import { meOf, openSpotifyClient } from "../lib/spotify/client.ts";
import { authorize } from "../lib/spotify/pkce_auth.ts";
import {
  readTokenStore,
  refreshTokenAge,
  refreshTokenWarning,
  type StoredTokens,
  writeTokenStore,
} from "../lib/spotify/token_store.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
  freePort,
  runTask,
  taskCommand,
  testLog,
} from "./_spotify_test_util.ts";
import {
  followAuthorize,
  mockEnv,
  type MockSpotify,
  startMockSpotify,
  writeMockTokens,
} from "./mock_spotify.ts";

interface Env {
  mock: MockSpotify;
  dir: string;
  config: Config;
  tokensFile: string;
  [Symbol.asyncDispose](): Promise<void>;
}

async function setup(
  options: Parameters<typeof startMockSpotify>[0] = {},
  extra: Record<string, string> = {},
): Promise<Env> {
  const mock = startMockSpotify(options);
  const dir = await Deno.makeTempDir({ prefix: "spotify_auth_test_" });
  const config = loadConfig({
    env: mockEnv(mock, dir, {
      SPOTIFY_REDIRECT_PORT: String(freePort()),
      HTTP_TIMEOUT_MS: "5000",
      HTTP_MAX_RETRIES: "2",
      ...extra,
    }),
    envFile: false,
  });
  return {
    mock,
    dir,
    config,
    tokensFile: config.spotify.tokensFile,
    async [Symbol.asyncDispose]() {
      await mock.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Runs authorize() and plays the browser: open the URL, follow the redirect to the callback. */
async function authorizeThroughCallback(env: Env, log: Logger) {
  const urlSeen = Promise.withResolvers<string>();
  const flow = authorize(env.config, {
    log,
    openBrowser: false,
    onAuthorizeUrl: (url) => urlSeen.resolve(url),
  });
  const authorizeUrl = await urlSeen.promise;
  const page = await followAuthorize(authorizeUrl);
  const pageText = await page.text();
  const result = await flow;
  return { result, authorizeUrl, page, pageText };
}

/** Starts authorize() and waits for the URL it prints; the caller awaits the flow. */
async function startAuthorize(env: Env) {
  const urlSeen = Promise.withResolvers<string>();
  const flow = authorize(env.config, {
    log: testLog().log,
    openBrowser: false,
    onAuthorizeUrl: (url) => urlSeen.resolve(url),
  });
  flow.catch(() => {}); // awaited by the test, after its callbacks
  return { flow, authorizeUrl: await urlSeen.promise };
}

function mode(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

Deno.test("authorize() completes through the loopback callback and stores the tokens 0600", async () => {
  await using env = await setup();
  const { log, lines } = testLog();
  const { result, authorizeUrl, page, pageText } = await authorizeThroughCallback(env, log);

  assertEquals(page.status, 200);
  assertStringIncludes(pageText, "Authorized");
  const q = new URL(authorizeUrl).searchParams;
  assertEquals(
    new URL(authorizeUrl).origin + new URL(authorizeUrl).pathname,
    `${env.mock.url}/authorize`,
  );
  assertEquals(q.get("scope"), "user-top-read user-read-recently-played");
  assertEquals(q.get("code_challenge_method"), "S256");
  assertEquals(
    q.get("redirect_uri"),
    `http://127.0.0.1:${env.config.spotify.redirectPort}/callback`,
  );
  assert(q.get("state"), "state is sent");

  // The code was exchanged with the PKCE verifier (the mock checks it against the challenge).
  const [exchange] = env.mock.requestsTo("/api/token");
  assertEquals(exchange?.status, 200);
  assertEquals(exchange?.form?.grant_type, "authorization_code");
  assert(exchange?.form?.code_verifier, "code_verifier sent");
  assertEquals(exchange?.form?.client_id, "mock-client-id");

  assertEquals(mode(env.tokensFile), 0o600);
  const stored = await readTokenStore(env.tokensFile);
  assertEquals(stored, result.tokens);
  assert(env.mock.state.accessTokens.has(stored.access_token));
  assert(env.mock.state.refreshTokens.has(stored.refresh_token));
  assertEquals(stored.scope, "user-top-read user-read-recently-played");
  assertEquals(stored.user, { id: "mockuser", display_name: "Mock User" });
  assertEquals(stored.refreshed_at, null);
  assert(Math.abs(Date.parse(stored.consented_at) - Date.now()) < 3_600_000);

  // Nothing secret in the log.
  const logged = lines.join("\n");
  for (const secret of [stored.access_token, stored.refresh_token, exchange!.form!.code!]) {
    assert(!logged.includes(secret), "a token or code reached the log");
  }
  assert(!logged.includes(exchange!.form!.code_verifier!), "the verifier reached the log");
});

Deno.test("authorize() sends the client secret as HTTP Basic for a confidential app", async () => {
  await using env = await setup({ clientSecret: "mock-secret-123456" });
  const { log, lines } = testLog();
  await authorizeThroughCallback(env, log);
  const [exchange] = env.mock.requestsTo("/api/token");
  assertEquals(exchange?.status, 200);
  assertMatch(exchange?.authorization ?? "", /^Basic /);
  // oauth4webapi form-encodes both parts (RFC 6749 2.3.1), as Spotify accepts.
  const [id, secret] = atob(exchange!.authorization!.slice(6)).split(":").map(decodeURIComponent);
  assertEquals([id, secret], ["mock-client-id", "mock-secret-123456"]);
  assertEquals(exchange?.form?.client_secret, undefined);
  assert(!lines.join("\n").includes("mock-secret-123456"));
});

Deno.test("authorize() ignores a callback whose state does not match (400, nothing exchanged) and completes with the real one", async () => {
  await using env = await setup();
  const { flow, authorizeUrl } = await startAuthorize(env);
  const port = env.config.spotify.redirectPort;
  const forged = await fetch(`http://127.0.0.1:${port}/callback?code=AQforged&state=not-ours`);
  assertEquals(forged.status, 400);
  assertStringIncludes(await forged.text(), "does not belong to the authorization in progress");
  assertEquals(env.mock.requestsTo("/api/token").length, 0, "the forged code is not exchanged");
  const page = await followAuthorize(authorizeUrl);
  assertEquals(page.status, 200);
  await page.body?.cancel();
  const result = await flow;
  assertEquals((await readTokenStore(env.tokensFile)).access_token, result.tokens.access_token);
});

Deno.test("authorize() gives up after too many callbacks with a foreign state, storing nothing", async () => {
  await using env = await setup();
  const { flow } = await startAuthorize(env);
  const port = env.config.spotify.redirectPort;
  for (let i = 0; i < 6; i++) {
    const r = await fetch(`http://127.0.0.1:${port}/callback?code=AQx&state=stray${i}`);
    assertEquals(r.status, 400);
    await r.body?.cancel();
  }
  const error = await assertRejects(() => flow, SourceError);
  assertStringIncludes(error.message, "did not carry this authorization's state");
  assertEquals(env.mock.requestsTo("/api/token").length, 0);
  await assertRejects(() => Deno.stat(env.tokensFile), Deno.errors.NotFound);
});

Deno.test("authorize() with a code Spotify refuses answers the callback with the error page before it stops", async () => {
  await using env = await setup();
  const { flow, authorizeUrl } = await startAuthorize(env);
  const consent = await fetch(authorizeUrl, { redirect: "manual" });
  await consent.body?.cancel();
  const callback = new URL(consent.headers.get("location")!);
  callback.searchParams.set("code", "AQnotTheCodeSpotifyIssued");
  const page = await fetch(callback);
  assertEquals(page.status, 502);
  assertStringIncludes(await page.text(), "Authorization failed");
  const error = await assertRejects(() => flow, SourceError);
  assertStringIncludes(error.message, "invalid_grant");
});

Deno.test("authorize() exchanges the code once when the callback is requested twice", async () => {
  await using env = await setup();
  // the first exchange is slow, so the repeated callback arrives while it runs
  env.mock.fault("/api/token", { kind: "slow", delayMs: 300 });
  const { flow, authorizeUrl } = await startAuthorize(env);
  const consent = await fetch(authorizeUrl, { redirect: "manual" });
  await consent.body?.cancel();
  const callback = consent.headers.get("location")!;
  const first = fetch(callback);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const second = await fetch(callback);
  assertEquals(second.status, 410);
  await second.body?.cancel();
  const page = await first;
  assertEquals(page.status, 200);
  await page.body?.cancel();
  const result = await flow;
  assertEquals(env.mock.requestsTo("/api/token").length, 1);
  assertEquals((await readTokenStore(env.tokensFile)).access_token, result.tokens.access_token);
});

Deno.test("authorize() reports a refused consent (access_denied)", async () => {
  await using env = await setup();
  env.mock.state.denyAuthorization = true;
  const { log } = testLog();
  const urlSeen = Promise.withResolvers<string>();
  const flow = authorize(env.config, {
    log,
    openBrowser: false,
    onAuthorizeUrl: (url) => urlSeen.resolve(url),
  });
  flow.catch(() => {}); // awaited below, after the callback
  const page = await followAuthorize(await urlSeen.promise);
  assertEquals(page.status, 400);
  await page.body?.cancel();
  const error = await assertRejects(() => flow, SourceError);
  assertStringIncludes(error.message, "access_denied");
});

Deno.test("SpotifyClient refreshes an expired access token before the request and saves it", async () => {
  await using env = await setup();
  const { log, lines } = testLog();
  const old = await writeMockTokens(env.mock, env.tokensFile, {
    expiresAt: new Date(Date.now() - 60_000),
    consentedAt: new Date("2026-01-02T03:04:05Z"),
  });
  const client = await openSpotifyClient(env.config, { log });
  const me = (await client.getJson("/v1/me")) as { id: string };
  assertEquals(me.id, "mockuser");

  assertEquals(env.mock.requests.map((r) => `${r.path} ${r.status}`), [
    "/api/token 200",
    "/v1/me 200",
  ]);
  assertEquals(env.mock.requests[0]?.form?.grant_type, "refresh_token");
  const stored = await readTokenStore(env.tokensFile);
  assert(stored.access_token !== old.access_token, "new access token saved");
  assertEquals(env.mock.requests[1]?.authorization, `Bearer ${stored.access_token}`);
  assert(Date.parse(stored.expires_at) > Date.now());
  assertEquals(stored.consented_at, "2026-01-02T03:04:05.000Z", "refresh keeps the consent time");
  assert(stored.refreshed_at !== null);
  assertEquals(mode(env.tokensFile), 0o600);
  const logged = lines.join("\n");
  for (
    const t of [old.access_token, old.refresh_token, stored.access_token, stored.refresh_token]
  ) {
    assert(!logged.includes(t), "a token reached the log");
  }
});

Deno.test("a refresh answer without refresh_token keeps the old refresh token", async () => {
  await using env = await setup();
  env.mock.state.omitRefreshToken = true;
  const { log } = testLog();
  const old = await writeMockTokens(env.mock, env.tokensFile, {
    expiresAt: new Date(Date.now() - 1000),
  });
  const client = await openSpotifyClient(env.config, { log });
  await client.getJson("/v1/me");
  const stored = await readTokenStore(env.tokensFile);
  assertEquals(stored.refresh_token, old.refresh_token);
  assert(stored.access_token !== old.access_token);
  // The kept refresh token still works for the next refresh.
  await client.refresh();
  assertEquals((await readTokenStore(env.tokensFile)).refresh_token, old.refresh_token);
});

Deno.test("refresh uses the client id saved in the token store when SPOTIFY_CLIENT_ID is unset", async () => {
  await using env = await setup({}, { SPOTIFY_CLIENT_ID: "" });
  assertEquals(env.config.spotify.clientId, undefined);
  const { log } = testLog();
  await writeMockTokens(env.mock, env.tokensFile, { expiresAt: new Date(Date.now() - 1000) });
  const client = await openSpotifyClient(env.config, { log });
  await client.getJson("/v1/me");
  assertEquals(env.mock.requestsTo("/api/token")[0]?.form?.client_id, "mock-client-id");
  assertEquals(env.mock.requestsTo("/api/token")[0]?.status, 200);
});

Deno.test("a rotated refresh token replaces the stored one", async () => {
  await using env = await setup();
  const { log } = testLog();
  const old = await writeMockTokens(env.mock, env.tokensFile);
  const client = await openSpotifyClient(env.config, { log });
  await client.refresh();
  const stored = await readTokenStore(env.tokensFile);
  assert(stored.refresh_token !== old.refresh_token);
  assert(env.mock.state.refreshTokens.has(stored.refresh_token));
});

Deno.test("a 401 refreshes the access token once and retries the request", async () => {
  await using env = await setup();
  const { log } = testLog();
  await writeMockTokens(env.mock, env.tokensFile);
  env.mock.fault("/v1/me", { kind: "expired_token" });
  const client = await openSpotifyClient(env.config, { log });
  const me = (await client.getJson("/v1/me")) as { display_name: string };
  assertEquals(me.display_name, "Mock User");
  assertEquals(env.mock.requests.map((r) => `${r.path} ${r.status}`), [
    "/v1/me 401",
    "/api/token 200",
    "/v1/me 200",
  ]);
});

Deno.test("a second 401 after the refresh is an HttpError (one refresh only)", async () => {
  await using env = await setup();
  const { log } = testLog();
  await writeMockTokens(env.mock, env.tokensFile);
  env.mock.fault("/v1/me", { kind: "status", status: 401 }, 2);
  const client = await openSpotifyClient(env.config, { log });
  const error = await assertRejects(() => client.getJson("/v1/me"), HttpError);
  assertEquals(error.status, 401);
  assertEquals(env.mock.requestsTo("/api/token").length, 1);
});

Deno.test("invalid_grant on refresh is a SourceError telling to run `deno task auth`", async () => {
  await using env = await setup();
  env.mock.state.invalidGrant = true;
  const { log } = testLog();
  await writeMockTokens(env.mock, env.tokensFile, { expiresAt: new Date(Date.now() - 1000) });
  const client = await openSpotifyClient(env.config, { log });
  const error = await assertRejects(() => client.getJson("/v1/me"), SourceError);
  assertStringIncludes(error.message, "invalid_grant");
  assertStringIncludes(error.message, "deno task auth");
  assertStringIncludes(error.message, `${env.mock.url}/api/token`);
  assertEquals(exitCodeOf(error), ExitCode.source);
  assertEquals(env.mock.requestsTo("/v1/me").length, 0);
});

Deno.test("a token store that cannot be read or written is a ConfigError naming the file, not a crash", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spotify_auth_test_" });
  try {
    const path = `${dir}/tokens.json`;
    await Deno.mkdir(path); // a folder where the file should be
    const error = await assertRejects(() => readTokenStore(path), ConfigError);
    assertStringIncludes(error.message, path);
    assertStringIncludes(error.message, "SPOTIFY_TOKENS_FILE");
    assertEquals(exitCodeOf(error), ExitCode.config);
    // nor one that cannot be written (its folder is a file)
    await Deno.writeTextFile(`${dir}/file`, "");
    const tokens = await assertRejects(
      () => writeTokenStore(`${dir}/file/tokens.json`, {} as StoredTokens),
      ConfigError,
    );
    assertStringIncludes(tokens.message, `${dir}/file/tokens.json`);
    assertStringIncludes(tokens.message, "SPOTIFY_TOKENS_FILE");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the token store is written 0600 atomically and a wider mode is reported", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/nested/tokens.json`;
    const tokens: StoredTokens = {
      version: 1,
      client_id: "c",
      access_token: "access-token-value",
      token_type: "Bearer",
      scope: "user-top-read",
      expires_at: new Date().toISOString(),
      refresh_token: "refresh-token-value",
      consented_at: new Date().toISOString(),
      refreshed_at: null,
      user: null,
    };
    await writeTokenStore(file, tokens);
    assertEquals(mode(file), 0o600);
    assertEquals([...Deno.readDirSync(`${dir}/nested`)].map((e) => e.name), ["tokens.json"]);

    await Deno.chmod(file, 0o644);
    const { log, lines } = testLog();
    assertEquals(await readTokenStore(file, { log }), tokens);
    assertEquals(lines.length, 1);
    assertStringIncludes(lines[0]!, "0644");
    assertStringIncludes(lines[0]!, "chmod 600");

    await Deno.writeTextFile(file, '{"access_token": 1}');
    const corrupt = await assertRejects(() => readTokenStore(file));
    assertStringIncludes((corrupt as Error).message, "corrupt");
    assertEquals(exitCodeOf(corrupt), ExitCode.config);

    // A truncated store (e.g. a refresh token pasted on its own): the error says where, and
    // quotes none of it.
    const secret = "AQBsecretRefreshTokenValue0123456789";
    await Deno.writeTextFile(file, `${secret}"}`);
    const notJson = await assertRejects(() => readTokenStore(file));
    assertStringIncludes((notJson as Error).message, "not JSON");
    assertEquals((notJson as Error).message.includes("AQBsecret"), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("refreshTokenWarning() warns from 30 days before the 6-month end of consent", async () => {
  const tokens = { consented_at: "2026-01-15T10:00:00.000Z" } as StoredTokens;
  const at = (iso: string) => refreshTokenAge(tokens, new Date(iso));
  assertEquals(at("2026-06-01T00:00:00Z").warning, undefined);
  assertEquals(at("2026-06-01T00:00:00Z").expiresAt.toISOString(), "2026-07-15T10:00:00.000Z");
  assertEquals(at("2026-06-01T00:00:00Z").ageDays, 136);
  const soon = at("2026-06-20T00:00:00Z");
  assertEquals(soon.daysLeft, 25);
  assertStringIncludes(soon.warning ?? "", "2026-07-15");
  assertStringIncludes(soon.warning ?? "", "deno task auth");
  assertStringIncludes(at("2026-07-16T00:00:00Z").warning ?? "", "ended");

  // Through the config, as the pipeline calls it.
  const dir = await Deno.makeTempDir();
  try {
    const config = loadConfig({ env: { PIPELINE_DATA_DIR: dir }, envFile: false });
    assertEquals(await refreshTokenWarning(config), undefined, "no token store: no warning");
    await writeTokenStore(config.spotify.tokensFile, {
      version: 1,
      client_id: "c",
      access_token: "a-token",
      token_type: "Bearer",
      scope: "user-top-read",
      expires_at: "2026-06-20T01:00:00.000Z",
      refresh_token: "r-token",
      consented_at: tokens.consented_at,
      refreshed_at: null,
      user: null,
    });
    assertEquals(
      await refreshTokenWarning(config, { now: new Date("2026-06-20T00:00:00Z") }),
      soon.warning,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("`deno task auth --status` shows user, scopes, token expiry, refresh-token age and warning", async () => {
  await using env = await setup();
  const consentedAt = new Date(Date.now() - 160 * 86_400_000);
  const tokens = await writeMockTokens(env.mock, env.tokensFile, { consentedAt });
  const out = await runTask("auth.ts", ["--status"], mockEnv(env.mock, env.dir), env.dir);
  assertEquals(out.code, 0, out.stderr);
  assertStringIncludes(out.stdout, "Authorized as:  Mock User (mockuser)");
  assertStringIncludes(out.stdout, "Scopes:         user-top-read");
  assertMatch(out.stdout, /Access token: +valid until \S+ \(\d+ min left\)/);
  assertMatch(out.stdout, /Refresh token: +consent \d{4}-\d{2}-\d{2} \(160 day\(s\) ago\)/);
  assertMatch(out.stdout, /Spotify ends it on \d{4}-\d{2}-\d{2} \(\d+ day\(s\) left\)/);
  assertStringIncludes(out.stdout, "WARNING: The Spotify refresh token ends on");
  assertStringIncludes(out.stdout, "(mode 600)");
  for (const t of [tokens.access_token, tokens.refresh_token]) {
    assert(!out.stdout.includes(t) && !out.stderr.includes(t), "a token was printed");
  }
});

Deno.test("`deno task auth --status` without a token store says to run `deno task auth` (exit 2)", async () => {
  await using env = await setup();
  const out = await runTask("auth.ts", ["--status"], mockEnv(env.mock, env.dir), env.dir);
  assertEquals(out.code, ExitCode.config);
  assertStringIncludes(out.stderr, "No Spotify account is authorized");
  assertStringIncludes(
    out.stderr,
    "Run `deno task auth` (or `deno task auth --user <name>`) first.",
  );
});

Deno.test("`deno task auth --no-browser` completes when the printed URL is opened", async () => {
  await using env = await setup();
  const port = freePort();
  const child = taskCommand(
    "auth.ts",
    ["--no-browser"],
    mockEnv(env.mock, env.dir, { SPOTIFY_REDIRECT_PORT: String(port) }),
    env.dir,
  ).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stdout = "";
  let url: string | undefined;
  while (url === undefined) {
    const { value, done } = await reader.read();
    if (done) break;
    stdout += value;
    url = stdout.match(/(http:\/\/\S+\/authorize\?\S+)/)?.[1];
  }
  assert(url, `no authorize URL printed:\n${stdout}`);
  const page = await followAuthorize(url);
  assertEquals(page.status, 200);
  await page.body?.cancel();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    stdout += value;
  }
  const status = await child.status;
  assertEquals(status.code, 0, await stderr);
  assertStringIncludes(
    stdout,
    "Authorized account default as Mock User (mockuser); scope user-top-read",
  );
  assertEquals(mode(env.tokensFile), 0o600);
  const stored = await readTokenStore(env.tokensFile);
  assert(!stdout.includes(stored.access_token) && !(await stderr).includes(stored.access_token));
});

Deno.test("a token endpoint that echoes `Authorization: Basic <id:secret>` into its error never shows the credentials", async () => {
  await using env = await setup();
  env.mock.state.clientSecret = "the-real-secret";
  env.mock.state.echoAuthorization = true;
  await writeMockTokens(env.mock, env.tokensFile, { expiresAt: new Date(Date.now() - 1000) });
  // this machine's secret is a stale one: the endpoint answers invalid_client, echoing the header
  const stale = "stale secret/with+odd~chars";
  const basic = btoa(`${env.mock.state.clientId}:${stale}`);
  const out = await runTask(
    "fetch.ts",
    [],
    mockEnv(env.mock, env.dir, { SPOTIFY_CLIENT_SECRET: stale, PIPELINE_STREAMS: "top_tracks" }),
    env.dir,
  );
  assertEquals(out.code, ExitCode.source, out.stderr);
  assertStringIncludes(out.stderr, "invalid_client");
  assertStringIncludes(out.stderr, "[REDACTED]");
  for (const text of [out.stdout, out.stderr]) {
    assert(!text.includes(stale), "the secret itself");
    assert(!text.includes(basic), "its Basic form");
    for (const form of basicCredentialForms(env.mock.state.clientId, stale)) {
      assert(!text.includes(form), `Basic form ${form}`);
    }
  }
});

Deno.test("a token store that is a symbolic link is written through to its target: a refresh keeps the link and updates the target", async () => {
  await using env = await setup();
  const secrets = join(env.dir, "secrets");
  await Deno.mkdir(secrets);
  const target = join(secrets, "spotify_tokens.json");
  await writeMockTokens(env.mock, target, { expiresAt: new Date(Date.now() - 1000) });
  await Deno.remove(env.tokensFile).catch(() => {});
  await Deno.symlink("secrets/spotify_tokens.json", env.tokensFile); // relative, as people make them
  const before = (await readTokenStore(target)).access_token;
  const { log } = testLog();
  const client = await openSpotifyClient(env.config, { log });
  await client.getJson("/v1/me");
  assert(Deno.lstatSync(env.tokensFile).isSymlink, "still a link");
  const after = await readTokenStore(target);
  assert(after.access_token !== before, "the target holds the refreshed token");
  assertEquals(mode(target), 0o600);
  assertEquals((await readTokenStore(env.tokensFile)).access_token, after.access_token);
});

Deno.test("`deno task auth --status` never refreshes an expired access token (outside the run lock it could race a fetch)", async () => {
  await using env = await setup();
  await writeMockTokens(env.mock, env.tokensFile, { expiresAt: new Date(Date.now() - 60_000) });
  const before = await readTokenStore(env.tokensFile);
  const out = await runTask("auth.ts", ["--status"], mockEnv(env.mock, env.dir), env.dir);
  assertEquals(out.code, 0, out.stderr);
  assertEquals(env.mock.requestsTo("/api/token").length, 0, "no refresh");
  assertEquals(env.mock.requestsTo("/v1/me").length, 0);
  assertStringIncludes(
    out.stdout,
    "Mock User (mockuser), as saved at auth (not asked: the access token has expired",
  );
  assertEquals((await readTokenStore(env.tokensFile)).access_token, before.access_token);
});

Deno.test("meOf() reads GET /v1/me answers of any shape: the recorded one, and null, a list, wrong types", async () => {
  const recorded = JSON.parse(
    await Deno.readTextFile(
      new URL("../../shared/fixtures/spotify/api/recorded/java_me.json", import.meta.url),
    ),
  );
  assertEquals(meOf(recorded), { id: recorded.id, display_name: recorded.display_name });
  for (const body of [null, [], "me", 3, {}, { id: 7, display_name: ["x"] }, { id: "" }]) {
    assertEquals(meOf(body), { display_name: null }, JSON.stringify(body));
  }
});
