"""pyexecd's runner: the Python half of a worker.

Compiled into the binary (CMake embeds this file) and imported once by the zygote, so
every worker forked from it starts with these functions ready. The C half
(sandbox/pyembed.c) calls:

  setup(...)     once in the zygote: limits and the traceback's runner frame
  warm(names)    once in the zygote: import and exercise the libraries
  describe(...)  once in the zygote: the versions /healthz reports
  after_fork()   in each worker, before any user code
  scout_count(), scout(i)   in the zygote's scouts (sandbox/prefault.h), never a worker
  run_job(codes) in each worker: run the blocks in one namespace, report each block
                 through _pyexecd.block_done as soon as it ends

Behaviour mirrors the real service as described in docs/gemini-wire.md:
dedent, compile as "<string>", run in __main__'s namespace kept across blocks, on an
exception report "str(exc)\\n" + a traceback whose first frame is the service's runner.
"""

import builtins
import errno
import io
import json
import linecache
import os
import signal
import sys
import textwrap
import traceback

import _pyexecd

_OUTPUT_CAP = 1 << 20
_IMAGE_CAP = 8 << 20
_IMAGES_PER_BLOCK = 16
_profiles = {}           # number -> (exec wrapper, keeps the runner frame, str(exc) header)

# Set while a block runs: the images it produced so far (list of (mime, bytes)) and
# whether some were dropped for being over the limits.
_block_images = []
_images_dropped = False
_job_image_bytes = 0   # image bytes reported so far in this job

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


def _make_run_python(filename, lineno):
    """Returns a function _run_python(code, scope) -> exception or None whose exec call
    sits at `filename`:`lineno`, like the real service's runner, so that tracebacks read
    the same. Its source goes into linecache (mtime None: never invalidated) so the
    traceback shows the line and its carets."""
    src = ("\n" * (lineno - 3)
           + "def _run_python(code, exec_scope):\n"
           + "  try:\n"
           + "    exec(code, exec_scope)  # pylint: disable=exec-used\n"
           + "  except BaseException as exc:  # everything, SystemExit included\n"
           + "    return exc\n"
           + "  return None\n")
    ns = {"__builtins__": builtins}
    exec(compile(src, filename, "exec"), ns)
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    return ns["_run_python"]


# The traceback profiles (common/fidelity.h), by number: (runner frame's file and line or
# None, whether str(exc) heads the output). 0, the server's default, is set by setup().
_PROFILES = {
    1: (("/usr/bin/entry/named_interpreters/python/interpreter", 98), True),
    2: (("/usr/bin/entry/entry_point", 117), True),
    3: (None, False),
}


def _make_profile(frame, header):
    """(the exec wrapper, whether the traceback keeps its first frame, header)."""
    file, line = frame if frame else ("<pyexecd runner>", 3)
    return _make_run_python(file, line), frame is not None, header


def setup(runner_file, runner_line, plain, output_cap, image_cap, images_per_block,
          image_bytes_per_request, executable):
    """Called once in the zygote. runner_file None: no runner frame in tracebacks; plain:
    no str(exc) line before the traceback either. That is profile 0; the fixed profiles
    are made too, so that a request may ask for one."""
    global _OUTPUT_CAP, _IMAGE_CAP, _IMAGES_PER_BLOCK, _IMAGE_BYTES_PER_REQUEST
    global _profiles
    _OUTPUT_CAP = output_cap
    _IMAGE_CAP = image_cap
    _IMAGES_PER_BLOCK = images_per_block
    _IMAGE_BYTES_PER_REQUEST = image_bytes_per_request
    frame = (runner_file, runner_line) if runner_file is not None else None
    _profiles = {0: _make_profile(frame, not plain)}
    for number, (f, header) in _PROFILES.items():
        _profiles[number] = _make_profile(f, header)
    # exit(), quit(), help(), copyright, credits and license come from site, which the
    # embedded interpreter does not run; code written for an ordinary python3 uses them.
    import site
    site.setquit()
    site.setcopyright()
    site.sethelper()
    sys.argv = [""]
    # What subprocess.run([sys.executable, ...]) runs, where the policy lets the code run
    # programs: the venv's python3, which has the same libraries.
    if executable:
        sys.executable = executable
    # The capturing streams, made once here: every worker finds them already on fds 1 and
    # 2, where it puts its capture files.
    _install_streams()


