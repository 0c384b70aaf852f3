"""What a code block does and what the reply says about it: the Gemini code-execution
semantics pyexecd emulates (docs/gemini-wire.md), checked end to end against the
real server, zygote, sandbox and interpreter.

Run: PYEXECD_BIN=build/pyexecd python3 tests/integration/test_semantics.py -v
"""

import base64
import hashlib
import json
import os
import re
import struct
import sys
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import ServerTestCase, code_part, images, results  # noqa: E402

RUNNER_FRAME = (
    '  File "/usr/bin/entry/named_interpreters/python/interpreter", line 98, in _run_python\n'
    '    exec(code, exec_scope)  # pylint: disable=exec-used\n'
    '    ^^^^^^^^^^^^^^^^^^^^^^\n')

OLD_RUNNER_FRAME = (
    '  File "/usr/bin/entry/entry_point", line 117, in _run_python\n'
    '    exec(code, exec_scope)  # pylint: disable=exec-used\n'
    '    ^^^^^^^^^^^^^^^^^^^^^^\n')

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


def failure(head, frames, last, runner=RUNNER_FRAME):
    """The FAILED output the real service gives: str(exc), newline, then the traceback."""
    return (head + "\nTraceback (most recent call last):\n" + runner + frames + last + "\n")


def zero_division(line=1, runner=RUNNER_FRAME):
    return failure("division by zero", f'  File "<string>", line {line}, in <module>\n',
                   "ZeroDivisionError: division by zero", runner)


def png_size(b64):
    """(width, height) from a base64 PNG's IHDR chunk."""
    data = base64.b64decode(b64)
    if not data.startswith(PNG_MAGIC) or data[12:16] != b"IHDR":
        raise AssertionError(f"not a PNG: {data[:16]!r}")
    return struct.unpack(">II", data[16:24])


def tiny_png():
    """A valid 2x1 RGB PNG, built with the standard library."""
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xffffffff))
    raw = b"\x00" + bytes([255, 0, 0, 0, 255, 0])
    return (PNG_MAGIC + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def blocks(body):
    """Groups a reply's parts by code block: [(executableCode, [results], [images])]."""
    out = []
    for part in body["parts"]:
        if "executableCode" in part:
            out.append((part["executableCode"], [], []))
        elif out and "codeExecutionResult" in part:
            out[-1][1].append(part["codeExecutionResult"])
        elif out and "inlineData" in part:
            out[-1][2].append(part["inlineData"])
    return out


def inline(mime, data):
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}


class ServerCase(ServerTestCase):
    """One Server per class; adds helpers for posting parts."""

    def post(self, parts):
        status, body = self.server.execute({"parts": parts})
        self.assertEqual(status, 200, body)
        return body

    def run_one(self, code, **extra):
        """Runs one code block; returns the whole reply."""
        return self.post([code_part(code, **extra)])

    def result_of(self, code):
        """Runs one code block that must give exactly one result; returns it."""
        body = self.run_one(code)
        res = results(body)
        self.assertEqual(len(res), 1, body)
        return res[0]

    def assert_ok_output(self, code, output):
        res = self.result_of(code)
        self.assertEqual(res, {"outcome": "OUTCOME_OK", "output": output})

    def assert_failed_output(self, code, output):
        body = self.run_one(code)
        self.assertEqual(results(body), [{"outcome": "OUTCOME_FAILED", "output": output}])


