// The one reporting hook for warnings: library code calls `warn`, never writes to stderr itself.
// The CLI prints them; a program using the library sets its own handler (or keeps Node's default,
// process.emitWarning, which `process.on('warning')` and --no-warnings control).
export type WarningHandler = (message: string, source: string) => void;

const emit: WarningHandler = (message, source) => process.emitWarning(message, { type: 'FngdWarning', code: source });
let handler: WarningHandler = emit;

/** Reports a warning from `source` (e.g. 'KFAC') through the current handler. */
export function warn(source: string, message: string): void {
  handler(message, source);
}

/** Replaces the warning handler (null: back to process.emitWarning); returns the previous one. */
export function setWarningHandler(h: WarningHandler | null): WarningHandler {
  const previous = handler;
  handler = h ?? emit;
  return previous;
}