# --- output capture ------------------------------------------------------------------

class _CappedFd(io.RawIOBase):
    """Writes straight to a file descriptor (no buffering: a worker killed at its deadline
    keeps everything it printed) and keeps at most `cap` bytes per code block; past that
    it drops the rest and remembers it did, so the server can say so."""

    def __init__(self, fd, cap):
        super().__init__()
        self._fd = fd
        self.cap = cap
        self.used = 0
        self.truncated = False
        self.full = False     # the capture file hit RLIMIT_FSIZE: nothing more fits

    def begin_block(self):
        self.used = 0
        self.truncated = False
        self.full = False     # the server empties a session's capture files between calls

    def writable(self):
        return True

    def fileno(self):
        return self._fd

    def isatty(self):
        return False

    def write(self, b):
        view = memoryview(b).cast("B")
        n = len(view)
        room = self.cap - self.used
        if n > room:
            self.truncated = True
            view = view[:max(room, 0)]
        done = 0
        while done < len(view):
            try:
                done += os.write(self._fd, view[done:])
            except InterruptedError:
                continue
            except OSError as e:
                # The capture file is full (RLIMIT_FSIZE): the rest is cut, and the reply
                # says so. The code closed or replaced the fd: its output is its own
                # business. Either way the code keeps running.
                if e.errno in (errno.EFBIG, errno.ENOSPC):
                    self.truncated = True
                    self.full = True
                break
        self.used += done
        return n


_stdout_raw = None
_stderr_raw = None


def _install_streams():
    global _stdout_raw, _stderr_raw
    _stdout_raw = _CappedFd(1, _OUTPUT_CAP)
    _stderr_raw = _CappedFd(2, _OUTPUT_CAP)
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(
        _stdout_raw, encoding="utf-8", errors="strict", write_through=True)
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        _stderr_raw, encoding="utf-8", errors="backslashreplace", write_through=True)


def _flush_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


# --- images ----------------------------------------------------------------------------

def _add_image(mime, data):
    """Keeps an image for the block's report, within the per-block count, the per-image
    size and the request's budget (the server refuses a report larger than those allow)."""
    global _images_dropped, _job_image_bytes
    if (len(_block_images) >= _IMAGES_PER_BLOCK or len(data) > _IMAGE_CAP
            or _job_image_bytes + len(data) > _IMAGE_BYTES_PER_REQUEST):
        _images_dropped = True
        return
    _job_image_bytes += len(data)
    _block_images.append((mime, bytes(data)))