class ReplyShapeTest(ServerCase):

    def test_print_sum_gives_exact_result(self):
        """print(1+1) answers exactly {"outcome": "OUTCOME_OK", "output": "2\\n"}."""
        body = self.run_one("print(1+1)")
        self.assertEqual(body, {"parts": [
            {"executableCode": {"language": "PYTHON", "code": "print(1+1)"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "2\n"}},
        ]})

    def test_output_field_absent_when_nothing_printed(self):
        """A block that prints nothing has no output field at all, not an empty one."""
        res = self.result_of("x = 5")
        self.assertEqual(res, {"outcome": "OUTCOME_OK"})
        self.assertNotIn("output", res)

    def test_parts_in_request_order_with_results_and_images_after_their_code(self):
        """Request parts are echoed in order; each code part is followed by its result, then its images."""
        csv = b"a,b\n1,2\n"
        parts = [
            {"text": "some text"},
            inline("text/csv", csv),
            code_part("import matplotlib.pyplot as plt\nprint('first')\nplt.plot([1, 2])\n"
                      "plt.show()", id="h0mwtrhs"),
            code_part("y = 2"),
            code_part("plt.plot([3, 1])", id="ab12cd34"),
        ]
        body = self.post(parts)
        got = body["parts"]
        kinds = [next(iter(p)) for p in got]
        self.assertEqual(kinds, ["text", "inlineData", "executableCode", "codeExecutionResult",
                                 "inlineData", "executableCode", "codeExecutionResult",
                                 "executableCode", "codeExecutionResult", "inlineData"])
        self.assertEqual(got[0], {"text": "some text"})
        self.assertEqual(got[1], parts[1])
        self.assertEqual(got[2], parts[2])
        self.assertEqual(got[3], {"codeExecutionResult": {
            "outcome": "OUTCOME_OK", "output": "first\n", "id": "h0mwtrhs"}})
        self.assertEqual(got[4]["inlineData"]["mimeType"], "image/png")
        self.assertEqual(got[5], parts[3])
        self.assertEqual(got[6], {"codeExecutionResult": {"outcome": "OUTCOME_OK"}})
        self.assertEqual(got[7], parts[4])
        self.assertEqual(got[8], {"codeExecutionResult": {"outcome": "OUTCOME_OK",
                                                          "id": "ab12cd34"}})
        self.assertEqual(got[9]["inlineData"]["mimeType"], "image/png")
        self.assertNotIn("executionMetadata", body)

    def test_id_carried_to_result_only_when_given(self):
        """The result carries its code part's id, and has no id key when the code had none."""
        body = self.post([code_part("a = 1", id="q1w2e3r4"), code_part("b = 2")])
        self.assertEqual(results(body), [{"outcome": "OUTCOME_OK", "id": "q1w2e3r4"},
                                         {"outcome": "OUTCOME_OK"}])

    def test_each_block_gets_only_its_own_stdout(self):
        """Every block's output holds what that block printed, never a later block's (20 tries)."""
        bad = []
        for _ in range(20):
            body = self.server.run("print('a')", "print('b')", "print('c')")
            outs = [r.get("output") for r in results(body)]
            if outs != ["a\n", "b\n", "c\n"]:
                bad.append(outs)
        self.assertEqual(bad, [], f"{len(bad)}/20 replies attributed stdout to the wrong "
                                  f"block, e.g. {bad[:3]}")


class StateTest(ServerCase):

    def test_globals_shared_between_blocks_of_one_request(self):
        """x = 5 in one block is visible to print(x) in the next block of the same request."""
        body = self.server.run("x = 5", "print(x)")
        self.assertEqual(results(body), [{"outcome": "OUTCOME_OK"},
                                         {"outcome": "OUTCOME_OK", "output": "5\n"}])

    def test_globals_survive_a_failed_block(self):
        """A block that raises does not reset the namespace for the blocks after it."""
        body = self.server.run("x = 5\ny = x * 2", "1/0", "print(x + y)")
        self.assertEqual(results(body), [
            {"outcome": "OUTCOME_OK"},
            {"outcome": "OUTCOME_FAILED", "output": zero_division()},
            {"outcome": "OUTCOME_OK", "output": "15\n"},
        ])

    def test_functions_and_imports_persist_between_blocks(self):
        """A function defined and a module imported in one block are usable in the next."""
        body = self.server.run("import math\ndef area(r):\n    return math.pi * r * r",
                               "print(round(area(2), 4), math.sqrt(16))")
        self.assertEqual(results(body), [{"outcome": "OUTCOME_OK"},
                                         {"outcome": "OUTCOME_OK", "output": "12.5664 4.0\n"}])

    def test_new_request_has_fresh_globals_and_fresh_workdir(self):
        """A second request sees neither the first one's globals nor the files it wrote."""
        first = self.result_of("leftover_global = 41\nopen('left.txt', 'w').write('hi')\n"
                               "import os\nos.mkdir('leftdir')")
        self.assertEqual(first, {"outcome": "OUTCOME_OK"})
        second = self.result_of("import os\nprint('leftover_global' in globals(), "
                                "os.getcwd(), os.listdir('.'))")
        self.assertEqual(second, {"outcome": "OUTCOME_OK", "output": "False /root []\n"})

    def test_fresh_globals_are_those_of_a_plain_script(self):
        """A request's globals hold only what a fresh python3 script has (nothing of ours)."""
        self.assert_ok_output("print(sorted(globals()))",
                              "['__annotations__', '__builtins__', '__doc__', '__loader__', "
                              "'__name__', '__package__', '__spec__']\n")

    def test_site_builtins_present(self):
        """help(), copyright, credits and license exist, as in an ordinary python3."""
        res = self.result_of("help(len)\nprint(type(copyright).__name__, "
                             "type(credits).__name__, type(license).__name__)")
        self.assertEqual(res["outcome"], "OUTCOME_OK", res)
        self.assertTrue(res["output"].startswith("Help on built-in function len"), res)
        self.assertTrue(res["output"].endswith("_Printer _Printer _Printer\n"), res)

    def test_uniformly_indented_code_is_dedented(self):
        """Code whose lines all share leading indentation runs as if dedented."""
        self.assert_ok_output("    x = 1\n    print(x)\n    ", "1\n")
        self.assert_ok_output("\t\tfor i in range(2):\n\t\t    print(i)\n", "0\n1\n")


