import { Duplex } from "node:stream";

/** Two in-memory streams, each one's writes the other's reads. */
export function duplexPair(): [Duplex, Duplex] {
  const sides: Duplex[] = [];
  const side = (other: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk, _encoding, callback) {
        other().push(chunk);
        callback();
      },
      final(callback) {
        other().push(null);
        callback();
      },
      destroy(error, callback) {
        other().destroy();
        callback(error);
      },
    });
  sides.push(
    side(() => sides[1] as Duplex),
    side(() => sides[0] as Duplex),
  );
  return [sides[0] as Duplex, sides[1] as Duplex];
}
