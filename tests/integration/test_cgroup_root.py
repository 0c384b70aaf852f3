"""Where the workers' cgroups go: below the server's own group (what systemd's Delegate=
and a container hand a service: its own subtree), not at the top of /sys/fs/cgroup, and
/healthz says where (cgroups.memory, cgroups.pids).

Tried for real on cgroup v1 (this machine's hierarchy): the server is started inside a
memory group made for the test, and its workers' groups must be made inside that one.
The cgroup v2 path (moving the server and the zygote into a `server` leaf so that their
group can hand memory and pids to the workers' groups beside it) is not tried here: a
kernel whose controllers are bound to v1 hierarchies cannot mount them on a v2 one, so
that test skips saying so where there is no v2 hierarchy with both controllers.

Run: PYEXECD_BIN=build/pyexecd python3 -u tests/integration/test_cgroup_root.py -v
"""

import os
import random
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import OUTSIDE_UID_CODE, Server, code_part, results  # noqa: E402
from limits import LIMITS  # noqa: E402

EAGER = LIMITS["LIMIT_CGROUP_EAGER_SLOTS"]

V1 = "/sys/fs/cgroup"


def own_group(pid, controller):
    """pid's group path in a v1 controller's hierarchy ('0' for v2), or None."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            num, controllers, path = line.rstrip("\n").split(":", 2)
            if (controller == "0" and num == "0") or controller in controllers.split(","):
                return path
    return None


def worker_groups(server):
    """The memory and pids groups a worker sees itself in."""
    status, body = server.execute({"parts": [code_part("print(open('/proc/self/cgroup').read())")]})
    assert status == 200, body
    text = results(body)[0]["output"]
    found = {}
    for line in text.splitlines():
        if line.count(":") >= 2:
            _, controllers, path = line.split(":", 2)
            for c in ("memory", "pids"):
                if c in controllers.split(","):
                    found[c] = path
    return found


class CgroupRootTest(unittest.TestCase):

    def test_reported_and_below_the_servers_own_group(self):
        with Server(workers=1, pool=1) as s:
            h = s.health()[1]
            if not h["isolation"]["cgroupMemory"]:
                self.skipTest("skipped: no memory cgroup layer on this machine")
            cg = h["cgroups"]
            mine = own_group(s.proc.pid, "memory")
            if os.path.isfile(f"{V1}/memory/memory.limit_in_bytes"):
                want = f"{V1}/memory{'' if mine == '/' else mine}/pyexecd-{s.uid_base}"
                self.assertEqual(cg["memory"], want)
                self.assertTrue(os.path.isdir(cg["memory"]))
                rel = cg["memory"][len(f"{V1}/memory"):]
                self.assertRegex(worker_groups(s)["memory"], rf"^{re.escape(rel)}/\d+$")
            self.assertIsNotNone(cg["pids"])
        time.sleep(0.3)
        self.assertFalse(os.path.isdir(cg["memory"]), "the workers' groups were left")

    def test_slots_past_the_eager_ones_get_their_groups_when_first_used(self):
        """The zygote makes the groups of the first LIMIT_CGROUP_EAGER_SLOTS slots at start
        and the others when a worker first starts in one (thousands of session slots
        would otherwise take seconds to make): a worker in a later slot is in its own
        groups with the same limits, and the groups go at the stop."""
        sessions = EAGER + 6
        with Server("--max-sessions", str(sessions), workers=1, pool=1) as s:
            h = s.health()[1]
            if not h["isolation"]["cgroupMemory"]:
                self.skipTest("skipped: no memory cgroup layer on this machine")
            base = h["cgroups"]["memory"]
            made = sorted(int(d) for d in os.listdir(base) if d.isdigit())
            slots = sessions + 2 + LIMITS["LIMIT_ZYGOTE_SPARE_SLOTS"]   # + workers + pool
            self.assertTrue(all(n < EAGER or n >= slots for n in made), made)
            self.assertLess(len(made), EAGER + 4, "every slot's groups made at start")
            ids, late = [], None
            for _ in range(sessions):
                status, body, _ = s.request("POST", "/v1/sessions", {})
                self.assertEqual(status, 200, body)
                ids.append(body["name"].split("/")[-1])
                status, body, _ = s.request("POST", f"/v1/sessions/{ids[-1]}:execute",
                                            {"parts": [code_part(OUTSIDE_UID_CODE)]})
                self.assertEqual(status, 200, body)
                slot = int(results(body)[0]["output"]) - s.uid_base
                if slot >= EAGER:
                    late = (ids[-1], slot)
                    break
            self.assertIsNotNone(late, f"no session got a slot past {EAGER}")
            sid, slot = late
            group = f"{base}/{slot}"
            self.assertTrue(os.path.isdir(group), group)
            for name in ("memory.limit_in_bytes",):
                if os.path.isfile(f"{base}/0/{name}"):
                    with open(f"{base}/0/{name}") as a, open(f"{group}/{name}") as b:
                        self.assertEqual(b.read(), a.read(), name)
            code = "print(open('/proc/self/cgroup').read())"
            status, body, _ = s.request("POST", f"/v1/sessions/{sid}:execute",
                                        {"parts": [code_part(code)]})
            self.assertEqual(status, 200, body)
            rel = base[len(f"{V1}/memory"):] if base.startswith(f"{V1}/memory") else None
            if rel is not None:
                self.assertIn(f"{rel}/{slot}\n", results(body)[0]["output"])
            pids = h["cgroups"]["pids"]
            if pids and pids != base:
                with open(f"{pids}/0/pids.max") as a, open(f"{pids}/{slot}/pids.max") as b:
                    self.assertEqual(b.read(), a.read())
        time.sleep(0.3)
        self.assertFalse(os.path.isdir(base), "the workers' groups were left")

    def test_inside_a_group_made_for_it(self):
        """The server started in a memory (and pids) group of its own: its workers' groups
        are made inside it, not at the top."""
        groups = {}
        for c, probe in (("memory", "memory.limit_in_bytes"), ("pids", "cgroup.procs")):
            top = f"{V1}/{c}"
            if not os.path.isfile(f"{top}/{probe}"):
                continue
            mine = own_group(os.getpid(), c)
            parent = top + ("" if mine == "/" else mine)
            g = f"{parent}/pyexecd-test-outer-{random.randrange(1 << 30)}"
            try:
                os.mkdir(g)
            except OSError:
                continue
            self.addCleanup(os.rmdir, g)
            groups[c] = g
        if "memory" not in groups:
            self.skipTest("skipped: no cgroup v1 memory hierarchy to make a group in here "
                          "(cgroup v2: see the module's docstring)")
        enter = " && ".join(f"echo $$ > {g}/cgroup.procs" for g in groups.values())
        with Server(workers=1, pool=1,
                    wrapper=["sh", "-c", enter + ' && exec "$0" "$@"']) as s:
            h = s.health()[1]
            self.assertTrue(h["isolation"]["cgroupMemory"], h["isolation"])
            for c, g in groups.items():
                self.assertEqual(h["cgroups"][c], f"{g}/pyexecd-{s.uid_base}")
                rel = g[len(f"{V1}/{c}"):]
                self.assertRegex(worker_groups(s)[c],
                                 rf"^{re.escape(rel)}/pyexecd-{s.uid_base}/\d+$")
            # The server itself stayed where it was started.
            self.assertEqual(own_group(s.proc.pid, "memory"),
                             groups["memory"][len(f"{V1}/memory"):])
        time.sleep(0.3)
        for g in groups.values():
            self.assertEqual([d for d in os.listdir(g) if d.startswith("pyexecd-")], [])
            with open(f"{g}/cgroup.procs") as f:
                self.assertEqual(f.read().split(), [], "processes left in the group")

    def test_v2(self):
        if not os.path.isfile(f"{V1}/cgroup.controllers"):
            self.skipTest("skipped: no cgroup v2 hierarchy at /sys/fs/cgroup here (its "
                          "controllers are bound to v1 ones), so the move into a `server` "
                          "leaf cannot be tried")
        with open(f"{V1}/cgroup.controllers") as f:
            controllers = f.read().split()
        if not {"memory", "pids"} <= set(controllers):
            self.skipTest("skipped: the v2 hierarchy here has no memory and pids")
        with Server(workers=1, pool=1) as s:
            h = s.health()[1]
            mine = own_group(s.proc.pid, "0")
            cg = h["cgroups"]["memory"]
            self.assertEqual(cg, h["cgroups"]["pids"])
            if mine.endswith("/server"):
                self.assertEqual(cg, f"{V1}{mine[:-len('/server')]}/pyexecd-{s.uid_base}")
            else:   # the top, as before (the own group could not hold it)
                self.assertEqual(cg, f"{V1}/pyexecd-{s.uid_base}")


if __name__ == "__main__":
    unittest.main()
