//! The ledger's tables, how the file is opened, and which API it belongs to.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{outcomes, private_file, LedgerError};

const SCHEMA: &str = "
-- argv and cwd are added by `add_columns`.
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    pid INTEGER NOT NULL,
    exit_code INTEGER
);
-- What the ledger knows of each message ever sent, one row per
-- conversation per journal fold: see `outcomes`. Programs before this one
-- kept a row per message in a `messages` table; `outcomes::upgrade` moves
-- them here.
CREATE TABLE IF NOT EXISTS outcomes (
    conversation_id TEXT NOT NULL,
    fold INTEGER NOT NULL,
    in_flight INTEGER NOT NULL,
    messages BLOB NOT NULL,
    PRIMARY KEY (conversation_id, fold)
);
-- The rows that left a message in flight, for opening after a kill.
CREATE INDEX IF NOT EXISTS outcomes_in_flight ON outcomes (conversation_id)
    WHERE in_flight > 0;
-- `--conversations create`: the API's id of each conversation created (or
-- found) by its external id, reused by later runs.
CREATE TABLE IF NOT EXISTS conversations (
    external_id TEXT PRIMARY KEY,
    api_id TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    run_id INTEGER NOT NULL,
    source INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (run_id, source)
);
-- `target`: which API this ledger's ids belong to; `journal_folded`: the
-- journal sequence number folded last.
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Requests made per UTC day, across runs, for the daily quota.
CREATE TABLE IF NOT EXISTS requests_per_day (
    day TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
";

/// What a ledger of any loopback API records as its target: a local
/// server (the built-in emulator, one started by hand, a proxy) is one
/// target whatever its port, and never the same as a remote API.
pub const LOOPBACK: &str = "loopback";

/// SQLite's page cache as a ledger is opened, and during a run once the
/// ledger outgrows `writer::WHOLE_LEDGER_CACHE`.
pub(super) const CACHE: u64 = 4 << 20;

/// Open (or create, readable by its owner only) the database at `path`
/// and make sure its tables exist.
pub fn open(path: &Path) -> Result<Connection, LedgerError> {
    let sql = |e| LedgerError::sqlite(path, e);
    // Created here first so that it is 0600: SQLite gives its -wal and -shm
    // files the database file's permissions.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    private_file(&mut options)
        .open(path)
        .map_err(|e| LedgerError::io(path, e))?;
    let conn = Connection::open(path).map_err(sql)?;
    // WAL with synchronous=NORMAL: a commit survives the process being
    // killed (it is in the WAL before commit returns), at no fsync cost.
    // A 4 MB page cache: the journal is folded in key order, and pages
    // the cache drops are read back from the OS's cache, not the disk (a
    // small ledger's folds get more: `writer::WHOLE_LEDGER_CACHE`).
    // Checkpoints by itself only once the WAL holds 8,192 pages (32 MB),
    // not SQLite's 1,000: during a run the ledger thread checkpoints after
    // each fold, on its own time (`Ledger::checkpoint`); this is the
    // backstop for commits outside it, such as a killed run's journal
    // folded on open.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;
         PRAGMA cache_size=-{}; PRAGMA wal_autocheckpoint=8192;",
        CACHE / 1024
    ))
    .map_err(sql)?;
    refuse_newer(&conn, path)?;
    // One transaction: the tables are made (or an earlier format moved)
    // whole or not at all, and in one commit, not one per statement.
    let tx = conn.unchecked_transaction().map_err(sql)?;
    tx.execute_batch(SCHEMA).map_err(sql)?;
    add_columns(&tx).map_err(sql)?;
    let moved = outcomes::upgrade(&tx).map_err(sql)?;
    tx.execute(
        "INSERT INTO meta (name, value) VALUES ('format', ?1) ON CONFLICT (name) DO NOTHING",
        params![FORMAT.to_string()],
    )
    .map_err(sql)?;
    tx.commit().map_err(sql)?;
    if moved {
        // The earlier table's pages are free now, and the file would keep
        // them: a ledger of 1,000,000 messages stayed at 137 MB where the
        // same messages take 57 MB. Copied compactly once (1.2 s there);
        // one that cannot be (a full disk) is as correct, only larger.
        let _ = conn.execute_batch("VACUUM");
    }
    Ok(conn)
}

