// automerge-repo's sync server, set up as @automerge/automerge-repo-sync-server sets it up: a
// Repo on a NodeWSServerAdapter with nodefs storage that announces no document to peers
// (`sharePolicy` false: a peer gets a document only when it asks for it by id).
//
//   node server.mjs --data DIR [--port N]
//
// Prints `listening on PORT` once the socket is bound. Then reads commands, one a line, on
// stdin: `flush` saves every document to storage now and answers `flushed`. It ends when stdin
// closes. Used by tests/src/bin/load_bench.rs, which measures this process's CPU time and RSS.
import { createInterface } from "node:readline"
import { WebSocketServer } from "ws"
import { Repo } from "@automerge/automerge-repo"
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback
}

const data = option("data")
if (!data) {
  console.error("usage: node server.mjs --data DIR [--port N]")
  process.exit(2)
}
const socket = new WebSocketServer({ host: "127.0.0.1", port: Number(option("port", "0")) })
const repo = new Repo({
  network: [new NodeWSServerAdapter(socket)],
  storage: new NodeFSStorageAdapter(data),
  peerId: `storage-server-load-bench`,
  sharePolicy: async () => false,
})

socket.on("listening", () => console.log(`listening on ${socket.address().port}`))

const commands = createInterface({ input: process.stdin })
commands.on("line", async line => {
  if (line.trim() === "flush") {
    await repo.flush()
    console.log("flushed")
  }
})
commands.on("close", () => {
  socket.close()
  process.exit(0)
})
