"""A pooled worker that pre-faulted while it waited (sandbox/prefault.h) and a cold one are
indistinguishable to the code they run, but for the faults the warm one no longer takes
(and so its fault counters and private memory).

The same probe runs in a warm and a cold worker of one zygote: everything it observes
(the imported modules, warnings filters and registries, figure numbers, library caches
and options, the gc's counts, linecache, the work dir and /tmp, threads, environment)
must be the same in both, and random state must differ from one execution to the next,
as before. That the warm worker really is warm is checked too: a pandas describe takes
far fewer page faults there."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ExecuteCall, Server, results  # noqa: E402

# Everything user code could see of the state pre-faulting might have touched, as JSON.
# Its own imports (json, contextlib, io, ...) come first, so both servers pay them alike.
PROBE = r'''
import contextlib, gc, io, json, os, random, resource, sys, threading, warnings, linecache
_seen = {}
_seen["modules"] = sorted(sys.modules)
_seen["gc_count"] = gc.get_count()
_seen["gc_objects"] = len(gc.get_objects())
_seen["gc_frozen"] = gc.get_freeze_count()
_seen["gc_enabled"] = gc.isenabled()
_seen["warnings_filters"] = [repr(f) for f in warnings.filters]
_seen["warning_registries"] = sorted(
    (name, len(m.__dict__.get("__warningregistry__") or {}))
    for name, m in list(sys.modules.items())
    if m is not None and isinstance(getattr(m, "__dict__", None), dict)
    and m.__dict__.get("__warningregistry__"))
_seen["linecache"] = sorted(linecache.cache)
_seen["cwd"] = os.getcwd()
_seen["workdir"] = sorted(os.listdir("."))
_seen["tmp"] = sorted(os.listdir("/tmp"))
_seen["threads"] = threading.active_count()
_seen["environ"] = sorted(os.environ.items())
_seen["path"] = sys.path
_seen["main"] = sorted(k for k in sys.modules["__main__"].__dict__ if not k.startswith("_"))
import numpy as np
_seen["np_err"] = np.geterr()
_seen["np_print"] = repr(sorted(np.get_printoptions().items()))
import matplotlib
import matplotlib.pyplot as plt
_seen["fignums"] = plt.get_fignums()
_seen["rc"] = repr(sorted(matplotlib.rcParams.items()))
_fig = plt.figure()
_seen["first_fignum"] = _fig.number
plt.close("all")
import pandas as pd
_seen["pd_options"] = repr([(k, pd.get_option(k)) for k in
                            ("display.max_rows", "display.max_columns", "display.width",
                             "mode.copy_on_write", "display.precision")])
from sympy.core import cache as _sympy_cache
_buf = io.StringIO()
with contextlib.redirect_stdout(_buf):
    _sympy_cache.print_cache()
_seen["sympy_cache"] = _buf.getvalue()
# What may differ, and must differ between executions: the random state.
_seen["random"] = random.random()
_seen["np_random"] = float(np.random.random())
# The one thing pre-faulting is there to change: the faults a pandas describe takes.
_f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
_df = pd.DataFrame(np.random.default_rng(1).normal(size=(100, 4)), columns=list("abcd"))
_d = _df.describe().to_string()
_seen["describe_faults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - _f0
print(json.dumps(_seen))
'''

RANDOM = ("random", "np_random")
MEASURED = ("describe_faults",)


class WarmInvisible(unittest.TestCase):
    """One server, so that both workers are forks of one zygote (another zygote has
    another hash seed, and so other sympy cache counts and gc figures): a pool of one, and
    two probes sent at once. The first takes the pooled worker, which has pre-faulted; the
    second waits for a worker forked for it, which is handed the job as soon as it is
    ready and so stops pre-faulting at once: a cold one (its page faults say so)."""

    @classmethod
    def setUpClass(cls):
        # Every page the scouts learn (more than the default), so that warm is plainly
        # warm; what the code sees cannot depend on how much was copied.
        cls.server = Server("--prefault-mib", "64", workers=2, pool=1).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def probe_pair(self):
        time.sleep(1.0)   # the pooled worker has finished pre-faulting (tens of ms)
        calls = [ExecuteCall(self.server, PROBE, timeout=120) for _ in range(2)]
        for c in calls:
            c.start()
        for c in calls:
            c.join()
        seen = []
        for c in calls:
            self.assertIsNone(c.error)
            self.assertEqual(c.status, 200, c.body)
            res = results(c.body)
            self.assertEqual([r["outcome"] for r in res], ["OUTCOME_OK"], c.body)
            seen.append(json.loads(res[0]["output"]))
        return sorted(seen, key=lambda x: x["describe_faults"])   # warm, then cold

    def test_indistinguishable(self):
        pairs = [self.probe_pair() for _ in range(2)]
        for warm, cold in pairs:
            # The warm one is warm: the copies were made before the code ran.
            self.assertLess(warm["describe_faults"] * 4, cold["describe_faults"],
                            (warm["describe_faults"], cold["describe_faults"]))
            for key in warm:
                if key not in RANDOM + MEASURED:
                    self.assertEqual(warm[key], cold[key],
                                     f"{key} differs between a warm and a cold worker")
            self.assertEqual(warm["fignums"], [])
            self.assertEqual(warm["first_fignum"], 1)
            self.assertEqual(warm["workdir"], [])
        # Random state is fresh per execution, warm or cold: nothing done in advance fixed
        # it.
        for key in RANDOM:
            values = [x[key] for pair in pairs for x in pair]
            self.assertEqual(len(set(values)), len(values), f"{key} repeats: {values}")

    def test_off(self):
        """--prefault-mib 0: the zygote learns nothing, a pooled worker stays cold."""
        with Server("--prefault-mib", "0", workers=1, pool=1) as s:
            time.sleep(1.0)
            body = s.run(PROBE)
            seen = json.loads(results(body)[0]["output"])
            warm = self.probe_pair()[0]
            self.assertGreater(seen["describe_faults"], 4 * warm["describe_faults"])
            self.assertFalse([line for line in s.log if "pre-fault:" in line], s.log_text())


if __name__ == "__main__":
    unittest.main()
