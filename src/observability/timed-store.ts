import { performance } from "node:perf_hooks";

/** Told of every store operation: its method name, duration and whether it failed. */
export type StoreOperationObserver = (operation: string, seconds: number, failed: boolean) => void;

/**
 * The store with every method timed. A proxy rather than a hand-written
 * wrapper, so that methods added to the store contract later (and other
 * backends' extra methods) are timed without anyone remembering to. Each
 * method is wrapped once, on first use; the store's own methods run with
 * the store itself as `this` (its private fields are not reachable through
 * a proxy).
 */
export function timeStore<T extends object>(store: T, observe: StoreOperationObserver): T {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== "function" || typeof property !== "string") return value;
      let timed = wrapped.get(property);
      if (timed === undefined) {
        timed = timeMethod(target, property, value as (...args: unknown[]) => unknown, observe);
        wrapped.set(property, timed);
      }
      return timed;
    },
  });
}

function timeMethod(
  target: object,
  name: string,
  method: (...args: unknown[]) => unknown,
  observe: StoreOperationObserver,
): (...args: unknown[]) => unknown {
  return (...args) => {
    const started = performance.now();
    const finish = (failed: boolean) => observe(name, (performance.now() - started) / 1000, failed);
    let result: unknown;
    try {
      result = method.apply(target, args);
    } catch (error) {
      finish(true);
      throw error;
    }
    if (!(result instanceof Promise)) {
      finish(false);
      return result;
    }
    return result.then(
      (value: unknown) => {
        finish(false);
        return value;
      },
      (error: unknown) => {
        finish(true);
        throw error;
      },
    );
  };
}
