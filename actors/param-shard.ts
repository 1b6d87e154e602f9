// The param-shard actor. Owns: a contiguous slice of the flat parameter vector and its AdamW moments.
// Until distributed training lands it only lives: registers, heartbeats, obeys stop.
import { Actor } from "../runtime/actor.js";

export class ParamShard extends Actor {}
