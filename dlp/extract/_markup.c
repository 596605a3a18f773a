/* The C scanner behind xmltext.markup_text and sheets.CompiledSheets (issue 3 throughput).

Office files are XML parts, megabytes of tags around a little text, and reading them is a loop over
bytes that Python (even with numpy) runs several times slower than memchr. Three readings, each of
regular markup only - every "<" opens a tag that a ">" closes before the next "<":
- text(): a Word, PowerPoint or OpenDocument part, as xmltext's general path reads it;
- sheet(): a worksheet, as documents.sheet_text reads it, shared strings spliced in;
- strings(): the shared-string table, as documents.shared_strings reads it.
Each gives exactly what its Python general path gives (tests/dlp/extract/test_fast_scan.py and
scanner_fuzz.py hold them equal), or None for markup it does not read exactly - a stray "<", CDATA,
an unterminated comment, an odd cell - and the caller takes the general path, exact for any input.

Safety: this reads hostile attachments. Every read is bounded by the input's length (memchr, memmem,
memcmp over what remains); the output grows by doubling with overflow checked; no recursion. It is
fuzzed under AddressSanitizer and UBSan in the test suite (test_scanner_sanitized.py). */

#define _GNU_SOURCE  /* memmem, memrchr */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* The first `lit` in p[from:n], or -1 (memmem: a two-way search, not a memchr per "<"). */
static Py_ssize_t
find(const char *p, Py_ssize_t n, Py_ssize_t from, const char *lit, Py_ssize_t len)
{
    if (from < 0 || from + len > n) {
        return -1;
    }
    const char *hit = memmem(p + from, (size_t)(n - from), lit, (size_t)len);
    return hit ? hit - p : -1;
}

/* The last `lit` in p[0:n], or -1: searched from the end (the ends of parts sit near theirs). */
static Py_ssize_t
rfind(const char *p, Py_ssize_t n, const char *lit, Py_ssize_t len)
{
    Py_ssize_t limit = n - len + 1;  /* where `lit` may start: below this */
    while (limit > 0) {
        const char *hit = memrchr(p, lit[0], (size_t)limit);
        if (hit == NULL) {
            return -1;
        }
        if (memcmp(hit, lit, (size_t)len) == 0) {
            return hit - p;
        }
        limit = hit - p;
    }
    return -1;
}

/* The ">" of the tag whose "<" is at `lt`, or -1 when a "<" or the end comes first (not regular).
   Tags are short: a plain loop beats memchr calls. */
static Py_ssize_t
tag_end(const char *p, Py_ssize_t n, Py_ssize_t lt)
{
    const char *q = p + lt + 1, *end = p + n;
    while (q < end && *q != '>' && *q != '<') {
        q++;
    }
    return q == end || *q == '<' ? -1 : q - p;
}

/* The next tag in p[from:n]: 1 with its "<" and ">" offsets, 0 when no "<" is left, -1 when a "<"
   has no ">" before the next "<" (not regular). */
static int
next_tag(const char *p, Py_ssize_t n, Py_ssize_t from, Py_ssize_t *lt, Py_ssize_t *gt)
{
    const char *open = from < n ? memchr(p + from, '<', (size_t)(n - from)) : NULL;
    if (open == NULL) {
        return 0;
    }
    *lt = open - p;
    *gt = tag_end(p, n, *lt);
    return *gt < 0 ? -1 : 1;
}

/* Whether the tag p[lt:gt+1] is `lit`, or starts with it. */
static int
is_tag(const char *p, Py_ssize_t lt, Py_ssize_t gt, const char *lit, Py_ssize_t len)
{
    return gt - lt + 1 == len && memcmp(p + lt, lit, (size_t)len) == 0;
}

static int
starts_tag(const char *p, Py_ssize_t lt, Py_ssize_t gt, const char *lit, Py_ssize_t len)
{
    return gt - lt + 1 >= len && memcmp(p + lt, lit, (size_t)len) == 0;
}

static int
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

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

