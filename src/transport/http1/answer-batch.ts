import type { Socket } from "node:net";

/**
 * Holds the answers written to HTTP/1.1 connections during one turn of the
 * event loop and sends them when the turn's I/O callbacks are done
 * (setImmediate), each connection's in one write.
 *
 * Why: answering each request as soon as it is ready cost one socket write
 * per answer, and each write to a client waiting in its poll wakes it, which
 * on a virtual machine is a trip through the hypervisor; that wake-up was a
 * third of a small REST request's CPU. Answers that leave together wake a
 * client once, and a client that gets several answers at once sends its next
 * requests together too, which the next turn then reads together. HTTP/2
 * needs none of this: node's session already writes its frames once per
 * turn. An answer waits at most for the other requests its turn is serving
 * (docs/benchmarks.md#http11-answers-once-per-turn).
 *
 * Corking keeps every write to a socket in order, kmsd's and node's alike
 * (a connection handed to node's http server mid-turn included), and end()
 * uncorks before it closes, so an answer written just before a close still
 * goes out first; destroy() drops it, as it would drop any unsent bytes.
 */
export class AnswerBatch {
  readonly #held = new Set<Socket>();

  /** Holds what is written to `socket` from now until the end of this turn. */
  hold(socket: Socket): void {
    if (this.#held.has(socket)) return;
    if (this.#held.size === 0) setImmediate(this.#release);
    this.#held.add(socket);
    socket.cork();
  }

  readonly #release = (): void => {
    // Emptied first: a socket held again from here on waits for the next turn.
    const held = [...this.#held];
    this.#held.clear();
    for (const socket of held) socket.uncork();
  };
}
