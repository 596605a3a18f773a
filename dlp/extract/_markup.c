/* The regular-markup scanner behind xmltext.markup_text (issue 3 throughput).

Regular markup: every "<" opens a tag that a ">" closes before the next "<". For such a document the
scan gives exactly what xmltext's general path gives before its string rules: comments left out, the
text between tags copied, and after each structure tag the caller names (exactly, or by its start when
it closes itself) that tag's separator. Anything else - a "<" with no ">" before the next "<", a CDATA
section, an unterminated comment - returns None, and the caller takes the general path, which is exact
for any input.

Safety: this reads hostile attachments. Every read is bounded by the input's length (memchr and
memcmp over what remains); the output grows by doubling with overflow checked; no recursion. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_RULES 64

typedef struct {
    const char *tag;
    Py_ssize_t tag_len;
    const char *separator;
    Py_ssize_t separator_len;
} Rule;

typedef struct {
    Rule rules[MAX_RULES];
    int count;
} Rules;

typedef struct {
    char *buf;
    Py_ssize_t len;
    Py_ssize_t cap;
} Out;

static int
put(Out *out, const char *p, Py_ssize_t n)
{
    if (n <= 0) {
        return 0;
    }
    if (n > PY_SSIZE_T_MAX - out->len) {
        PyErr_NoMemory();
        return -1;
    }
    if (out->len + n > out->cap) {
        Py_ssize_t cap = out->cap ? out->cap : 4096;
        while (cap < out->len + n) {
            if (cap > PY_SSIZE_T_MAX / 2) {
                PyErr_NoMemory();
                return -1;
            }
            cap *= 2;
        }
        char *grown = PyMem_Realloc(out->buf, (size_t)cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        out->buf = grown;
        out->cap = cap;
    }
    memcpy(out->buf + out->len, p, (size_t)n);
    out->len += n;
    return 0;
}

/* The rules of a {tag: separator} dict of bytes. The dict keeps the bytes alive for the call. */
static int
load_rules(PyObject *dict, Rules *rules)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    rules->count = 0;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        if (!PyBytes_Check(key) || !PyBytes_Check(value) || PyBytes_GET_SIZE(key) < 2) {
            PyErr_SetString(PyExc_TypeError, "rules map tags (bytes) to separators (bytes)");
            return -1;
        }
        if (rules->count == MAX_RULES) {
            PyErr_SetString(PyExc_ValueError, "too many rules");
            return -1;
        }
        Rule *rule = &rules->rules[rules->count++];
        rule->tag = PyBytes_AS_STRING(key);
        rule->tag_len = PyBytes_GET_SIZE(key);
        rule->separator = PyBytes_AS_STRING(value);
        rule->separator_len = PyBytes_GET_SIZE(value);
    }
    return 0;
}

static const Rule *
exact_rule(const Rules *rules, const char *tag, Py_ssize_t len)
{
    for (int i = 0; i < rules->count; i++) {
        const Rule *rule = &rules->rules[i];
        if (rule->tag_len == len && memcmp(rule->tag, tag, (size_t)len) == 0) {
            return rule;
        }
    }
    return NULL;
}

static const Rule *
prefix_rule(const Rules *rules, const char *tag, Py_ssize_t len)
{
    for (int i = 0; i < rules->count; i++) {
        const Rule *rule = &rules->rules[i];
        if (rule->tag_len <= len && memcmp(rule->tag, tag, (size_t)rule->tag_len) == 0) {
            return rule;
        }
    }
    return NULL;
}

/* The first "-->" at or after `from`, or NULL. */
static const char *
comment_end(const char *p, Py_ssize_t from, Py_ssize_t n)
{
    while (from + 3 <= n) {
        const char *dash = memchr(p + from, '-', (size_t)(n - from));
        if (dash == NULL) {
            return NULL;
        }
        Py_ssize_t at = dash - p;
        if (at + 3 <= n && dash[1] == '-' && dash[2] == '>') {
            return dash;
        }
        from = at + 1;
    }
    return NULL;
}

