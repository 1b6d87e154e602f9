// Records the URL of every module a Node process imports, one a line, in the file named by
// $AZE_IMPORTS_LOG: how a test sees which modules a command loads, without timing it.
// Given as `node --import <this file's URL>`: in the main thread it registers itself as
// module hooks; in the hooks thread its `resolve` hook appends each URL it resolves.
import { appendFileSync } from "node:fs";
import { register } from "node:module";
import { isMainThread } from "node:worker_threads";

if (isMainThread) register(import.meta.url);

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  if (process.env.AZE_IMPORTS_LOG) appendFileSync(process.env.AZE_IMPORTS_LOG, `${result.url}\n`);
  return result;
}
