/**
 * The Spotify token store is created 0600 — at the open(2) that creates it, whatever the umask,
 * never created wider and narrowed afterwards — both when `auth` writes it and when a refresh
 * replaces it; a store with wider permissions is reported. (The scan for leaked secrets across
 * every log, error, manifest and HTTP answer of the fault suite is the last step of
 * tests/faults/fault_suite_test.ts.)
 */

import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes, ROOT } from "../_spotify_test_util.ts";
import { mockEnv, startMockSpotify } from "../mock_spotify.ts";

/** Whether strace can trace a child here. */
async function strace(): Promise<boolean> {
  try {
    return (await new Deno.Command("strace", {
      args: ["-f", "-qq", "-o", "/dev/null", "true"],
      stdout: "null",
      stderr: "null",
    }).output()).success;
  } catch {
    return false;
  }
}

const CHILD = `
import { loadConfig } from "${ROOT}lib/config.ts";
import { Logger } from "${ROOT}lib/log.ts";
import { openSpotifyClient } from "${ROOT}lib/spotify/client.ts";
import { writeTokenStore } from "${ROOT}lib/spotify/token_store.ts";
const [file, tokens] = [Deno.args[0], JSON.parse(Deno.args[1])];
// what \`deno task auth\` does once the user consented
await writeTokenStore(file, tokens);
// what a refresh does (the client saves the rotated tokens)
const config = loadConfig({ envFile: false });
const log = new Logger({ level: "warn", format: "json" });
const client = await openSpotifyClient(config, { log });
await client.refresh();
console.log("done");
`;

Deno.test("the token store is created 0600 by the open(2) that creates it (umask 000), by auth and by a refresh", async () => {
  const mock = startMockSpotify();
  const dir = await Deno.makeTempDir({ prefix: "token_mode_" });
  try {
    const store = join(dir, "secrets");
    const file = join(store, "spotify_tokens.json");
    const script = join(dir, "child.ts");
    await Deno.writeTextFile(script, CHILD);
    const t = mock.issueTokens();
    const tokens = {
      version: 1,
      client_id: mock.state.clientId,
      access_token: t.access_token,
      token_type: "Bearer",
      scope: t.scope,
      expires_at: new Date(Date.now() + 3_600_000).toISOString(),
      refresh_token: t.refresh_token,
      consented_at: new Date().toISOString(),
      refreshed_at: null,
      user: null,
    };
    const traced = await strace();
    const log = join(dir, "strace.log");
    const deno = [Deno.execPath(), "run", "-A", "--config", `${ROOT}deno.json`, script];
    const inner = traced
      ? [
        "strace",
        "-f",
        "-qq",
        "-o",
        log,
        "-e",
        "trace=open,openat,creat,chmod,fchmod,fchmodat,rename,renameat,renameat2",
        ...deno,
      ]
      : deno;
    const out = await new Deno.Command("sh", {
      args: ["-c", 'umask 000 && exec "$@"', "sh", ...inner, file, JSON.stringify(tokens)],
      clearEnv: true,
      env: {
        HOME: Deno.env.get("HOME") ?? "/tmp",
        PATH: Deno.env.get("PATH") ?? "",
        ...mockEnv(mock, dir, { SPOTIFY_TOKENS_FILE: file }),
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    assertStringIncludes(new TextDecoder().decode(out.stdout), "done");
    assertEquals((await Deno.stat(file)).mode! & 0o777, 0o600);
    assertEquals(mock.requestsTo("/api/token").length, 1, "the refresh happened");
    // a umask of 000 left the folder it created open; the file is still 0600
    assertEquals((await Deno.stat(store)).mode! & 0o777, 0o777);

    if (traced) {
      const lines = (await Deno.readTextFile(log)).split("\n").filter((l) => l.includes(store));
      const creates = lines.filter((l) => /open(at)?\(.*O_CREAT/.test(l) || /creat\(/.test(l));
      // two writes: the store created by auth, then replaced by the refresh
      assertEquals(creates.length, 2, lines.join("\n"));
      for (const l of creates) {
        assertStringIncludes(l, "O_EXCL", l);
        assert(/, 0600\) = \d+$/.test(l), `created with another mode: ${l}`);
        assert(/\.tmp"/.test(l), `not a temp file renamed into place: ${l}`);
      }
      for (const l of lines.filter((l) => /chmod/.test(l))) {
        assert(/0600\)/.test(l), `mode changed to something else: ${l}`);
      }
      const renames = lines.filter((l) => /rename/.test(l) && l.includes(`"${file}"`));
      assertEquals(renames.length, 2, lines.join("\n"));
    }
  } finally {
    await mock.close();
    await Deno.remove(dir, { recursive: true });
  }
});
