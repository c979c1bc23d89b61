// The embedded store's SQLite schema, as a list of forward migrations: migration i (0-based) takes
// a database from schema version i to i + 1. A new version of roundgate only ever appends to this
// list; a database written by a newer roundgate (a version above the list) is refused.
//
// Every table is STRICT (a column holds only its declared type) and every JSON column is checked
// again when it is read (rows.ts). What each table holds:
//   schema_version  one row: the version of this schema the file is at
//   meta            key → value: facts about the file itself (which JSON state file was imported)
//   groups          one row per group: its scalars (phase, round, ...), small and rewritten often
//   configs         one row per group: its configuration (JSON; the payload may be 16 KiB)
//   tombstones      deleted groups → their last round (a group created again goes on from there)
//   terminals       the online terminals' durable fields (role, ready ticket, last round);
//                   lastSeen, load and meta are heartbeat data and live in memory only
//   releases        the release record of the round each group executes now (JSON, written once),
//                   and the last ready ticket handed out when it was released (taken_seq, below)
//   done            the done reports of the executing round, in arrival order
//   dropped         the participants the executing round lost, in order
//   history         one round summary per ended round (JSON), queried by round, outcome and age
//   jobs            PROTOCOL section 10, with the queue order (priority desc, then seq) indexed

export const MIGRATIONS: readonly string[] = [
  // 1: the first schema
  `
  CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
  ) STRICT;

  CREATE TABLE groups (
    name TEXT PRIMARY KEY NOT NULL,
    phase TEXT NOT NULL CHECK (phase IN ('WAITING', 'EXECUTING', 'RESET')),
    round INTEGER NOT NULL CHECK (round >= 0),
    released_at INTEGER,
    reset_until INTEGER,
    last_tick INTEGER NOT NULL,
    eval_tick INTEGER NOT NULL,
    missed INTEGER NOT NULL CHECK (missed >= 0),
    retry TEXT,
    updated_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE configs (
    name TEXT PRIMARY KEY NOT NULL,
    config TEXT NOT NULL
  ) STRICT;

  CREATE TABLE tombstones (
    name TEXT PRIMARY KEY NOT NULL,
    round INTEGER NOT NULL CHECK (round >= 0)
  ) STRICT;

  CREATE TABLE terminals (
    grp TEXT NOT NULL,
    id TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('small', 'boss')),
    ready_seq INTEGER NOT NULL CHECK (ready_seq >= 0),
    last_round INTEGER NOT NULL CHECK (last_round >= 0),
    PRIMARY KEY (grp, id)
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE releases (
    grp TEXT PRIMARY KEY NOT NULL,
    round INTEGER NOT NULL,
    record TEXT NOT NULL
  ) STRICT;

  CREATE TABLE done (
    grp TEXT NOT NULL,
    round INTEGER NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ok INTEGER NOT NULL CHECK (ok IN (0, 1)),
    result TEXT,
    at INTEGER NOT NULL,
    PRIMARY KEY (grp, id)
  ) STRICT;

  CREATE TABLE dropped (
    grp TEXT NOT NULL,
    round INTEGER NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (grp, id)
  ) STRICT;

  CREATE TABLE history (
    grp TEXT NOT NULL,
    round INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('completed', 'aborted', 'timeout')),
    ended_at INTEGER NOT NULL,
    summary TEXT NOT NULL,
    PRIMARY KEY (grp, round)
  ) STRICT;
  CREATE INDEX history_by_outcome ON history (grp, outcome, round);
  CREATE INDEX history_by_age ON history (ended_at);

  CREATE TABLE jobs (
    grp TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    submitted_at INTEGER NOT NULL,
    started_at INTEGER,
    ended_at INTEGER,
    attempts INTEGER NOT NULL CHECK (attempts >= 0),
    rounds TEXT NOT NULL,
    result TEXT,
    PRIMARY KEY (grp, id)
  ) STRICT;
  CREATE INDEX jobs_queue ON jobs (grp, priority DESC, seq) WHERE state = 'queued';
  CREATE INDEX jobs_by_seq ON jobs (grp, seq);
  `,
  // 2: a release no longer rewrites its participants' terminal rows in the deciding transaction
  // (10,000 row updates before the first release could leave): the rows of terminals it took keep
  // their ready ticket until the round ends, and taken_seq tells which tickets the release took
  // (a participant's ticket at most taken_seq). Rows written before this version are up to date.
  `
  ALTER TABLE releases ADD COLUMN taken_seq INTEGER NOT NULL DEFAULT 0 CHECK (taken_seq >= 0);
  `
]
