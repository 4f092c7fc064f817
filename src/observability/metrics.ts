import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type PrometheusContentType,
  Registry,
} from "prom-client";
import type { CallInfo } from "../transport/call-info.js";
import type { FinishedRpc, RequestObserver } from "./request-observer.js";
import { RpcMetrics } from "./rpc-metrics.js";

/** What the gauges and cache counters read at scrape time. */
export interface MetricSources {
  readonly keyCache: { readonly hits: number; readonly misses: number; readonly size: number };
  readonly auditBacklog: () => number;
  /** Audit records written to the store since start. */
  readonly auditWritten: () => number;
  /** True while the store answers and kmsd is not shutting down. */
  readonly serving: () => boolean;
}

const STORE_LATENCY_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

/**
 * kmsd's Prometheus metrics (GET /metrics). Each server has its own
 * registry, so several servers in one process (the tests) do not collide.
 * Nothing is labelled by key, project or principal.
 */
export class KmsdMetrics implements RequestObserver {
  readonly registry = new Registry<PrometheusContentType>();
  private readonly rpcs = new RpcMetrics();
  private readonly storeDuration: Histogram<"operation">;
  private readonly storeErrors: Counter<"operation">;
  private sources: MetricSources | undefined;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const read = (value: (sources: MetricSources) => number) => () =>
      this.sources === undefined ? 0 : value(this.sources);
    counterOf(
      registers,
      "kmsd_key_cache_hits_total",
      "Key lookups the key cache answered",
      read((s) => s.keyCache.hits),
    );
    counterOf(
      registers,
      "kmsd_key_cache_misses_total",
      "Key lookups that went to the store",
      read((s) => s.keyCache.misses),
    );
    gaugeOf(
      registers,
      "kmsd_key_cache_keys",
      "Keys held in the key cache",
      read((s) => s.keyCache.size),
    );
    gaugeOf(
      registers,
      "kmsd_audit_backlog",
      "Audit records waiting to be written to the store",
      read((s) => s.auditBacklog()),
    );
    counterOf(
      registers,
      "kmsd_audit_records_written_total",
      "Audit records written to the store",
      read((s) => s.auditWritten()),
    );
    gaugeOf(
      registers,
      "kmsd_serving",
      "1 while the store answers and kmsd is not shutting down, else 0",
      read((s) => (s.serving() ? 1 : 0)),
    );
    this.storeDuration = new Histogram({
      name: "kmsd_store_operation_duration_seconds",
      help: "Duration of store operations, by operation",
      labelNames: ["operation"],
      buckets: STORE_LATENCY_BUCKETS,
      registers,
    });
    this.storeErrors = new Counter({
      name: "kmsd_store_operation_errors_total",
      help: "Store operations that failed, by operation",
      labelNames: ["operation"],
      registers,
    });
  }

  /** Connects the scrape-time readings to the running server's parts. */
  watch(sources: MetricSources): void {
    this.sources = sources;
  }

  rpcFinished(rpc: FinishedRpc): void {
    this.rpcs.record(rpc.method, rpc.call?.protocol ?? "none", rpc.outcome, rpc.latencyUs);
  }

  rejected(call: CallInfo, _projectId: string, code: string): void {
    this.rpcs.reject(call.protocol, code);
  }

  /** For the store decorator (observability/timed-store.ts). */
  readonly storeOperation = (operation: string, seconds: number, failed: boolean): void => {
    this.storeDuration.observe({ operation }, seconds);
    if (failed) this.storeErrors.inc({ operation });
  };

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text: prom-client's metrics, then the per-request series. */
  async render(): Promise<string> {
    return `${await this.registry.metrics()}${this.rpcs.render()}`;
  }
}

// Values read from their owner at scrape time: nothing to do on the hot path.

function counterOf(registers: Registry[], name: string, help: string, value: () => number): void {
  new Counter({
    name,
    help,
    registers,
    collect() {
      this.reset();
      this.inc(value());
    },
  });
}

function gaugeOf(registers: Registry[], name: string, help: string, value: () => number): void {
  new Gauge({
    name,
    help,
    registers,
    collect() {
      this.set(value());
    },
  });
}
