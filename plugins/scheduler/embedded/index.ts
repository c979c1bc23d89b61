// The embedded store's parts, for the store itself and its tests (the rest of the program enters
// through plugins/scheduler/index.ts).
export { DB_FILE, openDatabase, StoreFileError, type Db, type Durability, type Opened, type OpenOptions } from './db.js'
export { MIGRATIONS } from './schema.js'
export { configFrom, doneFrom, jobFrom, releaseSchema, Rows, scalarsFrom, summarySchema, terminalFrom, Where } from './rows.js'
export { MIN_HISTORY, parseSummary, SqlHistory, type HistoryQuery } from './history.js'
export { importStateFile, STATE_FILE } from './import-json.js'