/* "\n\t" -> "\t" (str.replace: each line break that a tab follows goes). */
static void
drop_breaks_before_tabs(Out *out)
{
    Py_ssize_t w = 0;
    for (Py_ssize_t r = 0; r < out->len; r++) {
        if (out->buf[r] == '\n' && r + 1 < out->len && out->buf[r + 1] == '\t') {
            continue;
        }
        out->buf[w++] = out->buf[r];
    }
    out->len = w;
}

/* "\t+\n" -> "\n" (a run of tabs that a line break follows goes). */
static void
drop_tabs_before_breaks(Out *out)
{
    Py_ssize_t w = 0, r = 0;
    while (r < out->len) {
        if (out->buf[r] != '\t') {
            out->buf[w++] = out->buf[r++];
            continue;
        }
        Py_ssize_t run = r;
        while (r < out->len && out->buf[r] == '\t') {
            r++;
        }
        if (r < out->len && out->buf[r] == '\n') {
            continue;
        }
        memmove(out->buf + w, out->buf + run, (size_t)(r - run));
        w += r - run;
    }
    out->len = w;
}

PyDoc_STRVAR(text_doc,
"text(data, tags, self_closing, tidy=False) -> bytes | None\n\n"
"The text of regular markup: text between tags, comments left out, each tag in `tags` followed by\n"
"its separator, each self-closing tag that starts with a key of `self_closing` by that separator.\n"
"With `tidy`, then every line break right before a tab goes, and then every run of tabs right\n"
"before a line break. None when the markup is not regular (see the module source).");

static PyObject *
text(PyObject *module, PyObject *args)
{
    Py_buffer data;
    PyObject *tags_dict, *self_closing_dict;
    int tidy = 0;
    if (!PyArg_ParseTuple(args, "y*O!O!|p", &data, &PyDict_Type, &tags_dict, &PyDict_Type, &self_closing_dict,
                          &tidy)) {
        return NULL;
    }
    Rules tags, self_closing;
    Out out = {NULL, 0, 0};
    PyObject *result = NULL;
    if (load_rules(tags_dict, &tags) < 0 || load_rules(self_closing_dict, &self_closing) < 0) {
        goto done;
    }
    const char *p = data.buf;
    Py_ssize_t n = data.len, pos = 0;
    int regular = 1;
    while (pos < n) {
        const char *lt = memchr(p + pos, '<', (size_t)(n - pos));
        Py_ssize_t start = lt ? lt - p : n;
        if (put(&out, p + pos, start - pos) < 0) {
            goto done;
        }
        if (lt == NULL) {
            break;
        }
        if (n - start >= 4 && memcmp(lt, "<!--", 4) == 0) {
            const char *end = comment_end(p, start + 4, n);
            if (end == NULL) {
                regular = 0;
                break;
            }
            pos = end - p + 3;
            continue;
        }
        const char *gt = lt + 1, *end = p + n;  /* tags are short: a plain loop beats two memchr calls */
        while (gt < end && *gt != '>' && *gt != '<') {
            gt++;
        }
        if (gt == end || *gt == '<') {
            regular = 0;
            break;
        }
        Py_ssize_t len = gt - lt + 1;
        if (len >= 3 && lt[1] == '!' && lt[2] == '[') {
            regular = 0;  /* CDATA: the general path turns it into text first */
            break;
        }
        if (lt[1] == '/' || gt[-1] == '/') {
            const Rule *rule = exact_rule(&tags, lt, len);
            if (rule == NULL && gt[-1] == '/') {
                rule = prefix_rule(&self_closing, lt, len);
            }
            if (rule != NULL && put(&out, rule->separator, rule->separator_len) < 0) {
                goto done;
            }
        }
        pos = gt - p + 1;
    }
    if (!regular) {
        result = Py_NewRef(Py_None);
    }
    else {
        if (tidy) {
            drop_breaks_before_tabs(&out);
            drop_tabs_before_breaks(&out);
        }
        result = PyBytes_FromStringAndSize(out.buf ? out.buf : "", out.len);
    }
done:
    PyMem_Free(out.buf);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"text", text, METH_VARARGS, text_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_markup", "The regular-markup scanner (see _markup.c).", 0, methods,
};

PyMODINIT_FUNC
PyInit__markup(void)
{
    return PyModule_Create(&module);
}
