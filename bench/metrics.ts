import { parseMetrics, type Sample } from "../test/support/metrics-text.js";

/** A running kmsd's metrics (GET /metrics), as samples. */
export async function readMetrics(port: number): Promise<Sample[]> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  if (!response.ok) throw new Error(`GET /metrics answered ${response.status}`);
  return parseMetrics(await response.text());
}
