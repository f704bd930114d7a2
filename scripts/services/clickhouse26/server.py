"""The ClickHouse 26.x test server: the clickhouse-local engine of PyPI `chdb-core`,
serving HTTP and native TCP (used as it is by ../clickhouse26.sh).

    python server.py SERVER_DIR DATA_DIR FIFO CHDB_VERSION

The wheel has no server binary. Its engine starts real listeners on
`SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP`, with `listen_host`, `http_port` and
`tcp_port` from `config.xml` in the working directory (SERVER_DIR), and they serve while
the query that started them runs: here it then reads FIFO (at ~0 CPU) until a line is
written to it. It is an undocumented entry point, so anything unexpected exits non-zero
with a message saying what changed.
"""

import os
import sys


def fail(message):
    print(f"clickhouse26 server: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def main():
    if len(sys.argv) != 5:
        fail("usage: server.py SERVER_DIR DATA_DIR FIFO CHDB_VERSION")
    server_dir, data_dir, fifo, version = sys.argv[1:]
    # Importing chdb runs a probe query, which would read ./config.xml too (and open
    # the ports before we ask): import it from elsewhere.
    os.chdir("/")
    import chdb  # noqa: E402 (on purpose after the chdir)

    if chdb.__version__ != version:
        fail(f"chdb {chdb.__version__} is installed, {version} was pinned")
    query = getattr(getattr(chdb, "_chdb", None), "query", None)
    if not callable(query):
        fail("chdb._chdb.query is gone: the entry point this server relies on changed")
    os.chdir(server_dir)
    print(f"chdb {chdb.__version__}, engine {chdb.engine_version}: starting", flush=True)
    fifo = fifo.replace("'", "")
    query(
        "SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; "
        f"SELECT * FROM file('{fifo}', 'LineAsString') "
        "SETTINGS storage_file_read_method = 'read'",
        "TabSeparated",
        path=data_dir,
    )
    # The engine prints a failed query's error on stderr (the server's log) and returns.
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
