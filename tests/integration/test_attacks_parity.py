"""The parity policy (`--policy parity`): code may run child processes of the listed
programs, as the real service lets it, and every child stays inside its worker's walls.
One row per attack (attack_table.py), then tests of what a row cannot say (several blocks,
the process tree outside).

What must hold: the listed programs run (python3 with the sandbox's libraries, pip, git,
find, ls, a shell); nothing else executes (an unlisted binary, a file the code wrote, a
memfd); a fork bomb stops at the pids limit and the server stays healthy; a child inherits
the filter (a forbidden call kills it, not the worker), the rlimits and the empty network
namespace; nothing a block started outlives the block, the request or the deadline.

Run: PYEXECD_BIN=build/pyexecd python3 tests/integration/test_attacks_parity.py -v
"""

import os
import socket
import threading
import time
import unittest

import attack_table
from attack_table import Row, all_of, deadline, failed_with, ok
from harness import code_part, processes_with_uid_in, results

SHORT_DEADLINE_MS = 3000


def listener_before(test, ctx):
    """A loopback listener the sandbox must not reach; counts connections."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    hits = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                hits.append(1)
                c.close()
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    test.addCleanup(lambda: (stop.set(), t.join(), srv.close()))
    return {"port": srv.getsockname()[1], "hits": hits}


def listener_untouched(test, ctx, reply):
    time.sleep(0.3)
    test.assertEqual(ctx["hits"], [], "a child reached the host's loopback listener")


def no_worker_process_left(test, ctx, reply):
    """No process of any worker uid of this server is left but the idle pool's."""
    # wait_settled (after each row) checks the count; here: nothing runs `sleep`.
    end = time.time() + 5
    while True:
        left = [p for p in test.server.stray_processes() if p[2] not in ("pyexecd-worker",)]
        if not left or time.time() > end:
            break
        time.sleep(0.1)
    test.assertEqual(left, [], "a child of a finished worker is still running")


ROWS = [
    Row("parity-run-listed-programs", "processes",
        attack="the listed programs run: python3 (with the sandbox's numpy), git, find, ls, sh",
        code=("import subprocess, sys\n"
              "run = lambda *a: subprocess.run(a, capture_output=True, text=True)\n"
              "print(run(sys.executable, '-c', 'import numpy; print(numpy.__name__)').stdout,"
              " end='')\n"
              "print(run('python3', '-c', 'print(6 * 7)').stdout, end='')\n"
              "print(run('git', '--version').stdout.split()[0])\n"
              "open('f.txt', 'w').write('x')\n"
              "print(run('find', '.', '-name', 'f.txt').stdout, end='')\n"
              "print(run('ls').stdout, end='')\n"
              "print(run('sh', '-c', 'echo from sh').stdout, end='')\n"),
        expect=ok("numpy\n42\ngit\n./f.txt\nf.txt\nfrom sh\n")),
    Row("parity-exec-unlisted", "processes",
        attack="exec of a program the policy does not list (/usr/bin/id)",
        code="import subprocess\nsubprocess.run(['/usr/bin/id'])\n",
        expect=failed_with("PermissionError", "/usr/bin/id")),
    Row("parity-exec-written-file", "processes",
        attack="exec of a copy of a listed binary that the code wrote to its work dir",
        code=("import os, shutil, subprocess\n"
              "shutil.copy('/usr/bin/ls', 'myls')\n"
              "os.chmod('myls', 0o755)\n"
              "subprocess.run(['./myls'])\n"),
        expect=failed_with("PermissionError", "myls")),
    Row("parity-exec-written-file-tmp", "processes",
        attack="exec of a script written to /tmp (a shebang names a listed shell)",
        code=("import os, subprocess\n"
              "open('/tmp/s.sh', 'w').write('#!/bin/sh\\necho ran\\n')\n"
              "os.chmod('/tmp/s.sh', 0o755)\n"
              "subprocess.run(['/tmp/s.sh'])\n"),
        expect=failed_with("PermissionError")),
    Row("parity-exec-memfd", "processes",
        attack="exec of a memfd holding a copy of a listed binary (fexecve)",
        code=("import os\n"
              "fd = os.memfd_create('x')\n"
              "os.write(fd, open('/usr/bin/true', 'rb').read())\n"
              "pid = os.fork()\n"
              "if pid == 0:\n"
              "    try:\n"
              "        os.execv(f'/proc/self/fd/{fd}', ['x'])\n"
              "    except OSError as e:\n"
              "        os.write(1, f'{type(e).__name__}\\n'.encode())\n"
              "    os._exit(3)\n"
              "print('child status', os.waitpid(pid, 0)[1] >> 8)\n"),
        expect=ok("PermissionError\nchild status 3\n")),
    Row("parity-fork-bomb", "processes",
        attack="a fork bomb: every process forks for ever",
        code="import os\nwhile True:\n    os.fork()\n",
        expect=failed_with("BlockingIOError", "Resource temporarily unavailable"),
        outside=no_worker_process_left),
    Row("parity-child-forbidden-call", "processes",
        attack="a child making a call the filter kills (unshare): the child dies, not the worker",
        code=("import subprocess\n"
              "r = subprocess.run(['python3', '-c', 'import ctypes; "
              "ctypes.CDLL(None).unshare(0x10000000)'])\n"
              "print('child ended by signal', -r.returncode)\n"),
        expect=ok("child ended by signal 31\n")),
    Row("parity-child-rlimit", "processes",
        attack="a child allocating past the address-space limit",
        code=("import subprocess\n"
              "r = subprocess.run(['python3', '-c', 'x = bytearray(8 << 30)'],"
              " capture_output=True, text=True)\n"
              "print(r.returncode, 'MemoryError' in r.stderr)\n"),
        expect=ok("1 True\n")),
    Row("parity-shell-network", "network",
        attack="a shell and a child python3 trying the host's loopback listener",
        code=("import subprocess\n"
              "r = subprocess.run(['bash', '-c', 'echo hi > /dev/tcp/127.0.0.1/$port'],"
              " capture_output=True, text=True)\n"
              "print('bash', r.returncode != 0)\n"
              "r = subprocess.run(['python3', '-c', 'import socket; "
              "socket.create_connection((\"127.0.0.1\", $port), timeout=2)'],"
              " capture_output=True, text=True)\n"
              "print('python3', r.returncode != 0)\n"),
        before=listener_before,
        expect=ok("bash True\npython3 True\n"),
        outside=listener_untouched),
    Row("parity-pip-install", "network",
        attack="pip install with no network: it fails, as in the real service",
        code=("import subprocess\n"
              "r = subprocess.run(['pip', 'install', '--retries', '0', 'requests-toolbelt'],"
              " capture_output=True, text=True)\n"
              "print(r.returncode != 0, 'No matching distribution' in r.stdout + r.stderr)\n"),
        expect=ok("True True\n")),
    Row("parity-child-escapes-deadline", "timing",
        attack="a child in a session of its own, the block then running past its deadline",
        code=("import subprocess, time\n"
              "subprocess.Popen(['sleep', '100'], start_new_session=True)\n"
              "subprocess.Popen(['sh', '-c', 'sleep 100 &'])\n"
              "print('started', flush=True)\n"
              "time.sleep(100)\n"),
        expect=deadline("started\n"),
        outside=no_worker_process_left),
]