def _render_open_figures(skip_saved=False):
    """Renders open matplotlib figures as 100-dpi PNGs, in figure-number order, then
    closes them all. With skip_saved, a figure the code saved to a file is not rendered:
    the file comes back instead (the real service returns one image for savefig without
    show)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    from matplotlib import _pylab_helpers
    managers = sorted(_pylab_helpers.Gcf.get_all_fig_managers(), key=lambda m: m.num)
    try:
        for manager in managers:
            figure = manager.canvas.figure
            if skip_saved and getattr(figure, "_pyexecd_saved_to_file", False):
                continue
            buf = io.BytesIO()
            figure.savefig(buf, format="png", dpi=100)
            _add_image("image/png", buf.getvalue())
    finally:
        pyplot.close("all")


def _close_figures():
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


def _show(*args, **kwargs):
    """Replaces matplotlib.pyplot.show: the figures come back as image parts."""
    _render_open_figures()


def _mark_saves(figure_class):
    """Wraps Figure.savefig so that a figure saved to a path is remembered as saved."""
    original = figure_class.savefig

    def savefig(self, fname, *args, **kwargs):
        result = original(self, fname, *args, **kwargs)
        if isinstance(fname, (str, bytes, os.PathLike)):
            self._pyexecd_saved_to_file = True
        return result

    savefig.__doc__ = original.__doc__
    savefig.__wrapped__ = original
    figure_class.savefig = savefig


def _snapshot(workdir):
    """{name: (mtime_ns, size, inode)} of the regular files directly in workdir."""
    snap = {}
    try:
        with os.scandir(workdir) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if (st.st_mode & 0o170000) == 0o100000:
                    snap[entry.name] = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        pass
    return snap


def _read_image_file(path):
    """Reads a regular file of at most _IMAGE_CAP bytes without following links: the work
    dir belongs to the code, and a symlink or FIFO there must not make us read elsewhere
    or block."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000:
            return None
        if st.st_size > _IMAGE_CAP:
            global _images_dropped
            _images_dropped = True
            return None
        chunks, left = [], st.st_size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _collect_image_files(workdir, before):
    """Image files (png, jpeg) the block created in the work dir, oldest first. A file
    that existed before the block is not returned again, even if rewritten: the real
    service returned nothing for a block that saved over an earlier block's file."""
    created = []
    for name, sig in _snapshot(workdir).items():
        if os.path.splitext(name)[1].lower() not in (".png", ".jpg", ".jpeg"):
            continue
        if name not in before:
            created.append((sig[0], name))
    for _, name in sorted(created):
        data = _read_image_file(os.path.join(workdir, name))
        if data is None:
            continue
        if data.startswith(_PNG_MAGIC):
            _add_image("image/png", data)
        elif data.startswith(_JPEG_MAGIC):
            _add_image("image/jpeg", data)


# --- failures ---------------------------------------------------------------------------

def _safe_str(exc):
    try:
        return str(exc)
    except BaseException:
        return "<exception str() failed>"


# Python 3.12 (the real service's version) appends "Did you mean" hints to NameError,
# AttributeError and ImportError in tracebacks; the 3.11 traceback module does not. This
# follows 3.12's rules: a Levenshtein distance where a case change costs 1 and any other
# edit 2, candidates limited in number and length.
_MOVE_COST = 2
_CASE_COST = 1
_MAX_CANDIDATES = 750
_MAX_NAME = 40


def _edit_distance(a, b, limit):
    if a == b:
        return 0
    pre = 0
    while pre < min(len(a), len(b)) and a[pre] == b[pre]:
        pre += 1
    a, b = a[pre:], b[pre:]
    while a and b and a[-1] == b[-1]:
        a, b = a[:-1], b[:-1]
    if not a or not b:
        return (len(a) + len(b)) * _MOVE_COST
    if len(a) > _MAX_NAME or len(b) > _MAX_NAME:
        return limit + 1
    if len(b) < len(a):
        a, b = b, a
    if (len(b) - len(a)) * _MOVE_COST > limit:
        return limit + 1
    row = list(range(_MOVE_COST, _MOVE_COST * (len(a) + 1), _MOVE_COST))
    result = 0
    for bi, bc in enumerate(b):
        left = result = bi * _MOVE_COST
        lowest = limit + 1
        for i, ac in enumerate(a):
            if ac == bc:
                sub = 0
            elif ac.lower() == bc.lower():
                sub = _CASE_COST
            else:
                sub = _MOVE_COST
            diag = left + sub
            left = row[i]
            result = min(result + _MOVE_COST, left + _MOVE_COST, diag)
            row[i] = result
            lowest = min(lowest, result)
        if lowest > limit:
            return limit + 1
    return result


