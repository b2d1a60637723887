/**
 * A real headless Chromium for the browser tests (Debian's `chromium`, which `deno task test`
 * installs like the Python venv), driven over the DevTools protocol with Deno's WebSocket: open
 * a page, collect console errors, exceptions and every request, evaluate, take screenshots.
 * @module
 */

/** Where the browser is: `CHROMIUM_BIN`, else `chromium` on PATH. */
export function chromiumBinary(): string {
  return Deno.env.get("CHROMIUM_BIN") ?? "chromium";
}

/** What a page did while loading and after. */
export interface PageLog {
  /** Console messages of level error, uncaught exceptions, failed loads. */
  errors: string[];
  /** Every URL the page requested. */
  requests: string[];
  /** HTTP status of each response, by URL. */
  statuses: Map<string, number>;
}

/** A running browser with one page. */
export interface Browser extends AsyncDisposable {
  log: PageLog;
  /** Sends a DevTools command to the page. */
  send<T = Record<string, unknown>>(method: string, params?: Record<string, unknown>): Promise<T>;
  /** Navigates and waits for the load event. */
  open(url: string, options?: { headers?: Record<string, string> }): Promise<void>;
  /** Evaluates an expression in the page and returns its (JSON) value. */
  evaluate<T>(expression: string): Promise<T>;
  /** A PNG of the page's region (CSS pixels), or of the full page. */
  screenshot(clip?: { x: number; y: number; width: number; height: number }): Promise<Uint8Array>;
}

/** Options of {@link launchChromium}. */
export interface LaunchOptions {
  /** Refuse every network request (the page must need none). */
  offline?: boolean;
  width?: number;
  height?: number;
}

/** Starts headless Chromium and attaches to its page. */
export async function launchChromium(options: LaunchOptions = {}): Promise<Browser> {
  const profile = await Deno.makeTempDir({ prefix: "chromium_profile_" });
  const child = new Deno.Command(chromiumBinary(), {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-extensions",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--remote-debugging-port=0",
      `--user-data-dir=${profile}`,
      "about:blank",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // read stderr to the end (a full pipe would block the browser), catching the DevTools URL
  let found!: (url: string) => void;
  const endpoint = new Promise<string>((resolve) => (found = resolve));
  const stderrLines: string[] = [];
  const drained = (async () => {
    const decoder = new TextDecoderStream();
    let buffer = "";
    for await (const chunk of child.stderr.pipeThrough(decoder)) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (stderrLines.length < 200) stderrLines.push(line);
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(line);
        if (m) found(m[1]!);
      }
    }
  })();
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(
      () => reject(new Error(`Chromium did not start:\n${stderrLines.join("\n")}`)),
      30_000,
    )
  );
  let browserUrl: string;
  try {
    browserUrl = await Promise.race([
      endpoint,
      timeout,
      child.status.then(() => {
        throw new Error(`Chromium exited:\n${stderrLines.join("\n")}`);
      }),
    ]);
  } catch (error) {
    child.kill();
    await child.status;
    await drained.catch(() => {});
    await Deno.remove(profile, { recursive: true }).catch(() => {});
    throw error;
  }
  const port = new URL(browserUrl).port;
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
    type: string;
    webSocketDebuggerUrl: string;
  }[];
  const page = targets.find((t) => t.type === "page");
  if (!page) throw new Error("Chromium has no page target");

  const socket = new WebSocket(page.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error("cannot connect to Chromium's DevTools"));
  });
  let nextId = 1;
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  const listeners = new Map<string, ((params: Record<string, unknown>) => void)[]>();
  socket.onmessage = (event) => {
    const message = JSON.parse(String(event.data));
    if (typeof message.id === "number") {
      const p = pending.get(message.id);
      pending.delete(message.id);
      if (message.error) p?.reject(new Error(`${message.error.message} (${message.error.code})`));
      else p?.resolve(message.result);
    } else if (typeof message.method === "string") {
      for (const fn of listeners.get(message.method) ?? []) fn(message.params ?? {});
    }
  };
  const on = (method: string, fn: (params: Record<string, unknown>) => void) => {
    listeners.get(method)?.push(fn) ?? listeners.set(method, [fn]);
  };
  const send = <T>(method: string, params: Record<string, unknown> = {}) =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      socket.send(JSON.stringify({ id, method, params }));
    });

  const log: PageLog = { errors: [], requests: [], statuses: new Map() };
  on("Runtime.consoleAPICalled", (p) => {
    if (p.type === "error" || p.type === "assert") {
      log.errors.push(`console.${p.type}: ${JSON.stringify(p.args)}`);
    }
  });
  on("Runtime.exceptionThrown", (p) => log.errors.push(`exception: ${JSON.stringify(p)}`));
  on("Log.entryAdded", (p) => {
    const entry = p.entry as { level: string; text: string; url?: string };
    if (entry.level === "error") log.errors.push(`log: ${entry.text} ${entry.url ?? ""}`);
  });
  on("Network.requestWillBeSent", (p) => log.requests.push((p.request as { url: string }).url));
  on("Network.responseReceived", (p) => {
    const r = p.response as { url: string; status: number };
    log.statuses.set(r.url, r.status);
  });
  on("Network.loadingFailed", (p) => log.errors.push(`request failed: ${JSON.stringify(p)}`));

  await send("Page.enable");
  await send("Runtime.enable");
  await send("Log.enable");
  await send("Network.enable");
  if (options.offline) {
    await send("Network.emulateNetworkConditions", {
      offline: true,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: -1,
    });
  }
  await send("Emulation.setDeviceMetricsOverride", {
    width: options.width ?? 900,
    height: options.height ?? 1200,
    deviceScaleFactor: 1,
    mobile: false,
  });

  return {
    log,
    send,
    async open(url, openOptions = {}) {
      if (openOptions.headers) {
        await send("Network.setExtraHTTPHeaders", { headers: openOptions.headers });
      }
      const loaded = new Promise<void>((resolve) => on("Page.loadEventFired", () => resolve()));
      const result = await send<{ errorText?: string }>("Page.navigate", { url });
      if (result.errorText) throw new Error(`cannot open ${url}: ${result.errorText}`);
      await loaded;
    },
    async evaluate<T>(expression: string) {
      const result = await send<{ result: { value: T }; exceptionDetails?: unknown }>(
        "Runtime.evaluate",
        { expression, returnByValue: true },
      );
      if (result.exceptionDetails) {
        throw new Error(`evaluate failed: ${JSON.stringify(result.exceptionDetails)}`);
      }
      return result.result.value;
    },
    async screenshot(clip) {
      const params: Record<string, unknown> = { format: "png", captureBeyondViewport: true };
      if (clip) params.clip = { ...clip, scale: 1 };
      else {
        const { cssContentSize } = await send<
          { cssContentSize: { width: number; height: number } }
        >(
          "Page.getLayoutMetrics",
        );
        params.clip = {
          x: 0,
          y: 0,
          width: cssContentSize.width,
          height: cssContentSize.height,
          scale: 1,
        };
      }
      const { data } = await send<{ data: string }>("Page.captureScreenshot", params);
      return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    },
    async [Symbol.asyncDispose]() {
      socket.close();
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await child.status;
      await drained.catch(() => {});
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}
