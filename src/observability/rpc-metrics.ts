import type { DescMethod } from "@bufbuild/protobuf";

/** Upper bounds of the RPC latency histogram, in seconds (a cached EncryptData takes ~0.1 ms). */
export const RPC_LATENCY_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/** One method over one protocol: its latency histogram and its count per outcome. */
class RpcSeries {
  /** Per bucket, not cumulative: observations above the previous bound and up to this one. */
  readonly buckets = new Float64Array(RPC_LATENCY_BUCKETS.length);
  sum = 0;
  count = 0;
  readonly outcomes = new Map<string, number>();

  /** `labels` is the series' label set, rendered once: service="…",method="…",protocol="…". */
  constructor(readonly labels: string) {}

  record(outcome: string, seconds: number): void {
    let bucket = 0;
    while (bucket < RPC_LATENCY_BUCKETS.length && seconds > (RPC_LATENCY_BUCKETS[bucket] ?? 0)) {
      bucket++;
    }
    if (bucket < this.buckets.length) this.buckets[bucket] = (this.buckets[bucket] ?? 0) + 1;
    this.sum += seconds;
    this.count++;
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
  }
}

/**
 * The per-request series, kept out of prom-client on purpose: its
 * observe() hashes the label values on every call (about 1 µs a metric,
 * measured), a few percent of a cached EncryptData. Here a request costs
 * two map lookups and a few additions; the text is rendered at scrape time,
 * in the Prometheus exposition format, after prom-client's own metrics.
 * Labels are bounded: methods of the registered services, four protocols,
 * the Huawei and Connect codes. Never a key, project or principal.
 */
export class RpcMetrics {
  private readonly series = new Map<DescMethod, Map<string, RpcSeries>>();
  private readonly rejections = new Map<string, Map<string, number>>();

  record(method: DescMethod, protocol: string, outcome: string, latencyUs: number): void {
    let byProtocol = this.series.get(method);
    if (byProtocol === undefined) {
      byProtocol = new Map();
      this.series.set(method, byProtocol);
    }
    let series = byProtocol.get(protocol);
    if (series === undefined) {
      series = new RpcSeries(
        labelSet({ service: method.parent.typeName, method: method.name, protocol }),
      );
      byProtocol.set(protocol, series);
    }
    series.record(outcome, latencyUs / 1e6);
  }

  /** A request refused before any RPC ran. */
  reject(protocol: string, code: string): void {
    let byCode = this.rejections.get(protocol);
    if (byCode === undefined) {
      byCode = new Map();
      this.rejections.set(protocol, byCode);
    }
    byCode.set(code, (byCode.get(code) ?? 0) + 1);
  }

  render(): string {
    const all = [...this.series.values()].flatMap((byProtocol) => [...byProtocol.values()]);
    const lines = [
      "# HELP kmsd_rpc_requests_total RPCs answered, by service, method, protocol and outcome (OK, or the Huawei or Connect code answered).",
      "# TYPE kmsd_rpc_requests_total counter",
    ];
    for (const series of all) {
      for (const [outcome, count] of series.outcomes) {
        lines.push(
          `kmsd_rpc_requests_total{${series.labels},${labelSet({ code: outcome })}} ${count}`,
        );
      }
    }
    lines.push(
      "# HELP kmsd_rpc_duration_seconds Time from a request's arrival to its answer, by service, method and protocol.",
      "# TYPE kmsd_rpc_duration_seconds histogram",
    );
    for (const series of all) {
      let cumulative = 0;
      RPC_LATENCY_BUCKETS.forEach((bound, index) => {
        cumulative += series.buckets[index] ?? 0;
        lines.push(
          `kmsd_rpc_duration_seconds_bucket{${series.labels},le="${bound}"} ${cumulative}`,
        );
      });
      lines.push(
        `kmsd_rpc_duration_seconds_bucket{${series.labels},le="+Inf"} ${series.count}`,
        `kmsd_rpc_duration_seconds_sum{${series.labels}} ${series.sum}`,
        `kmsd_rpc_duration_seconds_count{${series.labels}} ${series.count}`,
      );
    }
    lines.push(
      "# HELP kmsd_rejected_requests_total Requests refused before any RPC ran (unknown path, wrong method, unreadable body), by protocol and code.",
      "# TYPE kmsd_rejected_requests_total counter",
    );
    for (const [protocol, byCode] of this.rejections) {
      for (const [code, count] of byCode) {
        lines.push(`kmsd_rejected_requests_total{${labelSet({ protocol, code })}} ${count}`);
      }
    }
    return `${lines.join("\n")}\n`;
  }
}

/** Label pairs in the exposition format, values escaped as it requires. */
function labelSet(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([name, value]) => `${name}="${value.replace(/[\\"\n]/g, escapeChar)}"`)
    .join(",");
}

function escapeChar(char: string): string {
  return char === "\n" ? "\\n" : `\\${char}`;
}
