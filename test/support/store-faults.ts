import type { Store } from "../../src/keystore/types.js";

/**
 * A store whose ping() can be made to fail, as a database that went away
 * would (for createServer's decorateStore option). Everything else is the
 * real store.
 */
export class PingFault {
  failing = false;

  readonly decorate = (store: Store): Store =>
    new Proxy(store, {
      get: (target, property) => {
        if (property === "ping") {
          return async () => {
            if (this.failing) throw new Error("connection refused (injected by the test)");
            await target.ping();
          };
        }
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
}

/** Polls until `condition` holds; fails after `timeoutMs`. */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