class TracebackTest(ServerCase):

    def test_name_error_exact_output(self):
        """NameError output is str(exc), newline, then the traceback with the runner frame."""
        self.assert_failed_output(
            "undefined_name",
            "name 'undefined_name' is not defined\nTraceback (most recent call last):\n"
            "  File \"/usr/bin/entry/named_interpreters/python/interpreter\", line 98, in "
            "_run_python\n    exec(code, exec_scope)  # pylint: disable=exec-used\n"
            "    ^^^^^^^^^^^^^^^^^^^^^^\n  File \"<string>\", line 1, in <module>\n"
            "NameError: name 'undefined_name' is not defined\n")

    def test_name_error_did_you_mean_hint(self):
        """A misspelt global gets Python 3.12's "Did you mean: 'eqs'?" on the last line only."""
        self.assert_failed_output(
            "eqs = [1, 2]\nprint(eqz)",
            failure("name 'eqz' is not defined", '  File "<string>", line 2, in <module>\n',
                    "NameError: name 'eqz' is not defined. Did you mean: 'eqs'?"))

    def test_attribute_error_did_you_mean_append(self):
        """A misspelt list method gets "Did you mean: 'append'?"."""
        self.assert_failed_output(
            "xs = []\nxs.appnd(1)",
            failure("'list' object has no attribute 'appnd'",
                    '  File "<string>", line 2, in <module>\n',
                    "AttributeError: 'list' object has no attribute 'appnd'. "
                    "Did you mean: 'append'?"))

    def test_name_error_forgot_to_import_hint(self):
        """Using sys without importing it gets "Did you forget to import 'sys'?"."""
        self.assert_failed_output(
            "print(sys.argv)",
            failure("name 'sys' is not defined", '  File "<string>", line 1, in <module>\n',
                    "NameError: name 'sys' is not defined. Did you forget to import 'sys'?"))

    def test_inner_function_frames(self):
        """Frames of functions defined in the block read File "<string>", line N, in f."""
        self.assert_failed_output(
            "def f(d):\n    return 1 / d\n\ndef g():\n    return f(0)\n\ng()",
            failure("division by zero",
                    '  File "<string>", line 7, in <module>\n'
                    '  File "<string>", line 5, in g\n'
                    '  File "<string>", line 2, in f\n',
                    "ZeroDivisionError: division by zero"))

    def test_library_frames_have_full_path_and_source_line(self):
        """A library frame shows the module's absolute path and its source line."""
        body = self.run_one("import json\nprint(json.__file__)\njson.loads('{')")
        res = results(body)
        self.assertEqual(len(res), 2, body)
        self.assertEqual(res[0]["outcome"], "OUTCOME_OK")
        path = res[0]["output"].strip()
        self.assertTrue(path.startswith("/") and path.endswith("/json/__init__.py"), path)
        out = res[1]["output"]
        self.assertEqual(res[1]["outcome"], "OUTCOME_FAILED")
        message = "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
        self.assertTrue(out.startswith(message + "\nTraceback (most recent call last):\n"
                                       + RUNNER_FRAME
                                       + '  File "<string>", line 3, in <module>\n'), out)
        self.assertRegex(out, re.escape(f'  File "{path}", line ') + r"\d+"
                         + re.escape(", in loads\n    return _default_decoder.decode(s)\n"))
        self.assertTrue(out.endswith("\njson.decoder.JSONDecodeError: " + message + "\n"), out)

    def test_syntax_error_shape(self):
        """A SyntaxError shows the offending line of <string> with a caret, no <module>."""
        self.assert_failed_output(
            "x = (1,",
            failure("'(' was never closed (<string>, line 1)",
                    '  File "<string>", line 1\n    x = (1,\n        ^\n',
                    "SyntaxError: '(' was never closed"))

    def test_stderr_before_exception_comes_first(self):
        """stderr written before the exception heads the FAILED output."""
        self.assert_failed_output("import sys; sys.stderr.write('warn\\n'); 1/0",
                                  "warn\n" + zero_division())

    def test_failed_output_holds_only_its_own_blocks_stderr(self):
        """A FAILED block's output holds its own stderr, not what an earlier OK block wrote there."""
        body = self.server.run("import sys\nsys.stderr.write('one\\n')",
                               "import os\nos.write(2, b'two\\n')\n1/0")
        self.assertEqual(results(body), [
            {"outcome": "OUTCOME_OK"},
            {"outcome": "OUTCOME_FAILED", "output": "two\n" + zero_division(line=3)},
        ])

    def test_exception_with_empty_str_starts_with_newline(self):
        """An exception whose str() is empty gives output starting with "\\nTraceback"."""
        self.assert_failed_output(
            "raise ValueError()",
            failure("", '  File "<string>", line 1, in <module>\n', "ValueError"))

    def test_stdout_before_failure_is_split_into_ok_then_failed(self):
        """By default stdout printed before a raise is an OK result, then the FAILED one, both with the id."""
        body = self.run_one("print('partial')\n1/0", id="h0mwtrhs")
        self.assertEqual(body["parts"][1:], [
            {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "partial\n",
                                     "id": "h0mwtrhs"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_FAILED",
                                     "output": zero_division(line=2), "id": "h0mwtrhs"}},
        ])

    def test_split_without_id_has_no_id(self):
        """The split OK and FAILED results carry no id when the code part had none."""
        body = self.run_one("print('p')\n1/0")
        self.assertEqual(results(body), [
            {"outcome": "OUTCOME_OK", "output": "p\n"},
            {"outcome": "OUTCOME_FAILED", "output": zero_division(line=2)},
        ])

    def test_stderr_not_in_ok_output(self):
        """A warning on stderr does not appear in an OK block's output."""
        self.assert_ok_output("import warnings\nwarnings.warn('careful')\n"
                              "import sys\nsys.stderr.write('err\\n')\nprint('x')", "x\n")

    def test_sigint_to_self_raises_keyboard_interrupt(self):
        """os.kill(os.getpid(), SIGINT) raises KeyboardInterrupt, as in a plain python3."""
        body = self.run_one("import os, signal\nprint('a')\nos.kill(os.getpid(), signal.SIGINT)\n"
                            "print('b')")
        res = results(body)
        self.assertEqual(res[0], {"outcome": "OUTCOME_OK", "output": "a\n"})
        self.assertEqual(res[1]["outcome"], "OUTCOME_FAILED")
        self.assertTrue(res[1]["output"].endswith('line 3, in <module>\nKeyboardInterrupt\n'), res)

    def test_exit_variants_end_block_ok_and_later_blocks_run(self):
        """exit(), sys.exit(), sys.exit(0) end the block OK; sys.exit(3) FAILED; later blocks run on."""
        body = self.server.run(
            "y = 10\nprint('a')\nexit()\nprint('not reached')",
            "import sys\nprint('b')\nsys.exit()\nprint('not reached')",
            "print('c')\nsys.exit(0)",
            "sys.exit(3)",
            "print(y + 1)")
        self.assertEqual(results(body), [
            {"outcome": "OUTCOME_OK", "output": "a\n"},
            {"outcome": "OUTCOME_OK", "output": "b\n"},
            {"outcome": "OUTCOME_OK", "output": "c\n"},
            {"outcome": "OUTCOME_FAILED",
             "output": failure("3", '  File "<string>", line 1, in <module>\n',
                               "SystemExit: 3")},
            {"outcome": "OUTCOME_OK", "output": "11\n"},
        ])


