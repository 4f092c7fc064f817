/**
 * Requests kmsd answered with an error, from its own metrics: a load tool
 * counts a gRPC error as a success (HTTP 200, the status is in the
 * trailers), so the harness asks the server too.
 */
import { readMetrics } from "./metrics.js";

/** Every RPC kmsd has answered with a code other than OK, all protocols together. */
export async function failedRpcs(port: number): Promise<number> {
  return (await readMetrics(port))
    .filter((sample) => sample.name === "kmsd_rpc_requests_total" && sample.labels.code !== "OK")
    .reduce((sum, sample) => sum + sample.value, 0);
}
