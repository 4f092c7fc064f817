/** The store was written by a newer kmsd; opening it could corrupt it. */
export class SchemaVersionError extends Error {
  constructor(
    readonly storeVersion: number,
    readonly codeVersion: number,
  ) {
    super(
      `key store schema version ${storeVersion} is newer than this kmsd supports ` +
        `(${codeVersion}); upgrade kmsd to open it`,
    );
    this.name = "SchemaVersionError";
  }
}
