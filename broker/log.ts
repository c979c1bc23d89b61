// One pino logger for the process; modules take child loggers named after themselves.
import { pino, type Logger } from 'pino'

export type { Logger }

export function createLogger (level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { name: 'roundgate' } }, destination ?? process.stdout)
}
