// The compute actor. Owns: a backend (WebAssembly or CUDA) and a copy of the parameters; computes gradient contributions.
// Until distributed training lands it only lives: registers, heartbeats, obeys stop.
import { Actor } from "../runtime/actor.js";

export class Compute extends Actor {}
