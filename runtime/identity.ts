// Who is who in a run: one NATS identity per actor, that the server itself enforces.
//
// Owns: the run's keys in NATS's decentralised auth (an operator, a system account, the
// run's account and its signing key, "the issuer"), the server config lines that trust
// them, and minting a user JWT whose publish and subscribe permissions name one actor's own
// subjects (subjects.ts says which). Uses the NATS project's own nkeys/JWT library, so the
// tokens are exactly what nats-server verifies.
// Never: decides who may be given what; `cluster up` mints the fixed identities and the
// coordinator mints one per actor it places (actors/coordinator.ts).
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { createAccount, createOperator, createUser, encodeAccount, encodeOperator, encodeUser, fromPublic, fromSeed, type KeyPair } from "@nats-io/jwt";
import { UserError } from "./errors.js";
import { permissionsFor, type Role } from "./subjects.js";

/** What an identity proves itself with: a user JWT and, when we made its key, the key's seed. */
export interface Identity {
  /** The actor id ("compute-3", "coordinator", "agent-host"), or "client" / "worker". */
  name: string;
  jwt: string;
  seed?: string;
}

/** The signing key of a run's account: whoever holds it can mint any identity of the run. */
export interface Issuer {
  run: string;
  /** The run account's public key: every user JWT names it as its account. */
  account: string;
  /** The seed of the account's signing key. */
  seed: string;
}

/** The run's trust root, as the server config states it. */
export interface Authority {
  issuer: Issuer;
  /** Lines for nats-server.conf: the operator, the accounts, the memory resolver. */
  serverConfig: string;
}

/**
 * New keys for a run, and the server config that trusts them. `maxPayloadBytes` is the
 * largest message any member may send (the codec chunks tensors below it).
 */
export async function createAuthority(run: string, maxPayloadBytes: number): Promise<Authority> {
  const operator = createOperator();
  const system = createAccount();
  const account = createAccount();
  const signer = createAccount();
  const unlimited = { subs: -1, conn: -1, leaf: -1, imports: -1, exports: -1, data: -1, wildcards: true };
  const operatorJwt = await encodeOperator(`aze-${run}`, operator, { system_account: system.getPublicKey() });
  const systemJwt = await encodeAccount("SYS", system, { limits: { ...unlimited, payload: -1 } }, { signer: operator });
  const accountJwt = await encodeAccount(
    run,
    account,
    { signing_keys: [signer.getPublicKey()], limits: { ...unlimited, payload: maxPayloadBytes } },
    { signer: operator },
  );
  const serverConfig = [
    `operator: ${operatorJwt}`,
    `system_account: ${system.getPublicKey()}`,
    "resolver: MEMORY",
    "resolver_preload: {",
    `  ${account.getPublicKey()}: ${accountJwt}`,
    `  ${system.getPublicKey()}: ${systemJwt}`,
    "}",
  ].join("\n");
  return { issuer: { run, account: account.getPublicKey(), seed: decode(signer.getSeed()) }, serverConfig };
}

/**
 * A user JWT for `name` in `role`, signed by the issuer. With `publicKey`, the identity is
 * bound to a key someone else made (and keeps: `worker join` makes its own), and no seed is
 * returned; without, a new key is made and its seed returned with the token. `perms`
 * defaults to the role's (subjects.ts); benchmarks and tests may name their own.
 */
export async function mintIdentity(
  issuer: Issuer,
  role: Role,
  name: string,
  publicKey?: string,
  perms = permissionsFor(role, issuer.run, name),
): Promise<Identity> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(name)) throw new Error(`"${name}" cannot name an identity: letters, digits, - and _ only`);
  const key: KeyPair = publicKey ? fromPublic(publicKey) : createUser();
  const jwt = await encodeUser(
    name,
    key,
    issuer.account,
    {
      pub: { allow: perms.publish },
      sub: { allow: perms.subscribe },
      // Replies: a request's responder may answer on the requester's inbox, once, for as long
      // as the slowest reply takes (a checkpoint write of a large slice), and on nothing else.
      ...(perms.respond ? { resp: { max: 1, ttl: 15 * 60 * 1e9 } } : {}),
      subs: -1,
      data: -1,
      payload: -1,
    },
    { signer: fromSeed(new TextEncoder().encode(issuer.seed)) },
  );
  return { name, jwt, ...(publicKey ? {} : { seed: decode(key.getSeed()) }) };
}

/** A fresh user key for an identity to be minted elsewhere: the seed never leaves this process. */
export function newUserKey(): { publicKey: string; seed: string } {
  const key = createUser();
  return { publicKey: key.getPublicKey(), seed: decode(key.getSeed()) };
}

export function writeIssuer(file: string, issuer: Issuer): void {
  writeFileSync(file, `${JSON.stringify(issuer, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}

export function readIssuer(file: string): Issuer {
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as Partial<Issuer>;
    if (typeof parsed.run === "string" && typeof parsed.account === "string" && typeof parsed.seed === "string") return parsed as Issuer;
  } catch (err) {
    throw new UserError(`cannot read the run's issuer key ${file}: ${(err as Error).message}. Only the host that ran \`cluster up\` holds it.`);
  }
  throw new UserError(`${file} is not a run's issuer key (needs run, account and seed): it was damaged; start the run again.`);
}

function decode(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
