#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyembed.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/ipc.h"
#include "../common/block_report.h"
#include "worker.h"
#include "runner_py.h" /* generated from runner.py: runner_py_source[] */

/* Modules imported and warmed in the zygote: the user's fifteen libraries and the
 * submodules code reaches for first, so no worker pays for their import. */
static const char *const warm_modules[] = {
    "altair", "chess", "chess.pgn", "cv2", "matplotlib", "matplotlib.pyplot", "mpmath",
    "numpy", "pandas", "pdfminer", "pdfminer.high_level", "pdfminer.layout", "reportlab",
    "reportlab.pdfgen.canvas", "reportlab.lib.pagesizes", "reportlab.platypus", "seaborn",
    "sklearn", "sklearn.linear_model", "sklearn.model_selection", "sklearn.metrics",
    "sklearn.preprocessing", "sklearn.cluster", "sklearn.ensemble", "sklearn.tree",
    "sklearn.datasets", "statsmodels", "statsmodels.api", "statsmodels.formula.api",
    "striprtf", "striprtf.striprtf", "sympy", "tabulate", "scipy", "scipy.stats",
    "scipy.optimize", "scipy.integrate", "scipy.signal", "PIL", "PIL.Image",
    "PIL.ImageDraw", "json", "csv", "re", "math", "datetime", "collections", "itertools",
    "random", "statistics", "decimal", "fractions", "io", "textwrap", "string",
};

static PyObject *runner;      /* the runner module; lives for the process */
static struct interpreter_info info;   /* filled once by pyembed_init */
static int job_sock = -1;     /* where block_done sends; set by pyembed_run_job */
static struct stat capture_id[2];   /* the capture files: fds 1 and 2 when the code left
                                     * them so, measured at each block's end */

/* Prints the pending Python exception to stderr without PyErr_Print's habit of exiting
 * the process on SystemExit. */
static void log_py_error(const char *where)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (!type)
        return;
    PyErr_NormalizeException(&type, &value, &tb);
    fprintf(stderr, "pyexecd: python error in %s:\n", where);
    PyErr_Display(type, value, tb);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* The size of capture file id through fd, or UINT64_MAX when fd is no longer it (the code
 * closed or redirected it): the server then takes what the file holds. */
static uint64_t capture_end(int fd, const struct stat *id)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_dev != id->st_dev || st.st_ino != id->st_ino)
        return UINT64_MAX;
    return (uint64_t)st.st_size;
}

/* _pyexecd.block_done(index, status, error, out_truncated, err_truncated,
 *                     images_dropped, images, limit_flags)
 * Sends one IPC_W_BLOCK_DONE frame (layout in block_report.h). If the server has gone
 * there is nobody to report to: the worker exits. */