/// The ledger's format, in `meta` as `format`: 2 since messages are
/// kept a row per conversation per fold (`outcomes`). Ledgers before it
/// have none; a program that finds a higher number stops before touching
/// the file, so that a later format is never misread as nothing sent.
const FORMAT: u32 = 2;

fn refuse_newer(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    let sql = |e| LedgerError::sqlite(path, e);
    if !has_table(conn, "meta").map_err(sql)? {
        return Ok(());
    }
    let found = meta(conn, "format").map_err(sql)?;
    match found {
        Some(found) if found.parse::<u32>().map_or(true, |f| f > FORMAT) => {
            Err(LedgerError::Newer {
                path: path.display().to_string(),
                found,
                known: FORMAT,
            })
        }
        _ => Ok(()),
    }
}

/// Columns added after the first release, to ledgers that lack them:
/// `runs.argv` (the command line, a JSON array) and `runs.cwd` (the
/// directory it ran in), so that `report` can read a run's inputs again
/// as it read them.
fn add_columns(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('runs')")?;
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, sql) in [
        ("argv", "ALTER TABLE runs ADD COLUMN argv TEXT"),
        ("cwd", "ALTER TABLE runs ADD COLUMN cwd TEXT"),
    ] {
        if !columns.iter().any(|c| c == name) {
            conn.execute_batch(sql)?;
        }
    }
    Ok(())
}

/// Bind a new ledger to `target`, or check that an old one was used with
/// it: what a ledger knows about another API's ids would wrongly mark
/// messages as already imported.
pub fn bind_target(conn: &Connection, path: &Path, target: &str) -> Result<(), LedgerError> {
    let sql = |e| LedgerError::sqlite(path, e);
    let recorded = meta(conn, "target").map_err(sql)?;
    match recorded {
        Some(recorded) if same_target(&recorded, target) => Ok(()),
        Some(recorded) => Err(LedgerError::OtherApi {
            path: path.display().to_string(),
            recorded,
            requested: target.to_string(),
        }),
        None => conn
            .execute(
                "INSERT INTO meta (name, value) VALUES ('target', ?1)",
                params![target],
            )
            .map(|_| ())
            .map_err(sql),
    }
}

/// Ledgers written before loopback targets were one name recorded the
/// emulator as `emulator` and other local servers by their URL.
fn same_target(recorded: &str, requested: &str) -> bool {
    let loopback = |t: &str| {
        t == LOOPBACK
            || t == "emulator"
            || ["http://127.", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| t.starts_with(p))
    };
    recorded == requested || (loopback(recorded) && loopback(requested))
}

/// The journal sequence number folded last (0: none yet).
pub fn journal_folded(conn: &Connection) -> rusqlite::Result<u64> {
    meta(conn, "journal_folded").map(|v| v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Whether the ledger has a table of this name.
pub(super) fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        params![name],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

/// The value `meta` holds under `name`, if any.
fn meta(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row(params![name], |r| r.get(0))
        .optional()
}

/// Today's UTC day, as `requests_per_day` keys it.
pub fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_one_target_whatever_its_port() {
        assert!(same_target("loopback", "loopback"));
        assert!(same_target("emulator", LOOPBACK));
        assert!(same_target("http://127.0.0.1:4242", LOOPBACK));
        assert!(!same_target("https://api.sandbox.asapp.com", LOOPBACK));
        assert!(!same_target(LOOPBACK, "https://api.sandbox.asapp.com"));
        assert!(same_target(
            "https://api.sandbox.asapp.com",
            "https://api.sandbox.asapp.com"
        ));
    }
}