class RunnerFrameNoneTest(ServerCase):
    SERVER_FLAGS = ("--runner-frame", "none")
    WORKERS = 1
    POOL = 1

    def test_no_runner_frame(self):
        """With --runner-frame none the traceback starts at the code's own frame."""
        self.assert_failed_output(
            "undefined_name",
            "name 'undefined_name' is not defined\nTraceback (most recent call last):\n"
            '  File "<string>", line 1, in <module>\n'
            "NameError: name 'undefined_name' is not defined\n")


class RunnerFrameEntryPointTest(ServerCase):
    SERVER_FLAGS = ("--runner-frame", "/usr/bin/entry/entry_point:117")
    WORKERS = 1
    POOL = 1

    def test_old_runner_frame_file_and_line(self):
        """With --runner-frame /usr/bin/entry/entry_point:117 that file and line head the traceback."""
        self.assert_failed_output(
            "undefined_name",
            failure("name 'undefined_name' is not defined",
                    '  File "<string>", line 1, in <module>\n',
                    "NameError: name 'undefined_name' is not defined", OLD_RUNNER_FRAME))


class FailedStdoutMergeTest(ServerCase):
    SERVER_FLAGS = ("--failed-stdout", "merge")
    WORKERS = 1
    POOL = 1

    def test_single_failed_result_starts_with_stdout(self):
        """With --failed-stdout merge, stdout before a raise heads one FAILED result with the id."""
        body = self.run_one("print('partial')\n1/0", id="h0mwtrhs")
        self.assertEqual(body["parts"][1:], [
            {"codeExecutionResult": {"outcome": "OUTCOME_FAILED",
                                     "output": "partial\n" + zero_division(line=2),
                                     "id": "h0mwtrhs"}},
        ])

    def test_merge_order_is_stdout_then_stderr_then_error(self):
        """Merged output holds stdout, then stderr, then str(exc) and the traceback."""
        self.assert_failed_output(
            "import sys\nprint('out')\nsys.stderr.write('err\\n')\n1/0",
            "out\nerr\n" + zero_division(line=4))

    def test_ok_block_unchanged_in_merge_mode(self):
        """An OK block's result is the same in merge mode."""
        self.assert_ok_output("print('fine')", "fine\n")