static PyObject *py_block_done(PyObject *self, PyObject *args)
{
    unsigned int index;
    int status, out_tr, err_tr, dropped;
    unsigned int limit;
    PyObject *error, *images;
    (void)self;

    if (!PyArg_ParseTuple(args, "IiUpppO!I", &index, &status, &error, &out_tr, &err_tr,
                          &dropped, &PyList_Type, &images, &limit))
        return NULL;
    PyObject *err_bytes = PyUnicode_AsEncodedString(error, "utf-8", "backslashreplace");
    if (!err_bytes)
        return NULL;

    struct ipc_buf b;
    ipc_buf_init(&b);
    size_t start = ipc_frame_begin(&b, IPC_W_BLOCK_DONE);
    ipc_put_u32(&b, index);
    ipc_put_u32(&b, status ? BLOCK_STATUS_EXCEPTION : BLOCK_STATUS_OK);
    ipc_put_u32(&b, (out_tr ? BLOCK_FLAG_STDOUT_TRUNCATED : 0) |
                    (err_tr ? BLOCK_FLAG_STDERR_TRUNCATED : 0) |
                    (dropped ? BLOCK_FLAG_IMAGES_DROPPED : 0) |
                    (limit & (BLOCK_FLAG_LIMIT_MEMORY | BLOCK_FLAG_LIMIT_DISK |
                              BLOCK_FLAG_LIMIT_FILE_SIZE | BLOCK_FLAG_LIMIT_THREADS |
                              BLOCK_FLAG_LIMIT_OPEN_FILES | BLOCK_FLAG_STDOUT_FULL |
                              BLOCK_FLAG_STDERR_FULL)));
    /* Where this block's output ends; UINT64_MAX ("as much as there is") if unknown. */
    ipc_put_u64(&b, capture_end(STDOUT_FILENO, &capture_id[0]));
    ipc_put_u64(&b, capture_end(STDERR_FILENO, &capture_id[1]));
    ipc_put_bytes(&b, PyBytes_AS_STRING(err_bytes), (size_t)PyBytes_GET_SIZE(err_bytes));
    Py_DECREF(err_bytes);

    Py_ssize_t n = PyList_GET_SIZE(images);
    ipc_put_u32(&b, (uint32_t)n);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(images, i);
        const char *mime, *data;
        Py_ssize_t mime_len, data_len;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
            !(mime = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(item, 0), &mime_len)) ||
            PyBytes_AsStringAndSize(PyTuple_GET_ITEM(item, 1), (char **)&data, &data_len) < 0) {
            ipc_buf_release(&b);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "images must be (mime, bytes) tuples");
            return NULL;
        }
        ipc_put_bytes(&b, mime, (size_t)mime_len);
        ipc_put_bytes(&b, data, (size_t)data_len);
    }
    ipc_frame_end(&b, start);
    if (b.failed) {
        ipc_buf_release(&b);
        return PyErr_NoMemory();
    }

    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = ipc_send_all(job_sock, b.data, b.len, NULL, 0);
    Py_END_ALLOW_THREADS
    ipc_buf_release(&b);
    if (rc < 0)
        _exit(0);
    Py_RETURN_NONE;
}

/* _pyexecd.end_children(): ends every process the block started (see worker.h). The GIL
 * stays held: between a block's end and its report no thread of the code may run (one
 * could hold the GIL for ever and the report would never be sent); the wait is for
 * SIGKILLed processes, and ends at once when there are none. */
static PyObject *py_end_children(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    worker_end_children();
    Py_RETURN_NONE;
}