/* The string rules of xmltext.markup_text and documents.sheet_text, applied line by line (memchr finds
   the breaks, memmove moves the lines), one rule a pass:
   BREAK_BEFORE_TAB: "\n\t" -> "\t", as str.replace (each line break that a tab follows goes);
   TABS_BEFORE_BREAK: "\t+\n" -> "\n" (a run of tabs that a line break follows goes). */
enum { BREAK_BEFORE_TAB, TABS_BEFORE_BREAK };

static void
drop_at_breaks(Out *out, int rule)
{
    char *buf = out->buf;
    if (buf == NULL) {
        return;  /* nothing written */
    }
    Py_ssize_t r = 0, w = 0;
    const char *nl;
    while (r < out->len && (nl = memchr(buf + r, '\n', (size_t)(out->len - r))) != NULL) {
        Py_ssize_t at = nl - buf, end = at;
        int keep_break = 1;
        if (rule == TABS_BEFORE_BREAK) {
            while (end > r && buf[end - 1] == '\t') {
                end--;
            }
        }
        else {
            keep_break = !(at + 1 < out->len && buf[at + 1] == '\t');
        }
        memmove(buf + w, buf + r, (size_t)(end - r));
        w += end - r;
        if (keep_break) {
            buf[w++] = '\n';
        }
        r = at + 1;
    }
    memmove(buf + w, buf + r, (size_t)(out->len - r));
    out->len = w + out->len - r;
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
    Py_ssize_t n = data.len, pos = 0, lt = 0, gt = 0;
    int regular = 1;
    for (;;) {
        const char *open = pos < n ? memchr(p + pos, '<', (size_t)(n - pos)) : NULL;
        Py_ssize_t start = open ? open - p : n;
        if (put(&out, p + pos, start - pos) < 0) {
            goto done;
        }
        if (open == NULL) {
            break;
        }
        if (n - start >= 4 && memcmp(open, "<!--", 4) == 0) {  /* cut, whatever it holds... */
            Py_ssize_t end = find(p, n, start + 4, "-->", 3);
            if (end < 0 || find(p, end, start + 4, "<![CDATA[", 9) >= 0) {
                regular = 0;  /* ...but CDATA, which the general path turns into text first: "-->" in it */
                break;
            }
            pos = end + 3;
            continue;
        }
        lt = start;
        gt = tag_end(p, n, lt);
        if (gt < 0) {
            regular = 0;
            break;
        }
        Py_ssize_t len = gt - lt + 1;
        if (len >= 3 && p[lt + 1] == '!' && p[lt + 2] == '[') {
            regular = 0;  /* CDATA: the general path turns it into text first */
            break;
        }
        if (p[lt + 1] == '/' || p[gt - 1] == '/') {
            const Rule *rule = exact_rule(&tags, p + lt, len);
            if (rule == NULL && p[gt - 1] == '/') {
                rule = prefix_rule(&self_closing, p + lt, len);
            }
            if (rule != NULL && put(&out, rule->separator, rule->separator_len) < 0) {
                goto done;
            }
        }
        pos = gt + 1;
    }
    if (!regular) {
        result = Py_NewRef(Py_None);
    }
    else {
        if (tidy) {
            drop_at_breaks(&out, BREAK_BEFORE_TAB);
            drop_at_breaks(&out, TABS_BEFORE_BREAK);
        }
        result = PyBytes_FromStringAndSize(out.buf ? out.buf : "", out.len);
    }
done:
    PyMem_Free(out.buf);
    PyBuffer_Release(&data);
    return result;
}

/* ---------------------------------------------------------------------------------- worksheets */

enum { OTHER, FORMULA, SHARED_VALUE };
#define NOT_REGULAR (-2)
#define SHARED_REACH 256  /* documents._SHARED_VALUE: t="s" at most this far from its tag's end */