class ParityAttacks(attack_table.AttackTestCase):
    SERVER_FLAGS = ("--policy", "parity", "--deadline-ms", str(SHORT_DEADLINE_MS))
    ROWS = ROWS

    def test_health_names_the_policy(self):
        status, h = self.server.health()
        self.assertEqual(status, 200, h)
        self.assertEqual(h["policy"], "policies/parity.policy")
        self.assertTrue(h["isolation"]["pidNamespace"], "parity needs a PID namespace")

    def test_child_does_not_outlive_its_block(self):
        """A child started by one block (detached, in a session of its own) is gone when
        the next block of the same request runs."""
        first = ("import subprocess\n"
                 "p = subprocess.Popen(['sleep', '100'], start_new_session=True)\n"
                 "print('pid', p.pid)\n")
        second = ("import os\n"
                  "alive = [d for d in os.listdir('/proc') if d.isdigit() and d != str(os.getpid())"
                  " and open(f'/proc/{d}/comm').read().strip() == 'sleep']\n"
                  "print('sleep processes', len(alive))\n")
        status, reply = self.server.execute({"parts": [code_part(first), code_part(second)]})
        self.assertEqual(status, 200, reply)
        rs = results(reply)
        self.assertEqual(rs[0]["outcome"], "OUTCOME_OK", rs)
        self.assertIn("pid ", rs[0]["output"])
        self.assertEqual(rs[1], {"outcome": "OUTCOME_OK", "output": "sleep processes 0\n"}, rs)

    def test_forked_python_child_does_not_report(self):
        """A Python child (os.fork) that raises ends on its own: the request gets one
        result per block, the parent's."""
        code = ("import os\n"
                "pid = os.fork()\n"
                "if pid == 0:\n"
                "    raise ValueError('in the child')\n"
                "print('parent saw', os.waitpid(pid, 0)[1] >> 8)\n")
        status, reply = self.server.execute({"parts": [code_part(code),
                                                       code_part("print('next block')")]})
        self.assertEqual(status, 200, reply)
        self.assertEqual(results(reply), [
            {"outcome": "OUTCOME_OK", "output": "parent saw 1\n"},
            {"outcome": "OUTCOME_OK", "output": "next block\n"}])

    def test_child_gone_with_its_session(self):
        """In a session, nothing a call started outlives the call; deleting the session
        leaves no process of its uid."""
        status, s = self.server.request("POST", "/v1/sessions", b"{}")[:2]
        self.assertEqual(status, 200, s)
        sid = s["name"].split("/")[1]
        uid_code = ("import os\n_m = open('/proc/self/uid_map').read().split()\n"
                    "print(int(_m[1]) if _m[2] == '1' else os.getuid())\n"
                    "import subprocess\nsubprocess.Popen(['sleep', '100'])\n")
        status, reply = self.server.request("POST", f"/v1/sessions/{sid}:execute",
                                            code_part(uid_code))[:2]
        self.assertEqual(status, 200, reply)
        uid = int(results(reply)[0]["output"].split()[0])
        procs = [p for p in processes_with_uid_in(uid, uid + 1) if p[2] == "sleep"]
        self.assertEqual(procs, [], "a call's child outlived the call")
        self.server.request("DELETE", f"/v1/sessions/{sid}")
        end = time.time() + 5
        while processes_with_uid_in(uid, uid + 1) and time.time() < end:
            time.sleep(0.1)
        self.assertEqual(processes_with_uid_in(uid, uid + 1), [])


class DefaultPolicyRunsNoProgram(attack_table.AttackTestCase):
    """Under the default policy the same calls fail: no fork, no exec."""
    ROWS = [
        Row("default-no-subprocess", "processes",
            attack="subprocess.run of a program the parity policy would list",
            code="import subprocess\nsubprocess.run(['ls'])\n",
            expect=failed_with("PermissionError")),
        Row("default-no-fork", "processes",
            attack="os.fork",
            code="import os\nos.fork()\n",
            expect=failed_with("PermissionError")),
    ]


if __name__ == "__main__":
    unittest.main()