def _closest(candidates, wrong):
    if len(candidates) > _MAX_CANDIDATES or len(wrong) > _MAX_NAME:
        return None
    best, best_cost = None, len(wrong)
    for name in candidates:
        if not isinstance(name, str) or name == wrong:
            continue
        limit = min((len(name) + len(wrong) + 3) * _MOVE_COST // 6, best_cost - 1)
        cost = _edit_distance(wrong, name, limit)
        if cost > limit:
            continue
        if best is None or cost < best_cost:
            best, best_cost = name, cost
    return best


def _last_frame(tb):
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame if tb is not None else None


def _visible(names, wrong, obj_is_self):
    if wrong[:1] != "_" and not obj_is_self:
        return [n for n in names if not n.startswith("_")]
    return list(names)


def _hint(exc):
    """The text 3.12 appends to the exception line, or ""."""
    try:
        if isinstance(exc, (NameError, AttributeError)):
            wrong = getattr(exc, "name", None)
            if not isinstance(wrong, str):
                return ""
            if isinstance(exc, AttributeError):
                obj = exc.obj
                try:
                    names = dir(obj)
                except Exception:
                    return ""
                frame = _last_frame(exc.__traceback__)
                is_self = frame is not None and frame.f_locals.get("self", None) is obj
                suggestion = _closest(_visible(names, wrong, is_self), wrong)
            else:
                frame = _last_frame(exc.__traceback__)
                if frame is None:
                    return ""
                # Inside a method whose instance has the name: 3.12 suggests self.name.
                if "self" in frame.f_locals and hasattr(frame.f_locals["self"], wrong):
                    suggestion = "self." + wrong
                else:
                    names = (list(frame.f_locals) + list(frame.f_globals)
                             + list(frame.f_builtins))
                    suggestion = _closest(names, wrong)
            text = f". Did you mean: '{suggestion}'?" if suggestion else ""
            if isinstance(exc, NameError) and wrong in sys.stdlib_module_names:
                text += (f" Or did you forget to import '{wrong}'?" if suggestion
                         else f". Did you forget to import '{wrong}'?")
            return text
        if type(exc) is ImportError and exc.name and exc.args:
            # "cannot import name 'x' from 'mod' (path)": 3.12 suggests a name of mod.
            message = exc.args[0]
            prefix = "cannot import name '"
            if isinstance(message, str) and message.startswith(prefix):
                wrong = message[len(prefix):].split("'", 1)[0]
                # 3.12 looks the module up with __import__, which for "a.b" gives "a".
                module = __import__(exc.name)
                suggestion = _closest(_visible(dir(module), wrong, False), wrong)
                if suggestion:
                    return f". Did you mean: '{suggestion}'?"
    except Exception:
        pass
    return ""


def _add_hints(te, exc):
    """Walks a TracebackException and its exception in step (causes, contexts, groups) and
    appends each exception's hint."""
    seen = set()
    stack = [(te, exc)]
    while stack:
        te, exc = stack.pop()
        if te is None or exc is None or id(te) in seen:
            continue
        seen.add(id(te))
        te._str += _hint(exc)
        stack.append((te.__cause__, exc.__cause__))
        stack.append((te.__context__, exc.__context__))
        for sub_te, sub_exc in zip(te.exceptions or (), getattr(exc, "exceptions", ()) or ()):
            stack.append((sub_te, sub_exc))


# Which sandbox limit an uncaught exception comes from: flags of sandbox/block_report.h.
_LIMIT_MEMORY = _pyexecd.LIMIT_MEMORY
_LIMIT_DISK = _pyexecd.LIMIT_DISK
_LIMIT_FILE_SIZE = _pyexecd.LIMIT_FILE_SIZE
_LIMIT_THREADS = _pyexecd.LIMIT_THREADS
_LIMIT_OPEN_FILES = _pyexecd.LIMIT_OPEN_FILES


def _limit_of(exc):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MemoryError):
            return _LIMIT_MEMORY
        if isinstance(exc, OSError):
            limit = {errno.ENOSPC: _LIMIT_DISK, errno.EDQUOT: _LIMIT_DISK,
                     errno.EFBIG: _LIMIT_FILE_SIZE, errno.EMFILE: _LIMIT_OPEN_FILES}.get(exc.errno)
            if limit:
                return limit
        if isinstance(exc, RuntimeError) and "can't start new thread" in _safe_str(exc):
            return _LIMIT_THREADS
        exc = exc.__cause__ or exc.__context__
    return 0


