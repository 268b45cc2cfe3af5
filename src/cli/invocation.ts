/**
 * The arguments main() was called with: `lilio mount` re-runs them in its
 * detached child. They are process.argv, except under mount.lilio, which
 * calls main() with the `lilio mount` arguments it translated from mount(8)'s.
 */
export const invocation = { argv: process.argv };
