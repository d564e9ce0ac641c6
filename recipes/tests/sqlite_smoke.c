/* sqlite3 smoke test: in-memory and (if argv[1] given) on-disk database. */
#include <stdio.h>
#include <sqlite3.h>

static int run(const char *path) {
    sqlite3 *db; sqlite3_stmt *st; int rc;
    if (sqlite3_open(path, &db) != SQLITE_OK) { fprintf(stderr, "open %s: %s\n", path, sqlite3_errmsg(db)); return 1; }
    rc = sqlite3_exec(db, "CREATE TABLE t(a INTEGER, b TEXT);"
                          "INSERT INTO t VALUES (1,'one'),(2,'two'),(3,'three');", 0, 0, 0);
    if (rc != SQLITE_OK) { fprintf(stderr, "exec %s: %s\n", path, sqlite3_errmsg(db)); return 1; }
    sqlite3_prepare_v2(db, "SELECT sum(a), group_concat(b) FROM t", -1, &st, 0);
    if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 6) { fprintf(stderr, "bad result\n"); return 1; }
    printf("%s: sqlite %s sum=%d names=%s\n", path, sqlite3_libversion(), sqlite3_column_int(st, 0), sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
    return sqlite3_close(db) != SQLITE_OK;
}

int main(int argc, char **argv) {
    if (run(":memory:")) return 1;
    if (argc > 1 && run(argv[1])) return 1;
    return 0;
}
