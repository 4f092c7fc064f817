import { once } from "node:events";
import net from "node:net";
import { setImmediate as nextTurn } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { AnswerBatch } from "../../src/transport/http1/answer-batch.js";

/** Connected socket pairs over loopback: the server's side, and what its client receives. */
async function socketPairs(count: number) {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as net.AddressInfo;
  const pairs: { socket: net.Socket; client: net.Socket; received: () => string }[] = [];
  for (let i = 0; i < count; i++) {
    const accepted = once(server, "connection");
    const client = net.connect(port, "127.0.0.1");
    const [socket] = (await accepted) as [net.Socket];
    let text = "";
    client.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
    });
    pairs.push({ socket, client, received: () => text });
  }
  cleanups.push(() => {
    for (const { socket, client } of pairs) {
      socket.destroy();
      client.destroy();
    }
    server.close();
  });
  return pairs;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function until(condition: () => boolean): Promise<void> {
  for (let waited = 0; !condition(); waited += 5) {
    if (waited > 5000) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("AnswerBatch", () => {
  it("keeps what a turn writes to a socket until the turn ends, then sends it in order", async () => {
    const [pair] = await socketPairs(1);
    const { socket, received } = pair as NonNullable<typeof pair>;
    const batch = new AnswerBatch();
    batch.hold(socket);
    socket.write("first ");
    batch.hold(socket);
    socket.write("second");
    // Held once however often it is asked, and nothing has left yet.
    expect(socket.writableCorked).toBe(1);
    expect(socket.writableLength).toBe("first second".length);
    await nextTurn();
    expect(socket.writableCorked).toBe(0);
    await until(() => received().length === "first second".length);
    expect(received()).toBe("first second");
  });

  it("releases every socket held in the turn, and holds them again in a later one", async () => {
    const pairs = await socketPairs(3);
    const batch = new AnswerBatch();
    for (const [i, { socket }] of pairs.entries()) {
      batch.hold(socket);
      socket.write(`answer ${i}`);
    }
    expect(pairs.map(({ socket }) => socket.writableCorked)).toEqual([1, 1, 1]);
    await nextTurn();
    expect(pairs.map(({ socket }) => socket.writableCorked)).toEqual([0, 0, 0]);
    await until(() => pairs.every(({ received }) => received().length > 0));
    expect(pairs.map(({ received }) => received())).toEqual(["answer 0", "answer 1", "answer 2"]);

    const [first] = pairs;
    const { socket, received } = first as NonNullable<typeof first>;
    batch.hold(socket);
    socket.write(", again");
    expect(socket.writableCorked).toBe(1);
    await nextTurn();
    await until(() => received() === "answer 0, again");
  });

  it("sends a held answer before the close that follows it in the same turn", async () => {
    const [pair] = await socketPairs(1);
    const { socket, client, received } = pair as NonNullable<typeof pair>;
    const ended = once(client, "end");
    const batch = new AnswerBatch();
    batch.hold(socket);
    socket.write("last answer");
    socket.end();
    await ended;
    expect(received()).toBe("last answer");
    // The turn's release finds the socket ended and leaves it be.
    await nextTurn();
    expect(socket.writableCorked).toBe(0);
  });
});
