import type { Interceptor } from "@connectrpc/connect";
import { cryptographic_operation } from "../../gen/kms/v1/rules_pb.js";
import type { KmsdConfig } from "../config/settings.js";
import { kmsError } from "../errors/kms-error.js";
import { optionOf } from "../proto/options.js";
import { projectIdOf } from "./auth.js";
import { guardInterceptor } from "./guard.js";
import type { RateLimit, TokenBuckets } from "./token-buckets.js";

/**
 * The rate limit one server process enforces, from the settings: none when
 * --rate-limit-per-second is 0. With --workers N each process has its own
 * buckets, so each takes 1/N of the rate and of the burst (connections are
 * spread over the workers, and with them a project's requests).
 */
export function processRateLimit(
  config: Pick<KmsdConfig, "rateLimitPerSecond" | "rateLimitBurst">,
  processes: number,
): RateLimit | undefined {
  if (config.rateLimitPerSecond === 0) return undefined;
  const burst = config.rateLimitBurst === 0 ? config.rateLimitPerSecond : config.rateLimitBurst;
  return {
    perSecond: config.rateLimitPerSecond / processes,
    burst: Math.max(1, burst / processes),
  };
}

/**
 * Refuses a cryptographic operation (an RPC whose proto declares
 * (kms.v1.cryptographic_operation)) when its project's token bucket is
 * empty: APIGW.0308, REST 429 and gRPC/Connect ResourceExhausted, with
 * Retry-After in whole seconds. It runs after authorization, so the
 * project it charges is the caller's own and well formed; every protocol
 * reaches it through the same chain, and the audit and observe
 * interceptors around it record the refusal like any other.
 */
export function rateLimitInterceptor(buckets: TokenBuckets): Interceptor {
  return guardInterceptor((request) => {
    if (request.stream || !optionOf(request.method, cryptographic_operation)) return;
    const waitMs = buckets.take(projectIdOf(request.message));
    if (waitMs > 0) {
      throw kmsError(
        "APIGW.0308",
        "the project's rate limit of cryptographic operations is reached",
        {
          metadata: { "retry-after": String(Math.max(1, Math.ceil(waitMs / 1000))) },
        },
      );
    }
  });
}
