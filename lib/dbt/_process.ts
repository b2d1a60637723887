/**
 * Runs a child process and hands its output to a callback line by line as it arrives (stdout
 * and stderr both), keeping the last lines for error messages. Private to `lib/dbt/`.
 * @module
 */

/** Options of {@link runLines}. */
export interface RunLinesOptions {
  args: string[];
  /** Added to the inherited environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Called for every output line (without the newline). */
  onLine: (line: string, stream: "stdout" | "stderr") => void;
  /** Kills the process when aborted. */
  signal?: AbortSignal;
  /** How many trailing lines to keep (default 40). */
  tail?: number;
}

/** What {@link runLines} returns. */
export interface RunLinesResult {
  code: number;
  /** The last output lines, oldest first. */
  tail: string[];
}

/**
 * Runs `command` with `options.args`, streaming its output lines to `options.onLine`.
 * @throws Deno.errors.NotFound when the executable does not exist (callers turn it into a
 * message naming the setting).
 */
export async function runLines(command: string, options: RunLinesOptions): Promise<RunLinesResult> {
  const { args, env, cwd, onLine, signal, tail: keep = 40 } = options;
  const child = new Deno.Command(command, {
    args,
    env,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal,
  }).spawn();
  const tail: string[] = [];
  const pump = async (stream: ReadableStream<Uint8Array>, name: "stdout" | "stderr") => {
    let buffer = "";
    const emit = (line: string) => {
      const clean = line.replace(/\r$/, "");
      tail.push(clean);
      if (tail.length > keep) tail.shift();
      onLine(clean, name);
    };
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        emit(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
      }
    }
    if (buffer) emit(buffer);
  };
  const [status] = await Promise.all([
    child.status,
    pump(child.stdout, "stdout"),
    pump(child.stderr, "stderr"),
  ]);
  return { code: status.code, tail };
}