def _format_failure(exc, with_frame, header):
    """The real service's FAILED text: str(exc), a newline, then the traceback (with the
    runner's frame first); without header, the traceback alone."""
    tb = exc.__traceback__
    if not with_frame and tb is not None:
        tb = tb.tb_next
    try:
        te = traceback.TracebackException(type(exc), exc, tb, compact=True)
        _add_hints(te, exc)
        text = "".join(te.format())
    except BaseException:
        text = "".join(traceback.format_exception_only(type(exc), exc))
    # At most one output cap of bytes each (the server sizes the frames it accepts on
    # that): str(exc) cut at its end, the traceback in its middle.
    if len(text.encode("utf-8", "surrogatepass")) > _OUTPUT_CAP:
        half = _OUTPUT_CAP // 2 - 32
        text = (_utf8_cut(text, 0, half) + "\n[traceback truncated]\n"
                + _utf8_cut(text, -half, None))
    if not header:
        return text
    return _utf8_cut(_safe_str(exc), 0, _OUTPUT_CAP) + "\n" + text


def _utf8_cut(s, start, stop):
    """s's UTF-8 bytes [start:stop], as text (a character cut in two is dropped)."""
    return s.encode("utf-8", "surrogatepass")[start:stop].decode("utf-8", "ignore")


# --- the zygote and the worker ---------------------------------------------------------

def _warm_sympy():
    import sympy
    x, y = sympy.symbols("x y")
    sympy.solve([x + y - 2, x - y], [x, y])
    sympy.solve(x**2 - 2, x)
    # A cubic takes other paths than a quadratic (roots_cubic, the factoring of its
    # polynomial): without this, a worker's first cubic solve cost about 2 ms more (the
    # paced sympy snippet: 0.85 times the time, bench/ab.py).
    sympy.solve(x**3 - 2 * x**2 - x + 2, x)
    sympy.simplify(sympy.sin(x) ** 2 + sympy.cos(x) ** 2)
    sympy.integrate(x**2 * sympy.exp(x), x)
    sympy.diff(sympy.sqrt(x) * sympy.log(x), x)
    str(sympy.factor(x**3 - y**3))
    sympy.latex(x**2 / y)


def _warm_models():
    import numpy as np
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import train_test_split
    X = np.arange(40.0).reshape(20, 2)
    y = X @ np.array([1.0, 2.0])
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
    LinearRegression().fit(Xtr, ytr).score(Xte, yte)
    import statsmodels.api as sm
    sm.OLS(y, sm.add_constant(X[:, 0])).fit().summary()
    import scipy.stats
    scipy.stats.ttest_ind(X[:, 0], X[:, 1])


def _warm_seaborn():
    import io as _io
    import pandas as pd
    import seaborn as sns
    import matplotlib.pyplot as plt
    df = pd.DataFrame({"x": [1, 2, 3, 4], "y": [2, 1, 4, 3], "g": list("abab")})
    sns.barplot(data=df, x="g", y="y")
    plt.gcf().savefig(_io.BytesIO(), format="png", dpi=100)
    plt.close("all")


_WARM_JOBS = (("sympy", _warm_sympy), ("scikit-learn and statsmodels", _warm_models),
              ("seaborn", _warm_seaborn))


