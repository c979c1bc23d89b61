#!/usr/bin/env node
// Thin launcher: the CLI is written in TypeScript and compiled to dist/ by `npm ci` (prepare).
import { main } from '../dist/broker/cli.js'

main(process.argv.slice(2)).then((code) => {
  process.exit(typeof code === "number" ? code : 0)
}, (err) => {
  console.error(err && err.stack ? err.stack : String(err))
  process.exitCode = 1
})