class ImagesTest(ServerCase):

    def assert_pngs(self, body, count):
        imgs = images(body)
        self.assertEqual([i["mimeType"] for i in imgs], ["image/png"] * count)
        for i in imgs:
            self.assertTrue(base64.b64decode(i["data"]).startswith(PNG_MAGIC))
        return imgs

    def test_show_gives_one_png_after_result(self):
        """plt.plot + plt.show() gives exactly one image/png part right after the result."""
        body = self.run_one("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()")
        self.assertEqual([next(iter(p)) for p in body["parts"]],
                         ["executableCode", "codeExecutionResult", "inlineData"])
        self.assertEqual(body["parts"][1], {"codeExecutionResult": {"outcome": "OUTCOME_OK"}})
        self.assert_pngs(body, 1)

    def test_open_figure_at_end_gives_one_png(self):
        """A figure left open when the block ends comes back as one PNG."""
        self.assert_pngs(self.run_one("import matplotlib.pyplot as plt\nplt.plot([1, 2])"), 1)

    def test_two_shows_give_two_pngs(self):
        """Two plt.show() calls give two PNGs."""
        body = self.run_one("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\n"
                            "plt.plot([2, 1])\nplt.show()")
        self.assert_pngs(body, 2)

    def test_savefig_and_show_give_two_pngs(self):
        """savefig('a.png') then show() gives two PNGs: the saved file and the shown figure."""
        body = self.run_one("import matplotlib.pyplot as plt\nplt.plot([1, 2])\n"
                            "plt.savefig('a.png')\nplt.show()")
        self.assert_pngs(body, 2)

    def test_savefig_alone_gives_one_png(self):
        """savefig('a.png') without show gives one PNG (the file), not the figure as well."""
        body = self.run_one("import matplotlib.pyplot as plt\nplt.figure(figsize=(3, 2))\n"
                            "plt.plot([1, 2])\nplt.savefig('a.png', dpi=50)\nprint('saved')")
        imgs = self.assert_pngs(body, 1)
        self.assertEqual(png_size(imgs[0]["data"]), (150, 100))   # the file, at its own dpi

    def test_unsaved_figure_still_returned_beside_saved_one(self):
        """Of two open figures, the one saved to a file comes back as the file, the other rendered."""
        body = self.run_one("import matplotlib.pyplot as plt\n"
                            "plt.figure(figsize=(3, 2)); plt.plot([1]); plt.savefig('a.png')\n"
                            "plt.figure(figsize=(4, 2)); plt.plot([2])")
        imgs = self.assert_pngs(body, 2)
        self.assertEqual(sorted(png_size(i["data"]) for i in imgs), [(300, 200), (400, 200)])

    def test_figure_saved_to_memory_still_returned(self):
        """savefig into a BytesIO is not a file: the figure left open still comes back."""
        body = self.run_one("import io, matplotlib.pyplot as plt\nplt.plot([1])\n"
                            "plt.savefig(io.BytesIO(), format='png')")
        self.assert_pngs(body, 1)

    def test_failed_block_returns_no_open_figure(self):
        """A block that fails with a figure open (not shown) returns no image."""
        body = self.run_one("import matplotlib.pyplot as plt\nplt.plot([1, 2])\n1/0")
        self.assertEqual(results(body)[0]["outcome"], "OUTCOME_FAILED")
        self.assertEqual(images(body), [])

    def test_failed_block_returns_created_file(self):
        """A block that saves a file and then fails returns that file, once."""
        body = self.run_one("import matplotlib.pyplot as plt\nplt.plot([1, 2])\n"
                            "plt.savefig('a.png')\n1/0")
        self.assertEqual(results(body)[-1]["outcome"], "OUTCOME_FAILED")
        self.assert_pngs(body, 1)

    def test_figures_closed_after_each_block(self):
        """A figure does not outlive its block: the next block starts with none open."""
        body = self.server.run("import matplotlib.pyplot as plt\nplt.plot([1, 2])\n1/0",
                               "import matplotlib.pyplot as plt\nprint(plt.get_fignums())")
        per_block = blocks(body)
        self.assertEqual(per_block[1][1], [{"outcome": "OUTCOME_OK", "output": "[]\n"}])
        self.assertEqual([len(b[2]) for b in per_block], [0, 0])

    def test_file_saved_over_existing_one_not_returned(self):
        """A block that saves over a file an earlier block created returns no image."""
        body = self.server.run(
            "import matplotlib.pyplot as plt\nplt.plot([1]); plt.savefig('p.png')",
            "import matplotlib.pyplot as plt\nplt.plot([2]); plt.savefig('p.png')\n"
            "import os\nprint(os.path.getsize('p.png') > 0)")
        per_block = blocks(body)
        self.assertEqual([len(b[2]) for b in per_block], [1, 0])
        self.assertEqual(per_block[1][1], [{"outcome": "OUTCOME_OK", "output": "True\n"}])

    def test_png_is_100_dpi(self):
        """A figsize (6, 4) figure comes back as a 600x400 PNG."""
        body = self.run_one("import matplotlib.pyplot as plt\nplt.figure(figsize=(6, 4))\n"
                            "plt.plot([1, 2])\nplt.show()")
        imgs = self.assert_pngs(body, 1)
        self.assertEqual(png_size(imgs[0]["data"]), (600, 400))

    def test_pil_jpeg_returned(self):
        """An image saved with PIL as x.jpg comes back as one image/jpeg part."""
        body = self.run_one("from PIL import Image\n"
                            "Image.new('RGB', (8, 8), (255, 0, 0)).save('x.jpg')")
        imgs = images(body)
        self.assertEqual([i["mimeType"] for i in imgs], ["image/jpeg"])
        self.assertTrue(base64.b64decode(imgs[0]["data"]).startswith(JPEG_MAGIC))

    def test_file_from_previous_block_not_returned_again(self):
        """An image file written in one block is returned with that block only."""
        body = self.server.run("from PIL import Image\nImage.new('RGB', (4, 4)).save('p.png')",
                               "z = 1", "import os\nos.path.exists('p.png') or 1/0")
        per_block = blocks(body)
        self.assertEqual([len(b[2]) for b in per_block], [1, 0, 0])
        self.assertEqual([b[1] for b in per_block], [[{"outcome": "OUTCOME_OK"}]] * 3)
        self.assertEqual(png_size(per_block[0][2][0]["data"]), (4, 4))

    def test_symlink_to_passwd_not_returned(self):
        """A symlink evil.png pointing at /etc/passwd is not read back as an image."""
        body = self.run_one("import os\nos.symlink('/etc/passwd', 'evil.png')\n"
                            "os.symlink('/etc/passwd', 'evil.jpg')\nprint(sorted(os.listdir('.')))")
        self.assertEqual(results(body), [{"outcome": "OUTCOME_OK",
                                          "output": "['evil.jpg', 'evil.png']\n"}])
        self.assertEqual(images(body), [])
        self.assertNotIn("root:", json.dumps(body))

    def test_images_returned_for_failing_block(self):
        """A block that shows a figure and then raises still returns the PNG after its FAILED result."""
        body = self.run_one("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\n1/0")
        self.assertEqual([next(iter(p)) for p in body["parts"]],
                         ["executableCode", "codeExecutionResult", "inlineData"])
        self.assertEqual(results(body), [{"outcome": "OUTCOME_FAILED",
                                          "output": zero_division(line=4)}])
        self.assert_pngs(body, 1)


