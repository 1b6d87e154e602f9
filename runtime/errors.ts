// User-facing errors.
//
// Owns: the one error type whose message is shown to a user as a single line, without a
// stack trace. Anything else that reaches the CLI is a bug and is shown with its stack.

/** A mistake the user can fix: the message says what is wrong, where, and what to do. */
export class UserError extends Error {
  override readonly name = "UserError";
  readonly exitCode = 1;
}
