// The data-loader actor. Owns: memory-mapped token shards; serves micro-batches as a pure function of (seed, step, group, index).
// Until distributed training lands it only lives: registers, heartbeats, obeys stop.
import { Actor } from "../runtime/actor.js";

export class DataLoader extends Actor {}