class InputFilesTest(ServerCase):

    def test_input_files_named_in_order_in_root_with_exact_bytes(self):
        """inlineData parts appear in /root as input_file_N.ext, numbered in order, byte for byte."""
        files = [("text/csv", b"name,value\nalpha,1\nbeta,2\n", "input_file_0.csv"),
                 ("text/x-python", b"print('hello from a file')\n", "input_file_1.py"),
                 ("image/png", tiny_png(), "input_file_2.png"),
                 ("text/plain", "ünïcødé ✓\n".encode(), "input_file_3.txt")]
        code = ("import os, hashlib, json\nnames = sorted(os.listdir('.'))\n"
                "print(json.dumps({'cwd': os.getcwd(), 'names': names, 'sha': "
                "[hashlib.sha256(open(n, 'rb').read()).hexdigest() for n in names]}))")
        parts = [inline(m, d) for m, d, _ in files[:2]] + [code_part(code)] + \
                [inline(m, d) for m, d, _ in files[2:]]
        body = self.post(parts)
        self.assertEqual(len(body["parts"]), 6, body)
        res = results(body)
        self.assertEqual(len(res), 1, body)
        self.assertEqual(res[0]["outcome"], "OUTCOME_OK", res)
        got = json.loads(res[0]["output"])
        self.assertEqual(got["cwd"], "/root")
        self.assertEqual(got["names"], [n for _, _, n in files])
        self.assertEqual(got["sha"], [hashlib.sha256(d).hexdigest() for _, d, _ in files])

    def test_input_csv_readable_with_pandas(self):
        """An input CSV can be read by name with pandas."""
        body = self.post([inline("text/csv", b"a,b\n1,2\n3,4\n"),
                          code_part("import pandas as pd\n"
                                    "print(pd.read_csv('input_file_0.csv')['b'].sum())")])
        self.assertEqual(results(body), [{"outcome": "OUTCOME_OK", "output": "6\n"}])

    def test_workdir_empty_without_input_files(self):
        """Without inlineData parts the work dir /root is empty."""
        self.assert_ok_output("import os\nprint(os.getcwd(), os.listdir('.'))", "/root []\n")