def warm(module_names):
    """Imports the libraries and runs one small pandas and one matplotlib job, so that
    their lazy initialisation happens once in the zygote instead of in every worker.
    Returns the names that failed to import (empty when all is well)."""
    import importlib
    failed = []
    for name in module_names:
        try:
            importlib.import_module(name)
        except Exception as e:  # reported in /healthz, the server keeps going
            failed.append(f"{name}: {type(e).__name__}: {e}")
    try:
        import numpy as np
        import pandas as pd
        df = pd.DataFrame({"a": np.arange(100.0), "b": np.arange(100) % 7})
        df.describe().to_string()
        df.groupby("b").mean().to_string()
        pd.read_csv(io.StringIO("x,y\n1,2\n3,4\n")).to_string()
    except Exception as e:
        failed.append(f"pandas warm-up: {e}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.figure
        plt.show = _show
        _mark_saves(matplotlib.figure.Figure)
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [4, 1, 9], label="x")
        ax.set_title("warm")
        ax.legend()
        fig.savefig(io.BytesIO(), format="png", dpi=100)
        plt.close("all")
    except Exception as e:
        failed.append(f"matplotlib warm-up: {e}")
    # First calls that fill caches and import submodules lazily: without this every
    # worker would pay them again (a fresh sympy.solve costs 50 ms, a warm one 1.5 ms).
    for name, job in _WARM_JOBS:
        try:
            job()
        except Exception as e:
            failed.append(f"{name} warm-up: {e}")
    try:
        import cv2
        cv2.setNumThreads(0)  # no thread pool: the zygote must stay single-threaded to fork
    except Exception:
        pass
    return failed


# The scouts (sandbox/prefault.h): code of the kinds requests most often run, each run
# once in a fork of the zygote of its own, so that the pages its libraries' code paths
# write are known and every pooled worker copies them while it waits. Ordinary uses of
# each library, not the benchmark's snippets: what matters is which code runs (whose
# objects' reference counts it writes), not the data.
_SCOUT_JOBS = (
    "print(sum(range(10)), f'{3.5:.2f}')\n",
    "import numpy as np\nimport pandas as pd\n"
    "df = pd.DataFrame(np.random.default_rng().normal(size=(50, 3)), columns=['x', 'y', 'z'])\n"
    "print(df.describe())\nprint(df.head())\nprint(df.mean())\n",
    "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
    "ax.plot([0, 1, 2, 3], [1, 3, 2, 4], label='a')\nax.set_title('t')\n"
    "ax.set_xlabel('x')\nax.legend()\nplt.show()\n",
    "import sympy as sp\nx = sp.symbols('x')\nprint(sp.solve(x**3 - 2*x**2 - x + 2, x))\n"
    "print(sp.expand((x + 1)**3))\n",
    "import numpy as np\na = np.linspace(0, 1, 101)\nprint(a.mean(), a.std(), np.sqrt(a).sum())\n",
)


def scout_count():
    return len(_SCOUT_JOBS)


def scout(index):
    """Runs scout snippet `index` as run_job runs a block (same scope, streams, figures,
    image files), in a fork of the zygote that then dies: nothing is reported."""
    global _block_images
    _stdout_raw.begin_block()
    _stderr_raw.begin_block()
    workdir = os.getcwd()
    before = _snapshot(workdir)
    exc = _profiles[0][0](_SCOUT_JOBS[index], sys.modules["__main__"].__dict__)
    _render_open_figures(skip_saved=True)
    _collect_image_files(workdir, before)
    _flush_streams()
    _block_images = []
    if exc is not None:
        raise exc


# The libraries the real service documents (docs/gemini-wire.md), by distribution name
# (alternatives where the name changed): Vertex AI's list (the user's fifteen) and the
# Gemini API's, which adds the rest. What /healthz and GET /v1/environment report.
_LIST_VERTEX, _LIST_GEMINI = 1, 2
_VERTEX = ("altair", "chess", "opencv-python-headless", "matplotlib", "mpmath", "numpy",
           "pandas", "pdfminer.six", "reportlab", "seaborn", "scikit-learn", "statsmodels",
           "striprtf", "sympy", "tabulate")
_GEMINI_MORE = ("attrs", "contourpy", ("fpdf2", "fpdf"), "geopandas", "imageio", "jinja2",
                "joblib", "jsonschema", "lxml", "openpyxl", "packaging", "pillow", "protobuf",
                "pylatex", "pyparsing", "pypdf2", "python-dateutil", "python-docx",
                "python-pptx", "scipy", "six", "tensorflow", "toolz", "xlrd")


