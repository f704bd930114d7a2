# Loads a query into an Arrow table with ConnectorX and prints one RESULT line for
# extdata-bench (run by its `connectorx-N` method; connection string in CX_CONN).
import os
import sys
import time

import connectorx as cx

query, partitions = sys.argv[1], int(sys.argv[2])


def status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


base = status_kib("VmRSS")
options = {"partition_on": "id", "partition_num": partitions} if partitions > 1 else {}
cpu, started = time.process_time(), time.perf_counter()
table = cx.read_sql(os.environ["CX_CONN"], query, return_type="arrow", **options)
wall, cpu = time.perf_counter() - started, time.process_time() - cpu
print(
    f"RESULT method=connectorx-{partitions} rows={table.num_rows} wall={wall:.4f} "
    f"cpu={cpu:.3f} hwm_kib={status_kib('VmHWM')} base_kib={base} payload={table.nbytes}"
)
