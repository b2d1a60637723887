/**
 * Worker entry for the byte reader: scans one segment of a large catalog on another thread
 * (see `scanCatalogTable()` in csv_catalog.ts) and posts the result back, its typed arrays
 * transferred. Errors are posted as `{ error: { name, message } }`.
 * @module
 */

import { scanSegment, type SegmentJob, transferables } from "./_catalog_segment.ts";

/** The message the worker answers with. */
export type WorkerAnswer =
  | { result: Awaited<ReturnType<typeof scanSegment>> }
  | { error: { name: string; message: string } };

// Runs only as a worker (`self` is the worker's global scope there).
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<SegmentJob>) => void) | null;
  postMessage(message: WorkerAnswer, transfer?: Transferable[]): void;
};

scope.onmessage = async (event) => {
  try {
    const result = await scanSegment(event.data);
    scope.postMessage({ result }, transferables(result));
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    scope.postMessage({ error: { name: e.name, message: e.message } });
  }
};