/* Whether the cell tag p[lt:gt+1] says t="s" after a space, as documents._SHARED_VALUE finds it;
   NOT_REGULAR for one only farther from the tag's end than that pattern reaches. (The t='s' spelling,
   which sheet_text rewrites everywhere, text included, is left to it: sheet() declines it.) */
static int
shared_cell(const char *p, Py_ssize_t lt, Py_ssize_t gt)
{
    int far = 0;
    for (Py_ssize_t at = lt; at + 6 <= gt; at++) {
        if (p[at] == ' ' && p[at + 1] == 't' && p[at + 2] == '=' && p[at + 3] == '"' && p[at + 4] == 's'
            && p[at + 5] == '"') {
            if (gt - (at + 6) <= SHARED_REACH) {
                return 1;
            }
            far = 1;
        }
    }
    return far ? NOT_REGULAR : 0;
}

/* What a tag starting "<f" is to documents._FORMULA ("<f" and a word boundary): FORMULA (opens a
   formula: "<f>", "<f a>", even "<f/ >"), FORMULA_ALONE (a formula closing itself: "<f/>", "<f a/>"), 0
   (another element, such as <font>), or NOT_REGULAR (a name the boundary may read either way:
   punctuation, or a byte of a Unicode letter). */
enum { FORMULA_ALONE = 3 };

static int
formula_tag(const char *p, Py_ssize_t lt, Py_ssize_t gt)
{
    unsigned char next = (unsigned char)p[lt + 2];
    if (next == '>' || next == '/' || is_space((char)next)) {
        return p[gt - 1] == '/' ? FORMULA_ALONE : FORMULA;
    }
    if (next == '_' || (next >= '0' && next <= '9') || ((next | 0x20) >= 'a' && (next | 0x20) <= 'z')) {
        return 0;
    }
    return NOT_REGULAR;
}

static int
is_blank(char c)
{
    return c == ' ' || c == '\r' || c == '\n';
}

/* A shared cell's value, as documents.sheet_text splices it: the value with its cell's tab, read by
   _LEFTOVER_VALUE - 1 to 12 digits, blanks around them, then a tab - becomes the string it names (none
   for an index past the table or of 10 digits or more) and that tab; anything after the tab stays. A
   value that is no such number stays as it is. The cell's own tab is its </c>'s, added by the caller. */
static int
put_shared(Out *out, const char *p, Py_ssize_t from, Py_ssize_t to, PyObject *strings, char *used,
           Py_ssize_t used_len)
{
    Py_ssize_t i = from;
    while (i < to && is_blank(p[i])) {
        i++;
    }
    Py_ssize_t digits = i, index = 0;
    while (i < to && p[i] >= '0' && p[i] <= '9' && i - digits < 13) {
        i++;
    }
    Py_ssize_t count = i - digits;
    for (Py_ssize_t d = digits; d < i && count < 10; d++) {
        index = index * 10 + (p[d] - '0');  /* 9 digits at most: no overflow */
    }
    while (i < to && is_blank(p[i])) {
        i++;
    }
    if (count < 1 || count > 12 || (i < to && p[i] != '\t')) {
        return put(out, p + from, to - from);
    }
    if (count < 10 && index < PyList_GET_SIZE(strings) && index < used_len) {
        PyObject *string = PyList_GET_ITEM(strings, index);
        if (!PyBytes_Check(string)) {
            PyErr_SetString(PyExc_TypeError, "shared strings are bytes");
            return -1;
        }
        used[index] = 1;
        if (put(out, PyBytes_AS_STRING(string), PyBytes_GET_SIZE(string)) < 0) {
            return -1;
        }
    }
    return i < to ? put(out, p + i, to - i) : 0;  /* the tab in the value, and what follows it */
}

PyDoc_STRVAR(sheet_doc,
"sheet(data, strings, used) -> bytes | None\n\n"
"A worksheet as documents.sheet_text reads it, before its last string rules (trailing tabs and line\n"
"breaks, entities): rows as lines, cells ended by tabs, formulas left out, each shared-string cell's\n"
"value replaced by its string from `strings` (bytes), marked in `used` (a bytearray as long).\n"
"None for markup this does not read exactly as that function does.");

