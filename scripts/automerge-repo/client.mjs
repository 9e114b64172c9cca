// The load client of tests/src/bin/load_bench.rs against automerge-repo's sync server
// (server.mjs), in a process of its own so that its CPU time is not the server's.
//
//   node client.mjs load --url ws://127.0.0.1:PORT --clients C --docs D --edits E
//     C clients (each a Repo with its own WebSocket) each create D documents shaped like a
//     plan's action list and wait until the server holds them; then print `ready` and wait
//     for a `go` line on stdin. Each client then makes E small edits to each of its documents
//     (an action's due date, a value it never had), one at a time, and waits after each until
//     the server's heads, from its sync messages, equal the document's: the server has taken
//     the change. Prints `done CHANGES FAILED MILLIS` (FAILED: edits not acknowledged within
//     30 s) and ends when stdin closes.
//   node client.mjs idle --url ws://127.0.0.1:PORT --connections K
//     K repos each open a WebSocket and join; prints `connected K` once the server answered
//     every join, then holds the sockets open, idle, until stdin closes.
import { createInterface } from "node:readline"
import { Repo } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"

const ACK_LIMIT_MS = 30_000

function option(name) {
  const i = process.argv.indexOf(`--${name}`)
  if (i < 0 || i + 1 >= process.argv.length) {
    console.error(`--${name} is missing`)
    process.exit(2)
  }
  return process.argv[i + 1]
}

/** A repo connected to the server, and the server's peer id once it answered the join. */
async function connect(url) {
  const repo = new Repo({ network: [new WebSocketClientAdapter(url)], sharePolicy: async () => true })
  const server = await new Promise(resolve => repo.networkSubsystem.once("peer", ({ peerId }) => resolve(peerId)))
  return { repo, server }
}

const same = (a, b) => a !== undefined && b !== undefined && [...a].sort().join() === [...b].sort().join()

/** Resolves true once the server's last sync message named the handle's heads, false after the limit. */
function acknowledged(handle, storageId) {
  const done = () => same(handle.getSyncInfo(storageId)?.lastHeads, handle.heads())
  if (done()) return Promise.resolve(true)
  return new Promise(resolve => {
    const timer = setTimeout(() => {
      handle.off("remote-heads", check)
      resolve(false)
    }, ACK_LIMIT_MS)
    function check() {
      if (done()) {
        clearTimeout(timer)
        handle.off("remote-heads", check)
        resolve(true)
      }
    }
    handle.on("remote-heads", check)
  })
}

/** A due date for edit `k` that the action never had before. */
function due(k) {
  const year = 2027 + Math.floor(k / 336)
  const month = 1 + (Math.floor(k / 28) % 12)
  const day = 1 + (k % 28)
  return `${year}-${String(month).padStart(2, "0")}-${String(day).padStart(2, "0")}`
}

function waitForLine(lines, expected) {
  return new Promise(resolve => {
    const on = line => {
      if (line.trim() === expected) {
        lines.off("line", on)
        resolve()
      }
    }
    lines.on("line", on)
  })
}

async function load(lines) {
  const url = option("url")
  const [clients, docs, edits] = ["clients", "docs", "edits"].map(n => Number(option(n)))
  const peers = await Promise.all(Array.from({ length: clients }, () => connect(url)))
  const setups = peers.map(async ({ repo, server }, c) => {
    const storageId = repo.getStorageIdOfPeer(server)
    if (!storageId) throw new Error("the server announced no storage id")
    const handles = []
    for (let d = 0; d < docs; d++) {
      const handle = repo.create({
        title: `Gezin ${c}-${d}`,
        actions: [{ title: "Stap 0 voor doel 0", owner: "Wijkteam Noord", due: "2026-06-01", status: "todo" }],
      })
      if (!(await acknowledged(handle, storageId))) throw new Error("the server never took a new document")
      handles.push(handle)
    }
    return { storageId, handles }
  })
  const ready = await Promise.all(setups)
  console.log("ready")
  await waitForLine(lines, "go")
  const started = Date.now()
  let changes = 0
  let failed = 0
  await Promise.all(
    ready.map(async ({ storageId, handles }) => {
      for (let k = 0; k < edits; k++) {
        for (const handle of handles) {
          handle.change(d => {
            d.actions[0].due = due(k)
          })
          if (await acknowledged(handle, storageId)) changes++
          else failed++
        }
      }
    }),
  )
  console.log(`done ${changes} ${failed} ${Date.now() - started}`)
}

async function idle() {
  const url = option("url")
  const connections = Number(option("connections"))
  await Promise.all(Array.from({ length: connections }, () => connect(url)))
  console.log(`connected ${connections}`)
}

const lines = createInterface({ input: process.stdin })
lines.on("close", () => process.exit(0))
const mode = process.argv[2]
if (mode === "load") await load(lines)
else if (mode === "idle") await idle()
else {
  console.error("usage: node client.mjs load|idle --url URL …")
  process.exit(2)
}