class OutputTest(ServerCase):

    def test_randomness_differs_between_requests(self):
        """random.random() and numpy.random.rand() differ between two requests."""
        code = "import random, numpy\nprint(repr(random.random()), repr(numpy.random.rand()))"
        first = self.result_of(code)["output"].split()
        second = self.result_of(code)["output"].split()
        self.assertEqual(len(first), 2)
        self.assertNotEqual(first[0], second[0], "random.random() repeated")
        self.assertNotEqual(first[1], second[1], "numpy.random.rand() repeated")

    def test_utf8_preserved(self):
        """Non-ASCII text, including astral characters, comes back unchanged."""
        self.assert_ok_output("print('héllo ✓ 😀')", "héllo ✓ 😀\n")

    def test_invalid_utf8_replaced(self):
        """Invalid bytes written to sys.stdout.buffer come back as U+FFFD."""
        self.assert_ok_output("import sys\nsys.stdout.buffer.write(b'a\\xffb\\n')", "a\ufffdb\n")

    def test_os_write_to_fd1_captured(self):
        """Bytes written with os.write(1, ...) are part of the output, in order with print."""
        self.assert_ok_output("import os\nprint('p1')\nos.write(1, b'raw\\n')\nprint('p2')",
                              "p1\nraw\np2\n")

    def test_threads_work(self):
        """threading.Thread start/join works and results are visible after join."""
        self.assert_ok_output(
            "import threading\nout = []\nlock = threading.Lock()\n"
            "def work(i):\n    with lock:\n        out.append(i * i)\n"
            "ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]\n"
            "for t in ts: t.start()\nfor t in ts: t.join()\nprint(sorted(out))",
            "[0, 1, 4, 9]\n")

    def test_asyncio_run_works(self):
        """asyncio.run of a coroutine that awaits sleeps and gathers works."""
        self.assert_ok_output(
            "import asyncio\nasync def double(x):\n    await asyncio.sleep(0.01)\n"
            "    return 2 * x\nasync def main():\n"
            "    return await asyncio.gather(double(1), double(21))\n"
            "print(asyncio.run(main()))",
            "[2, 42]\n")


class OutputLimitTest(ServerCase):
    SERVER_FLAGS = ("--output-bytes", "1000")
    WORKERS = 1
    POOL = 1

    def test_output_at_limit_returned_whole(self):
        """Exactly 1000 bytes with --output-bytes 1000 come back whole, no note, no metadata."""
        body = self.run_one("print('x' * 999)")
        self.assertEqual(results(body), [{"outcome": "OUTCOME_OK", "output": "x" * 999 + "\n"}])
        self.assertNotIn("executionMetadata", body)

    def test_output_over_limit_truncated_with_note_and_metadata(self):
        """1001 bytes are cut to 1000 plus the truncation note and limitReached OUTPUT_BYTES."""
        body = self.run_one("print('x' * 1000)")
        self.assertEqual(results(body), [{
            "outcome": "OUTCOME_OK",
            "output": "x" * 1000 + "\n[output truncated: more than 1000 bytes were written]\n"}])
        self.assertEqual(body["executionMetadata"], {"limitReached": "OUTPUT_BYTES"})

    def test_large_output_truncated(self):
        """A megabyte of output is cut at the limit with the note."""
        body = self.run_one("for i in range(100000): print('0123456789')")
        res = results(body)
        self.assertEqual(len(res), 1)
        self.assertEqual(res[0]["output"], ("0123456789\n" * 91)[:1000]
                         + "\n[output truncated: more than 1000 bytes were written]\n")
        self.assertEqual(body["executionMetadata"], {"limitReached": "OUTPUT_BYTES"})