static PyObject *
sheet(PyObject *module, PyObject *args)
{
    Py_buffer data, used;
    PyObject *strings;
    if (!PyArg_ParseTuple(args, "y*O!w*", &data, &PyList_Type, &strings, &used)) {
        return NULL;
    }
    Out out = {NULL, 0, 0};
    PyObject *result = NULL;
    const char *p = data.buf;
    Py_ssize_t n = data.len;
    int regular = 1;
    if (memchr(p, 0, (size_t)n) != NULL || memchr(p, 1, (size_t)n) != NULL || find(p, n, 0, " t='s'", 6) >= 0) {
        regular = 0;  /* sheet_text's own markers; the spelling it rewrites wherever it stands */
        goto finish;
    }
    Py_ssize_t region_start = find(p, n, 0, "<sheetData>", 11);
    Py_ssize_t region_end = rfind(p, n, "</sheetData>", 12);
    int region = region_start >= 0 && region_start < region_end;
    /* _FORMULA deletes formulas (<f .../>, and <f ...>text</f> with their text) when a "</f>" exists.
       A deleted formula is not there for what follows: a <v> right after it follows the tag before it. */
    int formulas = -1;  /* not looked for until a formula shows up */
    Py_ssize_t pos = 0, lt = 0, gt = 0;
    Py_ssize_t previous_lt = -1, previous_gt = -1;  /* the last tag that stays */
    Py_ssize_t joined = -1;  /* where a tag starts that directly follows it (formulas deleted between) */
    Py_ssize_t formula_lt = -1, formula_gt = -1;  /* an open <f ...>, while its fate is unknown */
    int previous = OTHER, any = 0;
    for (;;) {
        int found = next_tag(p, n, pos, &lt, &gt);
        if (found < 0) {
            regular = 0;
            break;
        }
        Py_ssize_t text_end = found ? lt : n;
        if (memchr(p + pos, '>', (size_t)(text_end - pos)) != NULL) {
            regular = 0;  /* a ">" in text: the shared-value patterns could match across it */
            break;
        }
        int formula_ends = previous == FORMULA && found && is_tag(p, lt, gt, "</f>", 4);
        if (previous == FORMULA && !formula_ends) {  /* not <f>text</f>: the <f ...> stays, a tag */
            joined = formula_gt + 1;
            previous_lt = formula_lt;
            previous_gt = formula_gt;
            previous = OTHER;
        }
        if (any) {  /* text before the first tag is not a text node */
            int status = 0;
            if (previous == SHARED_VALUE) {
                if (!found || !is_tag(p, lt, gt, "</v>", 4) || gt + 5 > n || memcmp(p + gt + 1, "</c>", 4) != 0) {
                    regular = 0;  /* the value does not end its cell: _LEFTOVER_VALUE's territory */
                    break;
                }
                status = put_shared(&out, p, pos, text_end, strings, used.buf, used.len);
            }
            else if (!formula_ends) {  /* a formula's text is not the cell's value */
                status = put(&out, p + pos, text_end - pos);
            }
            if (status < 0) {
                goto finish;
            }
        }
        if (!found) {
            break;
        }
        pos = gt + 1;
        Py_ssize_t len = gt - lt + 1;
        if (formula_ends) {
            if (formula_lt == joined) {
                joined = gt + 1;
            }
            previous = OTHER;
            continue;
        }
        if (len >= 3 && p[lt + 1] == '!' && p[lt + 2] == '[') {
            regular = 0;  /* CDATA */
            break;
        }
        int kind = OTHER;
        if (len >= 3 && p[lt + 1] == 'f') {
            kind = formula_tag(p, lt, gt);
            if (kind == NOT_REGULAR) {
                regular = 0;
                break;
            }
            if (formulas < 0) {
                formulas = find(p, n, 0, "</f>", 4) >= 0;
            }
            int deleted = formulas && kind == FORMULA_ALONE;
            if (kind == FORMULA_ALONE) {
                kind = OTHER;
            }
            if ((kind == FORMULA || deleted) && !any) {
                regular = 0;  /* deleted before the first tag: what counts as text before it moves */
                break;
            }
            if (kind == FORMULA) {
                formula_lt = lt;
                formula_gt = gt;
                previous = FORMULA;
                continue;
            }
            if (deleted) {
                if (lt == joined) {
                    joined = gt + 1;
                }
                continue;
            }
        }
        if (!any && is_tag(p, lt, gt, "</v>", 4)) {
            regular = 0;  /* "</v></c>" puts its tab before "</v>": in the text before the first tag */
            break;
        }
        any = 1;
        const char *separator = NULL;
        if (p[lt + 1] == '/' && p[gt - 1] == '/') {
            regular = 0;  /* "</...\"/>": an empty cell to sheet_text's '"/>' rule, even so */
            break;
        }
        if (p[lt + 1] == '/') {
            separator = is_tag(p, lt, gt, "</c>", 4) ? "\t" : is_tag(p, lt, gt, "</row>", 6) ? "\n" : NULL;
        }
        else if (p[gt - 1] == '/' && len >= 3) {
            if (shared_cell(p, lt, gt) != 0) {
                regular = 0;  /* _SHARED_VALUE may make it an open tag (when a <v> follows): no empty cell */
                break;
            }
            if (starts_tag(p, lt, gt, "<row ", 5)) {
                separator = "\n";
            }
            else if (region) {
                if (lt >= region_start && gt < region_end && len >= 4 && p[gt - 2] == '"') {
                    separator = "\t";  /* sheet_text: an empty cell ('"/>') in sheetData */
                }
            }
            else if (starts_tag(p, lt, gt, "<c ", 3)) {
                separator = "\t";
            }
        }
        else if (is_tag(p, lt, gt, "<v>", 3) && lt == joined && previous_lt >= 0) {
            int shared = shared_cell(p, previous_lt, previous_gt);
            if (shared == NOT_REGULAR) {
                regular = 0;
                break;
            }
            kind = shared ? SHARED_VALUE : OTHER;
        }
        if (separator != NULL && put(&out, separator, 1) < 0) {
            goto finish;
        }
        previous = kind;
        previous_lt = lt;
        previous_gt = gt;
        joined = gt + 1;
    }
    if (!any) {
        regular = 0;  /* no tag at all: sheet_text keeps the whole input */
    }
    if (regular) {
        drop_at_breaks(&out, TABS_BEFORE_BREAK);
    }
    result = regular ? PyBytes_FromStringAndSize(out.buf ? out.buf : "", out.len) : Py_NewRef(Py_None);
finish:
    if (result == NULL && !PyErr_Occurred()) {
        result = Py_NewRef(Py_None);
    }
    PyMem_Free(out.buf);
    PyBuffer_Release(&used);
    PyBuffer_Release(&data);
    return result;
}

