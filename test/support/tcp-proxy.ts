import net from "node:net";

/**
 * A TCP proxy in front of PostgreSQL that a test can stop and start again
 * on the same port: stopped, it closes every connection it carried and
 * refuses new ones, as a database that went away would; started, it
 * forwards again. The shared server behind it never notices.
 */
export class TcpProxy {
  #server: net.Server | undefined;
  readonly #sockets = new Set<net.Socket>();
  readonly #upstreams = new Set<net.Socket>();
  #port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  get port(): number {
    return this.#port;
  }

  /**
   * The local ports of the proxy's connections to the server: what
   * pg_stat_activity shows as their client_port, so a test can find the
   * server processes serving exactly the clients behind this proxy.
   */
  upstreamPorts(): number[] {
    return [...this.#upstreams].flatMap((socket) => socket.localPort ?? []);
  }

  /** Listens (on a random port the first time, then on the same one again). */
  async start(): Promise<number> {
    const server = net.createServer((client) => this.#forward(client));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#port, "127.0.0.1", () => resolve());
    });
    this.#server = server;
    this.#port = (server.address() as net.AddressInfo).port;
    return this.#port;
  }

  /** Stops listening and cuts every connection (both sides, at once). */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    this.#upstreams.clear();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #forward(client: net.Socket): void {
    const upstream = net.connect(this.targetPort, this.targetHost);
    this.#upstreams.add(upstream);
    upstream.on("close", () => this.#upstreams.delete(upstream));
    for (const socket of [client, upstream]) {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
      // A cut connection is the point: its errors are expected.
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