class LibrariesTest(ServerCase):

    def test_all_fifteen_libraries_import(self):
        """altair, chess, cv2, ..., tabulate all import in one block."""
        self.assert_ok_output(
            "import altair, chess, cv2, matplotlib, mpmath, numpy, pandas, pdfminer, reportlab\n"
            "import seaborn, sklearn, statsmodels, striprtf, sympy, tabulate\nprint('ok')",
            "ok\n")

    def test_numpy_matrix_product(self):
        """numpy's @ gives the exact matrix product."""
        self.assert_ok_output("import numpy as np\na = np.array([[1, 2], [3, 4]])\n"
                              "print((a @ np.array([[5, 6], [7, 8]])).tolist())",
                              "[[19, 22], [43, 50]]\n")

    def test_pandas_describe(self):
        """pandas describe() gives count, mean and max."""
        self.assert_ok_output("import pandas as pd\nd = pd.DataFrame({'a': [1, 2, 3, 4]})"
                              ".describe()\nprint(d.loc['count', 'a'], d.loc['mean', 'a'], "
                              "d.loc['max', 'a'])", "4.0 2.5 4.0\n")

    def test_sympy_solve(self):
        """sympy solves x**2 - 4 = 0."""
        self.assert_ok_output("import sympy as sp\nx = sp.symbols('x')\n"
                              "print(sorted(sp.solve(x**2 - 4, x)))", "[-2, 2]\n")

    def test_sklearn_linear_regression(self):
        """sklearn LinearRegression recovers slope 2 and intercept 1."""
        self.assert_ok_output(
            "from sklearn.linear_model import LinearRegression\nimport numpy as np\n"
            "m = LinearRegression().fit(np.array([[0], [1], [2], [3]]), np.array([1, 3, 5, 7]))\n"
            "print(round(float(m.coef_[0]), 6), round(float(m.intercept_), 6))", "2.0 1.0\n")

    def test_statsmodels_ols(self):
        """statsmodels OLS recovers the exact line's parameters."""
        self.assert_ok_output(
            "import statsmodels.api as sm\nimport numpy as np\nx = np.arange(5.0)\n"
            "r = sm.OLS(2 * x + 1, sm.add_constant(x)).fit()\n"
            "print([round(float(v), 6) for v in r.params])", "[1.0, 2.0]\n")

    def test_cv2_cvtcolor(self):
        """cv2.cvtColor converts a pure red BGR array to gray value 76."""
        self.assert_ok_output(
            "import cv2, numpy as np\na = np.zeros((2, 3, 3), np.uint8)\na[..., 2] = 255\n"
            "g = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY)\nprint(g.shape, int(g[0, 0]))",
            "(2, 3) 76\n")

    def test_chess_legal_moves(self):
        """The chess start position has 20 legal moves."""
        self.assert_ok_output("import chess\nprint(chess.Board().legal_moves.count())", "20\n")

    def test_tabulate(self):
        """tabulate renders a simple table."""
        self.assert_ok_output("from tabulate import tabulate\n"
                              "print(tabulate([[1, 2]], headers=['a', 'b']))",
                              "  a    b\n---  ---\n  1    2\n")

    def test_striprtf(self):
        """striprtf turns RTF into plain text."""
        self.assert_ok_output("from striprtf.striprtf import rtf_to_text\n"
                              "print(repr(rtf_to_text(r'{\\rtf1\\ansi hello world}')))",
                              "'hello world'\n")

    def test_reportlab_pdf_read_back_with_pdfminer(self):
        """A reportlab PDF written to BytesIO is read back by pdfminer's extract_text."""
        self.assert_ok_output(
            "import io\nfrom reportlab.pdfgen import canvas\n"
            "from pdfminer.high_level import extract_text\n"
            "buf = io.BytesIO()\nc = canvas.Canvas(buf)\nc.drawString(100, 700, 'Hello PDF')\n"
            "c.save()\npdf = buf.getvalue()\nprint(pdf[:5])\n"
            "print(repr(extract_text(io.BytesIO(pdf)).strip()))",
            "b'%PDF-'\n'Hello PDF'\n")

    def test_altair_chart_to_dict(self):
        """altair builds a chart spec with to_dict()."""
        self.assert_ok_output(
            "import altair as alt, pandas as pd\n"
            "d = alt.Chart(pd.DataFrame({'a': [1]})).mark_bar().encode(x='a').to_dict()\n"
            "print(d['mark'], d['encoding']['x']['field'])", "{'type': 'bar'} a\n")

    def test_mpmath_pi_digits(self):
        """mpmath gives pi to 30 digits."""
        self.assert_ok_output("from mpmath import mp\nmp.dps = 30\nprint(mp.pi)",
                              "3.14159265358979323846264338328\n")

    def test_seaborn_plot_gives_png(self):
        """A seaborn plot comes back as one PNG part."""
        body = self.run_one("import seaborn as sns\nsns.histplot([1, 2, 2, 3, 3, 3])")
        self.assertEqual(results(body), [{"outcome": "OUTCOME_OK"}])
        imgs = images(body)
        self.assertEqual([i["mimeType"] for i in imgs], ["image/png"])
        self.assertEqual(png_size(imgs[0]["data"]), (640, 480))


if __name__ == "__main__":
    unittest.main()
