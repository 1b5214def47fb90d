/** Operator log on stderr: one line per event, `key=value` fields. Never a secret, a body or a header value. */
import { logFields } from '../shared/log/log-fields.js';

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

function format(level: string, message: string, fields: LogFields = {}): string {
  return `${new Date().toISOString()} ${level} drawbridge-defender: ${message}${logFields(fields)}\n`;
}

export function stderrLogger(): Logger {
  return {
    info: (m, f) => process.stderr.write(format('INFO', m, f)),
    warn: (m, f) => process.stderr.write(format('WARN', m, f)),
    error: (m, f) => process.stderr.write(format('ERROR', m, f)),
  };
}
