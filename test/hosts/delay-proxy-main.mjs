// The delay proxy process: a TCP proxy that forwards every chunk, in each direction, a set
// delay after it arrived, and can hold all forwarding for a while (a stall).
//
// Owns: forwarding between the connections it accepts and the target, in order per connection
// and direction, and its control channel. Never: changes, drops or reorders bytes; outlives its
// controller (stdin closing ends it).
//
// Plain JavaScript because it runs with plain `node`, possibly through `ip netns exec` inside a
// simulated host, and test/ is not compiled to dist/. delay-proxy.ts starts and drives it.
//
// Usage: node delay-proxy-main.mjs <listenHost> <listenPort|0> <targetHost> <targetPort> <delayMs>
// Prints "listening <port>" once it accepts connections (or "error <message>" and exits 1).
// Control, one command per stdin line, each answered by one stdout line, in order:
//   delay <ms>  every chunk arriving from now on waits <ms>      -> "ok"
//   stall <ms>  nothing is forwarded for <ms> from now; then what queued goes, in order -> "ok"
//   stats       -> "stats {"accepted":n,"open":n,"upBytes":n,"downBytes":n}" (up: towards the target)
import { createServer, connect } from "node:net";
import { createInterface } from "node:readline";

const [listenHost, listenPort, targetHost, targetPort, delayArg] = process.argv.slice(2);
if (delayArg === undefined) {
  process.stdout.write("error usage: delay-proxy-main.mjs <listenHost> <listenPort> <targetHost> <targetPort> <delayMs>\n");
  process.exit(1);
}

// A monotonic clock: wall-clock steps must not release data early.
const now = () => performance.now();
let delayMs = Number(delayArg);
let holdUntil = 0;
const stats = { accepted: 0, open: 0, upBytes: 0, downBytes: 0 };
const sockets = new Set();

/** Forwards what `from` sends to `to`, each chunk `delayMs` after it arrived and never during a stall. */
function forward(from, to, counter) {
  const queue = []; // { due, chunk } in arrival order; chunk null is the end of the stream
  let timer;
  const pump = () => {
    timer = undefined;
    const t = now();
    // Only the head may go: a chunk that came later never overtakes one queued before it,
    // even when the delay was lowered in between.
    while (queue.length > 0 && queue[0].due <= t && holdUntil <= t) {
      const { chunk } = queue.shift();
      if (chunk === null) {
        to.end();
        continue;
      }
      stats[counter] += chunk.length;
      if (!to.write(chunk) && !from.isPaused()) {
        // The receiver is slower than the sender: stop reading until it catches up.
        from.pause();
        to.once("drain", () => from.resume());
      }
    }
    schedule();
  };
  // A stall that starts after the timer was set needs no rescheduling: pump finds holdUntil
  // in the future, forwards nothing and sets the next timer at the stall's end.
  const schedule = () => {
    if (timer !== undefined || queue.length === 0) return;
    timer = setTimeout(pump, Math.max(0, Math.max(queue[0].due, holdUntil) - now()));
  };
  from.on("data", (chunk) => {
    queue.push({ due: now() + delayMs, chunk });
    schedule();
  });
  from.on("end", () => {
    queue.push({ due: now() + delayMs, chunk: null });
    schedule();
  });
  return () => {
    clearTimeout(timer);
    queue.length = 0;
  };
}

const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  stats.accepted++;
  stats.open++;
  // Writes to a socket still connecting are buffered by node, so forwarding starts at once.
  const target = connect({ host: targetHost, port: Number(targetPort), allowHalfOpen: true, noDelay: true });
  sockets.add(client);
  sockets.add(target);
  const stopUp = forward(client, target, "upBytes");
  const stopDown = forward(target, client, "downBytes");
  let closed = 0;
  const onClose = () => {
    if (++closed === 2) stats.open--;
  };
  // A reset or failed connect on one side ends both: the peer would otherwise wait forever.
  const fail = () => {
    stopUp();
    stopDown();
    client.destroy();
    target.destroy();
  };
  for (const socket of [client, target]) {
    socket.on("error", fail);
    socket.on("close", () => {
      sockets.delete(socket);
      onClose();
    });
  }
});

server.on("error", (err) => {
  process.stdout.write(`error ${err.message}\n`);
  process.exit(1);
});

server.listen(Number(listenPort), listenHost, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

const control = createInterface({ input: process.stdin });
control.on("line", (line) => {
  const [command, arg] = line.trim().split(/\s+/);
  const ms = Number(arg);
  if (command === "delay" && ms >= 0) {
    delayMs = ms;
    process.stdout.write("ok\n");
  } else if (command === "stall" && ms >= 0) {
    holdUntil = Math.max(holdUntil, now() + ms);
    process.stdout.write("ok\n");
  } else if (command === "stats") {
    process.stdout.write(`stats ${JSON.stringify(stats)}\n`);
  } else {
    process.stdout.write(`error unknown command "${line.trim()}": use delay <ms>, stall <ms> or stats\n`);
  }
});
// The controller is gone or done: close everything and leave.
control.on("close", () => {
  server.close();
  for (const socket of sockets) socket.destroy();
  process.exit(0);
});