def describe(import_failures):
    """(Python version, [(distribution, version or "", lists)], import failures): what the
    zygote reports to the server. lists: the documented lists (bits) naming it."""
    from importlib import metadata
    entries = [(d, _LIST_VERTEX | _LIST_GEMINI) for d in _VERTEX]
    entries += [(d, _LIST_GEMINI) for d in _GEMINI_MORE]
    libraries = []
    for dist, lists in entries:
        names = dist if isinstance(dist, tuple) else (dist,)
        version = ""
        for name in names:
            try:
                version = metadata.version(name)
                break
            except Exception:
                continue
        libraries.append((names[0], version, lists))
    return sys.version.split()[0], libraries, list(import_failures)


def after_fork():
    """In each worker: numpy's global random state was copied from the zygote and would
    repeat in every execution; reseed it from the kernel. (random reseeds itself through
    its at-fork hook; the streams were installed in the zygote.)"""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
    # Where the zygote keeps matplotlib's cache is the server's business (and covered).
    os.environ.pop("MPLCONFIGDIR", None)
    # Python's own SIGINT handler, as an ordinary python3 has: an embedded interpreter
    # leaves SIGINT at its default, which is ignored in a worker that is pid 1 of its
    # namespace, so os.kill(os.getpid(), SIGINT) would do nothing instead of raising
    # KeyboardInterrupt. (Set here, not in the zygote, which must not turn a Ctrl-C of
    # the server into a Python exception.)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    global _worker_pid
    _worker_pid = os.getpid()


# The worker's own pid: a process the code forks (os.fork, where the policy allows it)
# is a copy of the worker, runner included, and must never report to the server.
_worker_pid = None


def _end_if_forked(exc):
    """In a process the code forked, once the block's code is done: it ends there, as a
    forked python3 would at the end of its script (the traceback on stderr, status 1 for an
    exception), instead of running on into the runner's reports."""
    if os.getpid() == _worker_pid:
        return
    status = 0
    if isinstance(exc, SystemExit):
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    elif exc is not None:
        try:
            traceback.print_exception(exc)
        except BaseException:
            pass
        status = 1
    _flush_streams()
    os._exit(status)


def run_job(codes, profile=0):
    """Runs the code blocks in order in __main__'s namespace (pickle finds classes the code
    defines there) and reports each through _pyexecd.block_done; FAILED outputs read as
    traceback profile `profile` (common/fidelity.h) says."""
    global _block_images, _images_dropped, _job_image_bytes
    _job_image_bytes = 0
    scope = sys.modules["__main__"].__dict__
    workdir = os.getcwd()
    run_python, with_frame, header = _profiles.get(profile, _profiles[0])
    for index, code in enumerate(codes):
        _stdout_raw.begin_block()
        _stderr_raw.begin_block()
        _block_images = []
        _images_dropped = False
        before = _snapshot(workdir)

        exc = run_python(textwrap.dedent(code), scope)
        _end_if_forked(exc)
        _pyexecd.end_children()   # nothing the block started outlives it
        status, error, limit = 0, "", 0
        if exc is not None:
            if isinstance(exc, SystemExit) and exc.code in (None, 0):
                pass  # exit() ends the block normally
            else:
                status, error, limit = (1, _format_failure(exc, with_frame, header),
                                        _limit_of(exc))
        exc = None
        # Figures left open come back after a block that succeeded, except those it saved
        # to a file; after a failure only what was shown and the files it wrote come back
        # (both as the real service's recordings show). Either way they are closed.
        try:
            if status == 0:
                _render_open_figures(skip_saved=True)
            else:
                _close_figures()
        except Exception as e:
            print(f"pyexecd: could not render a figure: {e}", file=sys.stderr)
        _collect_image_files(workdir, before)
        _flush_streams()
        if _stdout_raw.full:
            limit |= _pyexecd.STDOUT_FULL
        if _stderr_raw.full:
            limit |= _pyexecd.STDERR_FULL
        _pyexecd.block_done(index, status, error, _stdout_raw.truncated,
                            _stderr_raw.truncated, _images_dropped, _block_images, limit)
        _block_images = []