/* The last (up to) 9 bytes of what has been kept so far, `kept` more appended. */
static void
keep_tail(char *tail, int *tail_len, const char *kept, Py_ssize_t len)
{
    if (len >= 9) {
        memcpy(tail, kept + len - 9, 9);
        *tail_len = 9;
        return;
    }
    int old = *tail_len < 9 - (int)len ? *tail_len : 9 - (int)len;
    memmove(tail, tail + *tail_len - old, (size_t)old);
    memcpy(tail + old, kept, (size_t)len);
    *tail_len = old + (int)len;
}

PyDoc_STRVAR(strings_doc,
"strings(data) -> (list[bytes], bool) | None\n\n"
"The shared-string table of sharedStrings.xml as documents.shared_strings splits it (entities still\n"
"escaped, phonetic guides cut out), before it drops a last string of whitespace; and whether the\n"
"table's body, guides cut, ends with \"</t></si>\" (shared_strings then drops a second one).\n"
"None for markup this does not read exactly as that function does.");

static PyObject *
strings(PyObject *module, PyObject *args)
{
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data)) {
        return NULL;
    }
    const char *p = data.buf;
    Py_ssize_t n = data.len;
    Out piece = {NULL, 0, 0};
    PyObject *list = PyList_New(0), *result = NULL;
    char tail[9];
    int tail_len = 0;
    if (list == NULL) {
        goto finish;
    }
    Py_ssize_t start = find(p, n, 0, "<si", 3);
    if (start < 0) {
        result = Py_BuildValue("(OO)", list, Py_False);
        goto finish;
    }
    Py_ssize_t end = rfind(p, n, "</sst>", 6);
    if (end < 0) {
        end = n;
    }
    else if (end < start) {
        end = start;  /* "</sst>" before the first string: shared_strings reads nothing */
    }
    if (memchr(p + start, 0, (size_t)(end - start)) != NULL || memchr(p + start, 1, (size_t)(end - start)) != NULL) {
        result = Py_NewRef(Py_None);  /* shared_strings' separator; sheet_text's marker, even in a string */
        goto finish;
    }
    Py_ssize_t pos = start, lt = 0, gt = 0, kept_from = start;
    for (;;) {
        int found = next_tag(p, end, pos, &lt, &gt);
        if (found < 0) {
            result = Py_NewRef(Py_None);
            goto finish;
        }
        if (put(&piece, p + pos, (found ? lt : end) - pos) < 0) {
            goto finish;
        }
        if (!found) {
            break;
        }
        if (starts_tag(p, lt, gt, "<rPh", 4)) {  /* phonetic guide: cut up to its end, tags and all */
            Py_ssize_t close = find(p, end, lt + 4, "</rPh>", 6);
            if (close < 0) {
                result = Py_NewRef(Py_None);
                goto finish;
            }
            keep_tail(tail, &tail_len, p + kept_from, lt - kept_from);
            pos = kept_from = close + 6;
            continue;
        }
        int ends_string = is_tag(p, lt, gt, "</si>", 5);
        if (!ends_string && starts_tag(p, lt, gt, "<si", 3) && p[gt - 1] == '/') {
            ends_string = 1;  /* <si/>, <si />: an empty string (_EMPTY_SI) */
            for (Py_ssize_t i = lt + 3; i < gt - 1; i++) {
                unsigned char c = (unsigned char)p[i];
                if (c >= 0x80 || c == 0x0b || c == 0x0c || (c >= 0x1c && c <= 0x1f)) {
                    result = Py_NewRef(Py_None);  /* maybe whitespace to "\s" (NBSP, ...): maybe an <si/> */
                    goto finish;
                }
                ends_string &= is_space((char)c);
            }
        }
        if (ends_string) {
            PyObject *string = PyBytes_FromStringAndSize(piece.buf ? piece.buf : "", piece.len);
            if (string == NULL || PyList_Append(list, string) < 0) {
                Py_XDECREF(string);
                goto finish;
            }
            Py_DECREF(string);
            piece.len = 0;
        }
        pos = gt + 1;
    }
    PyObject *last = PyBytes_FromStringAndSize(piece.buf ? piece.buf : "", piece.len);
    if (last == NULL || PyList_Append(list, last) < 0) {
        Py_XDECREF(last);
        goto finish;
    }
    Py_DECREF(last);
    keep_tail(tail, &tail_len, p + kept_from, end - kept_from);
    result = Py_BuildValue("(ON)", list, PyBool_FromLong(tail_len == 9 && memcmp(tail, "</t></si>", 9) == 0));
finish:
    Py_XDECREF(list);
    PyMem_Free(piece.buf);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"text", text, METH_VARARGS, text_doc},
    {"sheet", sheet, METH_VARARGS, sheet_doc},
    {"strings", strings, METH_VARARGS, strings_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_markup", "The regular-markup scanner (see _markup.c).", 0, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__markup(void)
{
    return PyModule_Create(&module);
}
