// The NATS connection layer: connect with credentials, reconnect forever, drain on close.
//
// Owns: how every aze-run process (actors, CLI, dashboard) connects to a run's server, and
// sending tensors with the codec. Never: decides what a message means.
import { connect, jwtAuthenticator, type NatsConnection, type Msg } from "@nats-io/transport-node";
import type { z } from "zod";
import { decodeChecked, encodeMessage, encodeTensorChunks, type Tensor } from "./codec.js";
import { UserError } from "./errors.js";
import type { Secret } from "./nats-server.js";
import { inboxPrefix } from "./subjects.js";

export type { NatsConnection, Msg };

export interface ConnectOptions {
  url: string;
  creds?: Secret;
  /** Shown in the server's connection list: `<run>/<actor id>`. */
  name: string;
  /**
   * Give up on the first connection after this long (ms; default 20 s, enough for a loaded
   * machine where a new process waits seconds for a core). Reconnects never give up.
   */
  timeoutMs?: number;
}

export async function connectNats(opts: ConnectOptions): Promise<NatsConnection> {
  const creds = opts.creds;
  // A minted identity proves itself with its token and key, and reads replies only under
  // its own inbox prefix (its permissions allow no other); a plain user uses the default.
  const auth = creds?.jwt
    ? { authenticator: jwtAuthenticator(creds.jwt, new TextEncoder().encode(creds.seed)), inboxPrefix: inboxPrefix(creds.name) }
    : { user: creds?.user, pass: creds?.password };
  try {
    return await connect({
      // A list of a run's servers, comma-separated: the first is this host's own; the others
      // (and every peer the servers tell of) are where to fail over when it dies.
      servers: opts.url.split(",").map((u) => u.trim()),
      noRandomize: true,
      name: opts.name,
      ...auth,
      // A run listening beyond loopback speaks TLS; its server is checked against the run's CA.
      ...(creds?.ca ? { tls: { ca: creds.ca } } : {}),
      timeout: opts.timeoutMs ?? 20_000,
      // A run must survive a restarted server: keep trying, every 250 ms.
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      pingInterval: 5000,
      maxPingOut: 3,
    });
  } catch (err) {
    const message = (err as Error).message ?? String(err);
    if (/auth|authorization/i.test(message))
      throw new UserError(
        `NATS at ${opts.url} refused the credentials${creds ? ` of "${creds.name}"` : " (none given)"}: use the creds file of this run (runs/<name>/creds/).`,
      );
    if (/certificate|self.signed/i.test(message))
      throw new UserError(
        `NATS at ${opts.url} speaks TLS with a certificate this client does not trust (${message}): use this run's credentials file (runs/<name>/creds/), which carries the run's CA.`,
      );
    throw new UserError(`cannot reach NATS at ${opts.url} (${message}): is the run up? Check \`aze-run cluster status\` or the --nats URL.`);
  }
}

/** Publishes a tensor as one or more chunks, under the server's max_payload. */
export function publishTensor(nc: NatsConnection, subject: string, tensor: Tensor, meta: unknown): number {
  let bytes = 0;
  for (const chunk of encodeTensorChunks(tensor, meta, nc.info?.max_payload ?? 1024 * 1024)) {
    nc.publish(subject, chunk);
    bytes += chunk.byteLength;
  }
  return bytes;
}

/**
 * A request with a msgpack body whose reply is checked against `reply`; throws a UserError
 * naming the subject on timeout, a CodecError when the reply has the wrong shape.
 */
export async function requestMessage<S extends z.ZodType>(nc: NatsConnection, subject: string, body: unknown, reply: S, timeoutMs = 5000): Promise<z.infer<S>> {
  try {
    const answer = await nc.request(subject, encodeMessage(body), { timeout: timeoutMs });
    return decodeChecked(reply, answer.data, `reply on ${subject}`);
  } catch (err) {
    if ((err as Error).name === "CodecError") throw err;
    throw new UserError(`no answer on ${subject} within ${timeoutMs} ms (${(err as Error).message}): is the run's coordinator up?`);
  }
}