static PyMethodDef pyexecd_methods[] = {
    {"block_done", py_block_done, METH_VARARGS, "Report one finished code block."},
    {"end_children", py_end_children, METH_NOARGS, "End the processes the code started."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef pyexecd_module = {
    PyModuleDef_HEAD_INIT, "_pyexecd", "pyexecd's worker channel.", -1, pyexecd_methods,
    NULL, NULL, NULL, NULL,
};

/* The module, with the report flags the runner sets (sandbox/block_report.h), so the
 * Python side names them instead of repeating their values. */
static PyObject *init_pyexecd_module(void)
{
    static const struct {
        const char *name;
        long value;
    } flags[] = {
        {"LIMIT_MEMORY", BLOCK_FLAG_LIMIT_MEMORY}, {"LIMIT_DISK", BLOCK_FLAG_LIMIT_DISK},
        {"LIMIT_FILE_SIZE", BLOCK_FLAG_LIMIT_FILE_SIZE},
        {"LIMIT_THREADS", BLOCK_FLAG_LIMIT_THREADS},
        {"LIMIT_OPEN_FILES", BLOCK_FLAG_LIMIT_OPEN_FILES},
        {"STDOUT_FULL", BLOCK_FLAG_STDOUT_FULL}, {"STDERR_FULL", BLOCK_FLAG_STDERR_FULL},
    };
    PyObject *m = PyModule_Create(&pyexecd_module);
    for (size_t i = 0; m && i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (PyModule_AddIntConstant(m, flags[i].name, flags[i].value) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}

/* Calls runner.<name>(*args); returns a new reference or NULL with the error logged. */
static PyObject *call_runner(const char *name, PyObject *args)
{
    PyObject *fn = PyObject_GetAttrString(runner, name);
    PyObject *res = NULL;
    if (fn)
        res = PyObject_CallObject(fn, args);
    Py_XDECREF(fn);
    if (!res)
        log_py_error(name);
    return res;
}

static int add_site_packages(const char *dir)
{
    PyObject *site = PyImport_ImportModule("site");
    PyObject *res = NULL;
    if (site)
        res = PyObject_CallMethod(site, "addsitedir", "s", dir);
    Py_XDECREF(site);
    if (!res) {
        log_py_error("site.addsitedir");
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* Copies a Python str into dst (size n), cut to fit; "" for anything else. */
static void copy_str(PyObject *o, char *dst, size_t n)
{
    const char *s = o && PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
    snprintf(dst, n, "%s", s ? s : "");
    PyErr_Clear();
}

/* The runner's describe() result, (python, [(name, version, lists)], [failure]), into
 * info. */
static int fill_info(PyObject *res)
{
    PyObject *libs, *fails;
    PyObject *python;
    if (!PyArg_ParseTuple(res, "OO!O!", &python, &PyList_Type, &libs, &PyList_Type, &fails))
        return -1;
    copy_str(python, info.python, sizeof(info.python));
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(libs) && info.nlibraries < INTERPRETER_INFO_LIBRARIES; i++) {
        PyObject *entry = PyList_GET_ITEM(libs, i);
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 3)
            return -1;
        struct library_version *lib = &info.libraries[info.nlibraries++];
        copy_str(PyTuple_GET_ITEM(entry, 0), lib->name, sizeof(lib->name));
        copy_str(PyTuple_GET_ITEM(entry, 1), lib->version, sizeof(lib->version));
        lib->lists = (unsigned)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(entry, 2));
        PyErr_Clear();
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(fails) && info.nfailures < INTERPRETER_INFO_FAILURES; i++)
        copy_str(PyList_GET_ITEM(fails, i), info.import_failures[info.nfailures++],
                 sizeof(info.import_failures[0]));
    return 0;
}

int pyembed_init(const struct pyembed_options *opt, char *err, size_t errlen)
{
    PyStatus st;
    PyPreConfig pre;
    PyConfig config;

    /* UTF-8 everywhere regardless of the host's locale. Objects go through glibc's malloc
     * rather than pymalloc's arenas, so that with glibc.malloc.hugetlb=1 (set in the
     * zygote's environment) the heap sits on transparent huge pages: a fork then copies,
     * and an exit frees, far fewer page-table entries (measured here: about 4 ms each
     * instead of 10-11). */
    PyPreConfig_InitIsolatedConfig(&pre);
    pre.utf8_mode = 1;
    pre.allocator = PYMEM_ALLOCATOR_MALLOC;
    st = Py_PreInitialize(&pre);
    if (PyStatus_Exception(st))
        goto status_error;

    if (PyImport_AppendInittab("_pyexecd", init_pyexecd_module) < 0) {
        snprintf(err, errlen, "cannot register the _pyexecd module");
        return -1;
    }

    /* Isolated: no environment variables, no user site. And, unlike the isolated default:
     * no site import (its paths are Debian's, not ours), no bytecode writing (workers
     * must not touch the library tree), unbuffered stdio (a killed worker keeps what it
     * printed), no signal handlers (the worker's signals stay at their defaults). */
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.write_bytecode = 0;
    config.buffered_stdio = 0;
    config.install_signal_handlers = 0;
    config.user_site_directory = 0;
    /* The prefix, and so the standard library, is found from Debian's interpreter. */
    st = PyConfig_SetBytesString(&config, &config.executable, "/usr/bin/python3.11");
    if (PyStatus_Exception(st)) {
        PyConfig_Clear(&config);
        goto status_error;
    }
    st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st))
        goto status_error;

    if (add_site_packages(opt->site_packages) < 0) {
        snprintf(err, errlen, "cannot add %s to the module path", opt->site_packages);
        return -1;
    }

    PyObject *code = Py_CompileString(runner_py_source, "pyexecd/runner.py", Py_file_input);
    if (code)
        runner = PyImport_ExecCodeModuleEx("pyexecd_runner", code, "pyexecd/runner.py");
    Py_XDECREF(code);
    if (!runner) {
        log_py_error("loading the runner");
        snprintf(err, errlen, "cannot load the runner module");
        return -1;
    }

    PyObject *args = Py_BuildValue("(zIinnInz)", opt->runner_file, opt->runner_line,
                                   opt->plain_tracebacks,
                                   (Py_ssize_t)opt->output_cap, (Py_ssize_t)opt->image_cap,
                                   opt->images_per_block,
                                   (Py_ssize_t)opt->image_bytes_per_request,
                                   opt->executable);
    PyObject *res = args ? call_runner("setup", args) : NULL;
    Py_XDECREF(args);
    if (!res) {
        snprintf(err, errlen, "runner setup failed");
        return -1;
    }
    Py_DECREF(res);

    size_t nmods = sizeof(warm_modules) / sizeof(warm_modules[0]);
    PyObject *names = PyList_New((Py_ssize_t)nmods);
    for (size_t i = 0; names && i < nmods; i++)
        PyList_SET_ITEM(names, (Py_ssize_t)i, PyUnicode_FromString(warm_modules[i]));
    args = names ? Py_BuildValue("(N)", names) : NULL;
    PyObject *failures = args ? call_runner("warm", args) : NULL;
    Py_XDECREF(args);
    if (!failures) {
        snprintf(err, errlen, "warming the libraries failed");
        return -1;
    }
    args = Py_BuildValue("(N)", failures);
    res = args ? call_runner("describe", args) : NULL;
    Py_XDECREF(args);
    if (!res || fill_info(res) < 0) {
        Py_XDECREF(res);
        log_py_error("describing the libraries");
        snprintf(err, errlen, "cannot describe the libraries");
        return -1;
    }
    Py_DECREF(res);

    /* Move everything alive now into the permanent generation: otherwise a worker's
     * first collection walks, and so dirties, every page of the zygote's heap. */
    /* (No `import`: it would leave the name gc in the code's globals, which are __main__'s.) */
    if (PyRun_SimpleString("__import__('gc').collect(); __import__('gc').freeze()") != 0) {
        snprintf(err, errlen, "gc.freeze failed");
        return -1;
    }
    return 0;

status_error:
    snprintf(err, errlen, "python initialisation failed: %s%s%s",
             st.func ? st.func : "", st.func ? ": " : "", st.err_msg ? st.err_msg : "?");
    return -1;
}

const struct interpreter_info *pyembed_info(void)
{
    return &info;
}

void pyembed_after_fork_child(void)
{
    PyOS_AfterFork_Child();
    PyObject *res = call_runner("after_fork", NULL);
    if (!res)
        _exit(WORKER_EXIT_SETUP);
    Py_DECREF(res);
}

unsigned pyembed_scout_count(void)
{
    PyObject *res = call_runner("scout_count", NULL);
    long n = res ? PyLong_AsLong(res) : 0;
    Py_XDECREF(res);
    PyErr_Clear();
    return n > 0 ? (unsigned)n : 0;
}

int pyembed_scout(unsigned job)
{
    PyOS_AfterFork_Child();
    PyObject *res = call_runner("after_fork", NULL);
    Py_XDECREF(res);
    PyObject *args = res ? Py_BuildValue("(I)", job) : NULL;
    res = args ? call_runner("scout", args) : NULL;
    Py_XDECREF(args);
    if (!res)
        return -1;
    Py_DECREF(res);
    return 0;
}

int pyembed_run_job(int sock, const struct stat capture[2], const char *const *codes,
                    const size_t *lens, size_t n, unsigned profile)
{
    job_sock = sock;
    capture_id[0] = capture[0];
    capture_id[1] = capture[1];
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list) {
        log_py_error("run_job");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *s = PyUnicode_DecodeUTF8(codes[i], (Py_ssize_t)lens[i], "replace");
        if (!s) {
            Py_DECREF(list);
            log_py_error("decoding code");
            return -1;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, s);
    }
    PyObject *args = Py_BuildValue("(NI)", list, profile);
    PyObject *res = args ? call_runner("run_job", args) : NULL;
    Py_XDECREF(args);
    if (!res)
        return -1;
    Py_DECREF(res);
    return 0;
}
