# A PMI-2 client over PMI_FD (pmi2_wire.py), for mpich_pmi_test: the job's
# copies put a key each, fence, and each reads its neighbour's and the job's
# process mapping. Prints "rank R of N: got V mapping M". Stdlib only.
import os
import sys

sys.dont_write_bytecode = True  # nothing written beside the sources
from pmi2_wire import Link  # noqa: E402

link = Link()
init = link.call("fullinit", [("pmirank", os.environ["PMI_RANK"]), ("threaded", "FALSE")])
rank, size = int(init["rank"]), int(init["size"])
jobid = link.call("job-getid")["jobid"]
mapping = link.call("info-getjobattr", [("key", "PMI_process_mapping")])
link.call("kvs-put", [("key", f"card-{rank}"), ("value", f"from-{rank}")])
link.call("kvs-fence", [("thrid", "0x1234")])
got = link.call("kvs-get", [("jobid", jobid), ("srcid", (rank + 1) % size), ("key", f"card-{(rank + 1) % size}")])
link.call("finalize")
os.write(1, f"rank {rank} of {size}: got {got.get('value')} mapping {mapping.get('value')}\n".encode())
