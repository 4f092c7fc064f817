#!/usr/bin/env node
// The kmsd command. Runs the compiled CLI (npm ci / npm run build write dist/).
import cluster from "node:cluster";
import { main } from "../dist/src/cli/main.js";

process.exitCode = await main(process.argv.slice(2), process.env);
// A --workers worker's channel to its primary would keep it alive.
if (cluster.isWorker) cluster.worker?.disconnect();
