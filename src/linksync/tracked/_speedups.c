/* linksync.tracked._speedups: the hot mutations of tracked structures in C.
 *
 * A Python method on a subclass of dict costs about 6.5x a plain
 * `d[k] = v` before it does anything, so the most frequent mutations of
 * tracked dicts, lists and sets are implemented here:
 *
 *   dict:  d[k] = v, del d[k] (falls back), d.update(one dict)
 *   list:  lst[i] = v (int i), del lst[i] (falls back), lst.append(v),
 *          lst.sort(**kw) when nobody is notified
 *   set:   s.add(v)
 *
 * The reference implementation is the Python code of
 * linksync.tracked.wrappers: these functions do exactly what it does (take
 * the tracker's lock, store atomic values as they are and wrap the others
 * with tracker.wrap(), return at once when `not tracker.notify`, else make
 * the edit when `tracker.record` and call tracker.changed()). Whatever is
 * not the simple case (slices, deletions, unusual arguments, a tracker
 * whose lock is not this module's RLock) calls the Python method, which
 * wrappers.py hands over in setup().
 *
 * DictBase, ListBase and SetBase add no fields to dict, list and set: the
 * wrappers' `_tracker` slot and the tracker's `lock`, `notify` and `record`
 * slots are ordinary __slots__ of the Python classes, read here at the
 * offsets their member descriptors give (checked in setup()).
 *
 * RLock is a re-entrant lock with the interface and the semantics of
 * threading.RLock (the same algorithm as CPython's _thread.RLock); the
 * wrappers take and release it without a method call.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <pythread.h>
#include <limits.h>

/* -- RLock ------------------------------------------------------------------ */

/* The lock's state (owner, count) is only read and written with the GIL
 * held, so taking a free lock, or one this thread holds, is a few
 * assignments: no system call (CPython's RLock takes an OS lock, and reads
 * the clock, every time). An OS lock, `wake`, kept locked, serves threads
 * that must wait: release() hands the lock over to one of them (`pending`)
 * by releasing `wake`; the waiter that acquires `wake` owns the lock. A
 * handed-over lock cannot be taken by anybody else meanwhile, so waiters
 * are served as with an OS lock. */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock wake;
    unsigned long owner;
    unsigned long count;
    long waiters;           /* threads waiting for `wake` */
    long pending;           /* handed over, not yet taken (0 or 1) */
    PyObject *weakreflist;
} RLockObject;

static PyTypeObject RLockType;

/* Monotonic time in seconds (for timeouts only). */
static double
monotonic(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t t;
    if (PyTime_MonotonicRaw(&t) < 0) {
        return 0.0;
    }
    return (double)t * 1e-9;
#else
    return (double)_PyTime_GetMonotonicClock() * 1e-9;
#endif
}

/* Acquire without blocking: 1 acquired, 0 would block, -1 error. */
static inline int
rlock_try(RLockObject *self, unsigned long tid)
{
    if (self->count > 0) {
        if (self->owner != tid) {
            return 0;
        }
        if (self->count == ULONG_MAX) {
            PyErr_SetString(PyExc_OverflowError,
                            "Internal lock count overflowed");
            return -1;
        }
        self->count++;
        return 1;
    }
    if (self->pending) {
        return 0;
    }
    self->owner = tid;
    self->count = 1;
    return 1;
}

/* Release completely: hand over to a waiter, if any. */
static void
rlock_free(RLockObject *self)
{
    self->count = 0;
    self->owner = 0;
    if (self->waiters > self->pending) {
        self->pending++;
        PyThread_release_lock(self->wake);
    }
}

/* A waiter stops waiting (timed out, or a signal handler raised): if the
 * lock was handed over meanwhile, it is this thread's now. 1 or 0. */
static int
rlock_stop_waiting(RLockObject *self, unsigned long tid)
{
    self->waiters--;
    if (PyThread_acquire_lock(self->wake, NOWAIT_LOCK)) {
        self->pending--;
        self->owner = tid;
        self->count = 1;
        return 1;
    }
    return 0;
}

/* Wait for the lock with the GIL released, running signal handlers when
 * a signal interrupts the wait. timeout < 0: forever. 1 acquired, 0 timed
 * out, -1 error (a signal handler raised). */
static int
rlock_wait(RLockObject *self, unsigned long tid, double timeout)
{
    double deadline = timeout > 0 ? monotonic() + timeout : 0.0;
    self->waiters++;
    for (;;) {
        PY_TIMEOUT_T us;
        PyLockStatus r;
        if (timeout < 0) {
            us = -1;
        }
        else {
            double left = timeout > 0 ? deadline - monotonic() : 0.0;
            us = left > 0 ? (PY_TIMEOUT_T)(left * 1e6) : 0;
        }
        Py_BEGIN_ALLOW_THREADS
        r = PyThread_acquire_lock_timed(self->wake, us, 1);
        Py_END_ALLOW_THREADS
        if (r == PY_LOCK_ACQUIRED) {
            self->waiters--;
            self->pending--;
            self->owner = tid;
            self->count = 1;
            return 1;
        }
        if (r == PY_LOCK_FAILURE) {
            return rlock_stop_waiting(self, tid);
        }
        /* PY_LOCK_INTR */
        if (Py_MakePendingCalls() < 0) {
            if (rlock_stop_waiting(self, tid)) {
                rlock_free(self);
            }
            return -1;
        }
        if (timeout == 0) {
            return rlock_stop_waiting(self, tid);
        }
    }
}

/* Take the lock, waiting as long as it takes: 0, or -1 on error. */
static inline int
rlock_enter(RLockObject *self)
{
    unsigned long tid = PyThread_get_thread_ident();
    int r = rlock_try(self, tid);
    if (r == 0) {
        r = rlock_wait(self, tid, -1.0);
    }
    return r < 0 ? -1 : 0;
}

/* Release once; -1 (RuntimeError) when this thread does not hold it. */
static inline int
rlock_exit(RLockObject *self)
{
    if (self->count == 0 || self->owner != PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot release un-acquired lock");
        return -1;
    }
    if (--self->count == 0) {
        rlock_free(self);
    }
    return 0;
}

static PyObject *
rlock_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    RLockObject *self;
    if ((PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) &&
            type == &RLockType) {
        PyErr_SetString(PyExc_TypeError, "RLock() takes no arguments");
        return NULL;
    }
    self = (RLockObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->owner = 0;
    self->count = 0;
    self->waiters = 0;
    self->pending = 0;
    self->weakreflist = NULL;
    self->wake = PyThread_allocate_lock();
    if (self->wake == NULL) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_MemoryError, "cannot allocate lock");
        return NULL;
    }
    /* kept locked: waiters wait for it to be released to them */
    PyThread_acquire_lock(self->wake, WAIT_LOCK);
    return (PyObject *)self;
}

static void
rlock_dealloc(RLockObject *self)
{
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    if (self->wake != NULL) {
        /* nobody waits for a lock nobody refers to */
        PyThread_release_lock(self->wake);
        PyThread_free_lock(self->wake);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
rlock_acquire(RLockObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"blocking", "timeout", NULL};
    int blocking = 1;
    double timeout = -1;
    unsigned long tid;
    int r;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pd:acquire", kwlist,
                                     &blocking, &timeout)) {
        return NULL;
    }
    if (!blocking && timeout != -1) {
        PyErr_SetString(PyExc_ValueError,
                        "can't specify a timeout for a non-blocking call");
        return NULL;
    }
    if (timeout < 0 && timeout != -1) {
        PyErr_SetString(PyExc_ValueError,
                        "timeout value must be a non-negative number");
        return NULL;
    }
    if (timeout > (double)PY_TIMEOUT_MAX * 1e-6) {
        PyErr_SetString(PyExc_OverflowError, "timeout value is too large");
        return NULL;
    }
    tid = PyThread_get_thread_ident();
    r = rlock_try(self, tid);
    if (r == 0 && blocking) {
        r = rlock_wait(self, tid, timeout);
    }
    if (r < 0) {
        return NULL;
    }
    return PyBool_FromLong(r);
}

static PyObject *
rlock_release(RLockObject *self, PyObject *Py_UNUSED(ignored))
{
    if (rlock_exit(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
rlock_exit_method(RLockObject *self, PyObject *args)
{
    return rlock_release(self, NULL);
}

static PyObject *
rlock_is_owned(RLockObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->count > 0 &&
                           self->owner == PyThread_get_thread_ident());
}

/* For threading.Condition: release completely, and restore. */
static PyObject *
rlock_release_save(RLockObject *self, PyObject *Py_UNUSED(ignored))
{
    unsigned long owner, count;
    if (self->count == 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot release un-acquired lock");
        return NULL;
    }
    owner = self->owner;
    count = self->count;
    rlock_free(self);
    return Py_BuildValue("kk", count, owner);
}

static PyObject *
rlock_acquire_restore(RLockObject *self, PyObject *args)
{
    unsigned long owner, count, tid = PyThread_get_thread_ident();
    int r;
    if (!PyArg_ParseTuple(args, "(kk):_acquire_restore", &count, &owner)) {
        return NULL;
    }
    r = rlock_try(self, tid);
    while (r == 0) {
        /* As CPython's: not interrupted by signals. */
        PyObject *type, *value, *tb;
        r = rlock_wait(self, tid, -1.0);
        if (r < 0) {
            PyErr_Fetch(&type, &value, &tb);
            PyErr_WriteUnraisable((PyObject *)self);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            r = 0;
        }
    }
    if (r < 0) {
        return NULL;
    }
    self->owner = owner;
    self->count = count;
    Py_RETURN_NONE;
}

static PyObject *
rlock_repr(RLockObject *self)
{
    return PyUnicode_FromFormat(
        "<%s %s object owner=%lu count=%lu at %p>",
        self->count ? "locked" : "unlocked", Py_TYPE(self)->tp_name,
        self->owner, self->count, self);
}

static PyMethodDef rlock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))rlock_acquire,
     METH_VARARGS | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool: as threading.RLock."},
    {"release", (PyCFunction)rlock_release, METH_NOARGS,
     "Release the lock once (RuntimeError unless this thread holds it)."},
    {"_is_owned", (PyCFunction)rlock_is_owned, METH_NOARGS, NULL},
    {"_release_save", (PyCFunction)rlock_release_save, METH_NOARGS, NULL},
    {"_acquire_restore", (PyCFunction)rlock_acquire_restore, METH_VARARGS,
     NULL},
    {"__enter__", (PyCFunction)(void (*)(void))rlock_acquire,
     METH_VARARGS | METH_KEYWORDS, "Acquire the lock."},
    {"__exit__", (PyCFunction)rlock_exit_method, METH_VARARGS,
     "Release the lock."},
    {NULL, NULL}
};

static PyTypeObject RLockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "linksync.tracked._speedups.RLock",
    .tp_basicsize = sizeof(RLockObject),
    .tp_dealloc = (destructor)rlock_dealloc,
    .tp_repr = (reprfunc)rlock_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A re-entrant lock: threading.RLock, that the tracked "
              "wrappers take without a method call.",
    .tp_weaklistoffset = offsetof(RLockObject, weakreflist),
    .tp_methods = rlock_methods,
    .tp_new = rlock_new,
};

/* -- what setup() hands over ------------------------------------------------ */

static PyTypeObject *tracker_type;      /* linksync.tracked.tracker.Tracker */
static Py_ssize_t lock_offset, notify_offset, record_offset;
static PyTypeObject *dict_wrapper, *list_wrapper, *set_wrapper;
static Py_ssize_t dict_tracker_offset, list_tracker_offset,
    set_tracker_offset;
static PyObject *KeyEdit, *SliceEdit, *SetEdit, *MISSING;
/* The Python methods (wrappers.py) everything else falls back to. */
static PyObject *py_dict_setitem, *py_dict_delitem, *py_dict_update,
    *py_list_setitem, *py_list_delitem, *py_list_append, *py_list_sort,
    *py_set_add;
static PyObject *list_sort;             /* list.sort */
static PyObject *s_wrap, *s_changed, *s_setitem, *s_update, *s_append,
    *s_add;

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

static inline int
is_atomic(PyObject *v)
{
    PyTypeObject *tp = Py_TYPE(v);
    return tp == &PyUnicode_Type || tp == &PyLong_Type ||
        tp == &PyFloat_Type || tp == &PyBool_Type || v == Py_None ||
        tp == &PyBytes_Type || tp == &PyTuple_Type ||
        tp == &PyFrozenSet_Type || tp == &PyComplex_Type;
}

/* The tracker of `self` when the C path can serve it (a Tracker whose lock
 * is an RLock of this module), else NULL (no exception set): the caller
 * falls back to the Python method. Returns a new reference. */
static inline PyObject *
fast_tracker(PyObject *self, PyTypeObject *wrapper, Py_ssize_t offset)
{
    PyObject *t, *lock;
    if (wrapper == NULL || !PyObject_TypeCheck(self, wrapper)) {
        return NULL;
    }
    t = SLOT(self, offset);
    if (t == NULL || !PyObject_TypeCheck(t, tracker_type)) {
        return NULL;
    }
    lock = SLOT(t, lock_offset);
    if (lock == NULL || !Py_IS_TYPE(lock, &RLockType)) {
        return NULL;
    }
    Py_INCREF(t);
    return t;
}

/* Take the tracker's lock: the lock (a new reference), or NULL on error. */
static inline RLockObject *
lock_tracker(PyObject *t)
{
    PyObject *lock = SLOT(t, lock_offset);
    if (lock == NULL || !Py_IS_TYPE(lock, &RLockType)) {
        /* Changed since fast_tracker() looked: cannot happen without
         * tracker code running in between. */
        PyErr_SetString(PyExc_RuntimeError,
                        "the tracker's lock was replaced");
        return NULL;
    }
    Py_INCREF(lock);
    if (rlock_enter((RLockObject *)lock) < 0) {
        Py_DECREF(lock);
        return NULL;
    }
    return (RLockObject *)lock;
}

/* Release it; `result` (0 or -1) is what the locked code returned. As in
 * Python's try/finally, a failed release replaces the exception. */
static inline int
unlock_tracker(RLockObject *lock, int result)
{
    if (result < 0) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (rlock_exit(lock) < 0) {
            /* the new exception, with the first one as its context */
            PyObject *type2, *value2, *tb2;
            PyErr_NormalizeException(&type, &value, &tb);
            if (tb != NULL) {
                PyException_SetTraceback(value, tb);
            }
            PyErr_Fetch(&type2, &value2, &tb2);
            PyErr_NormalizeException(&type2, &value2, &tb2);
            PyException_SetContext(value2, value);  /* steals value */
            Py_XDECREF(type);
            Py_XDECREF(tb);
            PyErr_Restore(type2, value2, tb2);
        }
        else {
            PyErr_Restore(type, value, tb);
        }
    }
    else if (rlock_exit(lock) < 0) {
        result = -1;
    }
    Py_DECREF(lock);
    return result;
}

/* t.notify / t.record: 1, 0, or -1 (error). */
static inline int
flag(PyObject *t, Py_ssize_t offset, const char *name)
{
    PyObject *value = SLOT(t, offset);
    if (value == Py_True) {
        return 1;
    }
    if (value == Py_False) {
        return 0;
    }
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "'%.100s' object has no "
                     "attribute '%s'", Py_TYPE(t)->tp_name, name);
        return -1;
    }
    return PyObject_IsTrue(value);
}

/* t.wrap(value, parent, key): a new reference. */
static inline PyObject *
wrap(PyObject *t, PyObject *value, PyObject *parent, PyObject *key)
{
    PyObject *args[4] = {t, value, parent, key};
    if (is_atomic(value)) {
        Py_INCREF(value);
        return value;
    }
    return PyObject_VectorcallMethod(s_wrap, args, 4, NULL);
}

/* t.changed(target, func_name, args, {}, edit); steals `args` and
 * `edit`. */
static int
changed(PyObject *t, PyObject *target, PyObject *func_name, PyObject *args,
        PyObject *edit)
{
    PyObject *kwargs, *result;
    if (args == NULL || edit == NULL) {
        Py_XDECREF(args);
        Py_XDECREF(edit);
        return -1;
    }
    kwargs = PyDict_New();
    if (kwargs == NULL) {
        result = NULL;
    }
    else {
        PyObject *call[6] = {t, target, func_name, args, kwargs, edit};
        result = PyObject_VectorcallMethod(s_changed, call, 6, NULL);
        Py_DECREF(kwargs);
    }
    Py_DECREF(args);
    Py_DECREF(edit);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

static PyObject *
call2(PyObject *func, PyObject *a, PyObject *b)
{
    PyObject *args[2] = {a, b};
    return PyObject_Vectorcall(func, args, 2, NULL);
}

static PyObject *
call3(PyObject *func, PyObject *a, PyObject *b, PyObject *c)
{
    PyObject *args[3] = {a, b, c};
    return PyObject_Vectorcall(func, args, 3, NULL);
}

static PyObject *
call4(PyObject *func, PyObject *a, PyObject *b, PyObject *c, PyObject *d)
{
    PyObject *args[4] = {a, b, c, d};
    return PyObject_Vectorcall(func, args, 4, NULL);
}

static int
result_status(PyObject *result)
{
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

static int
not_set_up(void)
{
    PyErr_SetString(PyExc_RuntimeError,
                    "linksync.tracked._speedups is not set up");
    return -1;
}

/* A method of one argument: func(self, tracker, arg) with the tracker's
 * lock held, or the Python method `fallback` when the C path cannot serve
 * `self`. */
static inline PyObject *
run_locked(PyObject *self, PyObject *arg, PyTypeObject *wrapper,
           Py_ssize_t offset, PyObject *fallback,
           PyObject *(*func)(PyObject *, PyObject *, PyObject *))
{
    PyObject *t, *result;
    RLockObject *lock;
    t = fast_tracker(self, wrapper, offset);
    if (t == NULL) {
        if (fallback == NULL) {
            not_set_up();
            return NULL;
        }
        return call2(fallback, self, arg);
    }
    lock = lock_tracker(t);
    if (lock == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    result = func(self, t, arg);
    if (unlock_tracker(lock, result == NULL ? -1 : 0) < 0) {
        Py_CLEAR(result);
    }
    Py_DECREF(t);
    return result;
}

/* func(self, *args, **kwds) */
static PyObject *
call_with_self(PyObject *func, PyObject *self, PyObject *args,
               PyObject *kwds)
{
    PyObject *all, *result;
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (func == NULL) {
        not_set_up();
        return NULL;
    }
    all = PyTuple_New(n + 1);
    if (all == NULL) {
        return NULL;
    }
    Py_INCREF(self);
    PyTuple_SET_ITEM(all, 0, self);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(args, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(all, i + 1, item);
    }
    result = PyObject_Call(func, all, kwds);
    Py_DECREF(all);
    return result;
}

/* -- dict --------------------------------------------------------------------- */

static int
dict_setitem_locked(PyObject *self, PyObject *t, PyObject *key,
                    PyObject *value)
{
    PyObject *v, *edit;
    int notify, record, r;
    v = wrap(t, value, self, key);
    if (v == NULL) {
        return -1;
    }
    notify = flag(t, notify_offset, "notify");
    if (notify <= 0) {
        r = notify < 0 ? -1 : PyDict_SetItem(self, key, v);
        Py_DECREF(v);
        return r;
    }
    record = flag(t, record_offset, "record");
    if (record < 0) {
        goto error;
    }
    if (record) {
        PyObject *before, *old = PyDict_GetItemWithError(self, key);
        if (old == NULL) {
            if (PyErr_Occurred()) {
                goto error;
            }
            old = MISSING;
        }
        /* (held: hashing the key again may run code that replaces it) */
        Py_INCREF(old);
        before = PyDict_New();
        if (before == NULL || PyDict_SetItem(before, key, old) < 0) {
            Py_DECREF(old);
            Py_XDECREF(before);
            goto error;
        }
        Py_DECREF(old);
        edit = call2(KeyEdit, self, before);
        Py_DECREF(before);
        if (edit == NULL) {
            goto error;
        }
    }
    else {
        edit = Py_NewRef(Py_None);
    }
    if (PyDict_SetItem(self, key, v) < 0) {
        Py_DECREF(edit);
        goto error;
    }
    r = changed(t, self, s_setitem, PyTuple_Pack(2, key, v), edit);
    Py_DECREF(v);
    return r;
error:
    Py_DECREF(v);
    return -1;
}

static int
dict_ass_subscript(PyObject *self, PyObject *key, PyObject *value)
{
    PyObject *t;
    RLockObject *lock;
    int r;
    if (value == NULL) {
        return py_dict_delitem ? result_status(call2(py_dict_delitem, self,
                                                     key)) : not_set_up();
    }
    t = fast_tracker(self, dict_wrapper, dict_tracker_offset);
    if (t == NULL) {
        return py_dict_setitem ? result_status(call3(py_dict_setitem, self,
                                                     key, value))
            : not_set_up();
    }
    lock = lock_tracker(t);
    if (lock == NULL) {
        Py_DECREF(t);
        return -1;
    }
    r = unlock_tracker(lock, dict_setitem_locked(self, t, key, value));
    Py_DECREF(t);
    return r;
}

/* update() with one dict (any mapping falls back), no keywords. */
static PyObject *
dict_update_locked(PyObject *self, PyObject *t, PyObject *args,
                   PyObject *new)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value, *edit;
    int notify, record;
    while (PyDict_Next(new, &pos, &key, &value)) {
        if (!is_atomic(value)) {
            PyObject *v;
            Py_INCREF(key);
            v = wrap(t, value, self, key);
            if (v == NULL || PyDict_SetItem(new, key, v) < 0) {
                Py_DECREF(key);
                Py_XDECREF(v);
                return NULL;
            }
            Py_DECREF(key);
            Py_DECREF(v);
        }
    }
    record = flag(t, record_offset, "record");
    if (record < 0) {
        return NULL;
    }
    edit = Py_None;
    Py_INCREF(edit);
    if (record) {
        PyObject *before = PyDict_New();
        if (before == NULL) {
            Py_DECREF(edit);
            return NULL;
        }
        pos = 0;
        while (PyDict_Next(new, &pos, &key, &value)) {
            PyObject *old = PyDict_GetItemWithError(self, key);
            int r;
            if (old == NULL) {
                if (PyErr_Occurred()) {
                    Py_DECREF(before);
                    Py_DECREF(edit);
                    return NULL;
                }
                old = MISSING;
            }
            Py_INCREF(old);
            r = PyDict_SetItem(before, key, old);
            Py_DECREF(old);
            if (r < 0) {
                Py_DECREF(before);
                Py_DECREF(edit);
                return NULL;
            }
        }
        Py_DECREF(edit);
        edit = call2(KeyEdit, self, before);
        Py_DECREF(before);
        if (edit == NULL) {
            return NULL;
        }
    }
    if (PyDict_Update(self, new) < 0) {
        Py_DECREF(edit);
        return NULL;
    }
    notify = flag(t, notify_offset, "notify");
    if (notify <= 0) {
        Py_DECREF(edit);
        return notify < 0 ? NULL : Py_NewRef(Py_None);
    }
    Py_INCREF(args);
    if (changed(t, self, s_update, args, edit) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
dict_update(PyObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *t, *new, *result;
    RLockObject *lock;
    if (PyTuple_GET_SIZE(args) != 1 || (kwds && PyDict_GET_SIZE(kwds)) ||
            !PyDict_CheckExact(PyTuple_GET_ITEM(args, 0)) ||
            (t = fast_tracker(self, dict_wrapper,
                              dict_tracker_offset)) == NULL) {
        return call_with_self(py_dict_update, self, args, kwds);
    }
    /* dict(args[0]): a copy, whose values are wrapped in place. */
    new = PyDict_Copy(PyTuple_GET_ITEM(args, 0));
    if (new == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    lock = lock_tracker(t);
    if (lock == NULL) {
        Py_DECREF(new);
        Py_DECREF(t);
        return NULL;
    }
    result = dict_update_locked(self, t, args, new);
    if (unlock_tracker(lock, result == NULL ? -1 : 0) < 0) {
        Py_CLEAR(result);
    }
    Py_DECREF(new);
    Py_DECREF(t);
    return result;
}

static PyMappingMethods dict_base_as_mapping = {
    .mp_ass_subscript = dict_ass_subscript,
};

static PyMethodDef dict_base_methods[] = {
    {"update", (PyCFunction)(void (*)(void))dict_update,
     METH_VARARGS | METH_KEYWORDS,
     "D.update([E, ]**F): as dict.update, tracked."},
    {NULL, NULL}
};

static PyTypeObject DictBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "linksync.tracked._speedups.DictBase",
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The C part of DictWrapper (no fields of its own).",
    .tp_as_mapping = &dict_base_as_mapping,
    .tp_methods = dict_base_methods,
};

/* -- list ----------------------------------------------------------------------- */

/* SliceEdit(self, at, [old] (or [] when NULL), [new]) */
static PyObject *
slice_edit(PyObject *self, Py_ssize_t at, PyObject *old, PyObject *new)
{
    PyObject *start = PyLong_FromSsize_t(at), *edit = NULL;
    PyObject *before = old ? PyList_New(1) : PyList_New(0);
    PyObject *after = PyList_New(1);
    if (start != NULL && before != NULL && after != NULL) {
        if (old != NULL) {
            Py_INCREF(old);
            PyList_SET_ITEM(before, 0, old);
        }
        Py_INCREF(new);
        PyList_SET_ITEM(after, 0, new);
        edit = call4(SliceEdit, self, start, before, after);
    }
    Py_XDECREF(start);
    Py_XDECREF(before);
    Py_XDECREF(after);
    return edit;
}

static int
list_setitem_locked(PyObject *self, PyObject *t, PyObject *index,
                    Py_ssize_t at, PyObject *value)
{
    PyObject *v, *old, *edit, *key;
    int notify, record, r;
    key = PyLong_FromSsize_t(at);
    if (key == NULL) {
        return -1;
    }
    v = wrap(t, value, self, key);
    Py_DECREF(key);
    if (v == NULL) {
        return -1;
    }
    notify = flag(t, notify_offset, "notify");
    if (notify <= 0) {
        if (notify < 0) {
            Py_DECREF(v);
            return -1;
        }
        return PyList_SetItem(self, at, v);     /* steals v */
    }
    if (at >= PyList_GET_SIZE(self)) {
        /* wrap() ran code that shortened the list; as list.__getitem__ */
        Py_DECREF(v);
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return -1;
    }
    old = PyList_GET_ITEM(self, at);
    Py_INCREF(old);
    Py_INCREF(v);
    if (PyList_SetItem(self, at, v) < 0) {      /* steals a reference */
        Py_DECREF(old);
        Py_DECREF(v);
        return -1;
    }
    record = flag(t, record_offset, "record");
    if (record < 0) {
        edit = NULL;
    }
    else if (record) {
        edit = slice_edit(self, at, old, v);
    }
    else {
        edit = Py_NewRef(Py_None);
    }
    Py_DECREF(old);
    r = changed(t, self, s_setitem, edit ? PyTuple_Pack(2, index, v) : NULL,
                edit);
    Py_DECREF(v);
    return r;
}

static int
list_ass_subscript(PyObject *self, PyObject *index, PyObject *value)
{
    PyObject *t;
    RLockObject *lock;
    Py_ssize_t at;
    int r;
    if (value == NULL) {
        return py_list_delitem ? result_status(call2(py_list_delitem, self,
                                                     index)) : not_set_up();
    }
    if (!PyLong_CheckExact(index) ||
            (t = fast_tracker(self, list_wrapper,
                              list_tracker_offset)) == NULL) {
        goto fallback;
    }
    at = PyLong_AsSsize_t(index);
    if (at == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_DECREF(t);
        goto fallback;
    }
    lock = lock_tracker(t);
    if (lock == NULL) {
        Py_DECREF(t);
        return -1;
    }
    if (at < 0) {
        at += PyList_GET_SIZE(self);
    }
    if (at < 0 || at >= PyList_GET_SIZE(self)) {
        PyErr_SetString(PyExc_IndexError,
                        "list assignment index out of range");
        r = unlock_tracker(lock, -1);
    }
    else {
        r = unlock_tracker(lock, list_setitem_locked(self, t, index, at,
                                                     value));
    }
    Py_DECREF(t);
    return r;
fallback:
    return py_list_setitem ? result_status(call3(py_list_setitem, self, index,
                                                 value)) : not_set_up();
}

/* PySequence_SetItem() and PySequence_DelItem() come here. */
static int
list_ass_item(PyObject *self, Py_ssize_t i, PyObject *value)
{
    PyObject *index = PyLong_FromSsize_t(i);
    int r;
    if (index == NULL) {
        return -1;
    }
    r = list_ass_subscript(self, index, value);
    Py_DECREF(index);
    return r;
}

static PyObject *
list_append_locked(PyObject *self, PyObject *t, PyObject *value)
{
    PyObject *v, *edit;
    Py_ssize_t start = PyList_GET_SIZE(self);
    int notify, record, r;
    if (is_atomic(value)) {
        v = Py_NewRef(value);
    }
    else {
        PyObject *key = PyLong_FromSsize_t(start);
        if (key == NULL) {
            return NULL;
        }
        v = wrap(t, value, self, key);
        Py_DECREF(key);
        if (v == NULL) {
            return NULL;
        }
    }
    r = PyList_Append(self, v);
    if (r < 0) {
        goto error;
    }
    notify = flag(t, notify_offset, "notify");
    if (notify <= 0) {
        Py_DECREF(v);
        return notify < 0 ? NULL : Py_NewRef(Py_None);
    }
    record = flag(t, record_offset, "record");
    if (record < 0) {
        goto error;
    }
    if (record) {
        edit = slice_edit(self, start, NULL, v);
        if (edit == NULL) {
            goto error;
        }
    }
    else {
        edit = Py_NewRef(Py_None);
    }
    r = changed(t, self, s_append, PyTuple_Pack(1, v), edit);
    Py_DECREF(v);
    return r < 0 ? NULL : Py_NewRef(Py_None);
error:
    Py_DECREF(v);
    return NULL;
}

static PyObject *
list_append(PyObject *self, PyObject *value)
{
    return run_locked(self, value, list_wrapper, list_tracker_offset,
                      py_list_append, list_append_locked);
}

/* sort(): in C only when nobody is notified (no edit to make); else, or
 * with positional arguments, the Python method (which takes the lock
 * again: it is re-entrant). */
static PyObject *
list_sort_method(PyObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *t, *result;
    RLockObject *lock;
    int notify;
    if (PyTuple_GET_SIZE(args) != 0 ||
            (t = fast_tracker(self, list_wrapper,
                              list_tracker_offset)) == NULL) {
        return call_with_self(py_list_sort, self, args, kwds);
    }
    lock = lock_tracker(t);
    if (lock == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    notify = flag(t, notify_offset, "notify");
    result = notify < 0 ? NULL : call_with_self(
        notify ? py_list_sort : list_sort, self, args, kwds);
    if (unlock_tracker(lock, result == NULL ? -1 : 0) < 0) {
        Py_CLEAR(result);
    }
    Py_DECREF(t);
    return result;
}

static PyMappingMethods list_base_as_mapping = {
    .mp_ass_subscript = list_ass_subscript,
};

static PySequenceMethods list_base_as_sequence = {
    .sq_ass_item = list_ass_item,
};

static PyMethodDef list_base_methods[] = {
    {"append", (PyCFunction)list_append, METH_O,
     "Append object to the end of the list, tracked."},
    {"sort", (PyCFunction)(void (*)(void))list_sort_method,
     METH_VARARGS | METH_KEYWORDS,
     "Sort the list in place (key=None, reverse=False), tracked."},
    {NULL, NULL}
};

static PyTypeObject ListBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "linksync.tracked._speedups.ListBase",
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The C part of ListWrapper (no fields of its own).",
    .tp_as_mapping = &list_base_as_mapping,
    .tp_as_sequence = &list_base_as_sequence,
    .tp_methods = list_base_methods,
};

/* -- set ----------------------------------------------------------------------- */

static PyObject *
set_add_locked(PyObject *self, PyObject *t, PyObject *element)
{
    PyObject *added, *removed, *edit;
    int notify, record, present;
    notify = flag(t, notify_offset, "notify");
    if (notify <= 0) {
        if (notify < 0 || PySet_Add(self, element) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    present = PySet_Contains(self, element);
    if (present < 0) {
        return NULL;
    }
    added = PySet_New(NULL);
    if (added == NULL) {
        return NULL;
    }
    if (!present && PySet_Add(added, element) < 0) {
        Py_DECREF(added);
        return NULL;
    }
    if (PySet_Add(self, element) < 0) {
        Py_DECREF(added);
        return NULL;
    }
    record = flag(t, record_offset, "record");
    if (record < 0) {
        Py_DECREF(added);
        return NULL;
    }
    if (record) {
        removed = PySet_New(NULL);
        if (removed == NULL) {
            Py_DECREF(added);
            return NULL;
        }
        edit = call3(SetEdit, self, added, removed);
        Py_DECREF(removed);
        if (edit == NULL) {
            Py_DECREF(added);
            return NULL;
        }
    }
    else {
        edit = Py_NewRef(Py_None);
    }
    Py_DECREF(added);
    if (changed(t, self, s_add, PyTuple_Pack(1, element), edit) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
set_add(PyObject *self, PyObject *element)
{
    return run_locked(self, element, set_wrapper, set_tracker_offset,
                      py_set_add, set_add_locked);
}

static PyMethodDef set_base_methods[] = {
    {"add", (PyCFunction)set_add, METH_O,
     "Add an element to a set, tracked."},
    {NULL, NULL}
};

static PyTypeObject SetBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "linksync.tracked._speedups.SetBase",
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The C part of SetWrapper (no fields of its own).",
    .tp_methods = set_base_methods,
};

/* -- setup() ---------------------------------------------------------------------- */

/* The offset of the object slot `name` of `cls` (a member descriptor made
 * by __slots__), or -1 with an exception. */
static Py_ssize_t
slot_offset(PyTypeObject *cls, const char *name)
{
    PyObject *descr = PyObject_GetAttrString((PyObject *)cls, name);
    PyMemberDef *member;
    Py_ssize_t offset;
    if (descr == NULL) {
        return -1;
    }
    if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", cls->tp_name,
                     name);
        Py_DECREF(descr);
        return -1;
    }
    member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != T_OBJECT_EX ||
            !PyType_IsSubtype(cls, PyDescr_TYPE(descr))) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not an object slot",
                     cls->tp_name, name);
        Py_DECREF(descr);
        return -1;
    }
    offset = member->offset;
    Py_DECREF(descr);
    return offset;
}

static PyObject *
fallback(PyObject *fallbacks, const char *name)
{
    PyObject *func = PyDict_GetItemString(fallbacks, name);
    if (func == NULL) {
        PyErr_Format(PyExc_KeyError, "no fallback for %s", name);
        return NULL;
    }
    Py_INCREF(func);
    return func;
}

#define REPLACE(var, value) do { PyObject *_old = (PyObject *)(var); \
    (var) = (value); Py_XDECREF(_old); } while (0)

static PyObject *
setup(PyObject *module, PyObject *args)
{
    PyTypeObject *tracker, *d, *l, *s;
    PyObject *key_edit, *slice_edit, *set_edit, *missing, *fallbacks;
    Py_ssize_t offsets[6];
    PyObject *funcs[8];
    static const char *names[8] = {
        "DictWrapper.__setitem__", "DictWrapper.__delitem__",
        "DictWrapper.update", "ListWrapper.__setitem__",
        "ListWrapper.__delitem__", "ListWrapper.append", "ListWrapper.sort",
        "SetWrapper.add"};
    if (!PyArg_ParseTuple(args, "O!O!O!O!OOOOO!:setup",
                          &PyType_Type, &tracker, &PyType_Type, &d,
                          &PyType_Type, &l, &PyType_Type, &s,
                          &key_edit, &slice_edit, &set_edit, &missing,
                          &PyDict_Type, &fallbacks)) {
        return NULL;
    }
    if (!PyType_IsSubtype(d, &DictBaseType) ||
            !PyType_IsSubtype(l, &ListBaseType) ||
            !PyType_IsSubtype(s, &SetBaseType)) {
        PyErr_SetString(PyExc_TypeError,
                        "the wrappers must derive from DictBase, ListBase "
                        "and SetBase");
        return NULL;
    }
    if ((offsets[0] = slot_offset(tracker, "lock")) < 0 ||
            (offsets[1] = slot_offset(tracker, "notify")) < 0 ||
            (offsets[2] = slot_offset(tracker, "record")) < 0 ||
            (offsets[3] = slot_offset(d, "_tracker")) < 0 ||
            (offsets[4] = slot_offset(l, "_tracker")) < 0 ||
            (offsets[5] = slot_offset(s, "_tracker")) < 0) {
        return NULL;
    }
    for (int i = 0; i < 8; i++) {
        funcs[i] = fallback(fallbacks, names[i]);
        if (funcs[i] == NULL) {
            for (int j = 0; j < i; j++) {
                Py_DECREF(funcs[j]);
            }
            return NULL;
        }
    }
    lock_offset = offsets[0];
    notify_offset = offsets[1];
    record_offset = offsets[2];
    dict_tracker_offset = offsets[3];
    list_tracker_offset = offsets[4];
    set_tracker_offset = offsets[5];
    Py_INCREF(tracker);
    REPLACE(tracker_type, tracker);
    Py_INCREF(d);
    REPLACE(dict_wrapper, d);
    Py_INCREF(l);
    REPLACE(list_wrapper, l);
    Py_INCREF(s);
    REPLACE(set_wrapper, s);
    REPLACE(KeyEdit, Py_NewRef(key_edit));
    REPLACE(SliceEdit, Py_NewRef(slice_edit));
    REPLACE(SetEdit, Py_NewRef(set_edit));
    REPLACE(MISSING, Py_NewRef(missing));
    REPLACE(py_dict_setitem, funcs[0]);
    REPLACE(py_dict_delitem, funcs[1]);
    REPLACE(py_dict_update, funcs[2]);
    REPLACE(py_list_setitem, funcs[3]);
    REPLACE(py_list_delitem, funcs[4]);
    REPLACE(py_list_append, funcs[5]);
    REPLACE(py_list_sort, funcs[6]);
    REPLACE(py_set_add, funcs[7]);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"setup", setup, METH_VARARGS,
     "setup(Tracker, DictWrapper, ListWrapper, SetWrapper, KeyEdit, "
     "SliceEdit, SetEdit, MISSING, fallbacks): called once by "
     "linksync.tracked.wrappers."},
    {NULL, NULL}
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "linksync.tracked._speedups",
    .m_doc = "The hot mutations of tracked structures, in C (see "
             "linksync.tracked.wrappers for the reference in Python).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *m, *atomic;
    DictBaseType.tp_base = &PyDict_Type;
    ListBaseType.tp_base = &PyList_Type;
    SetBaseType.tp_base = &PySet_Type;
    if (PyType_Ready(&RLockType) < 0 || PyType_Ready(&DictBaseType) < 0 ||
            PyType_Ready(&ListBaseType) < 0 ||
            PyType_Ready(&SetBaseType) < 0) {
        return NULL;
    }
    s_wrap = PyUnicode_InternFromString("wrap");
    s_changed = PyUnicode_InternFromString("changed");
    s_setitem = PyUnicode_InternFromString("__setitem__");
    s_update = PyUnicode_InternFromString("update");
    s_append = PyUnicode_InternFromString("append");
    s_add = PyUnicode_InternFromString("add");
    list_sort = PyObject_GetAttrString((PyObject *)&PyList_Type, "sort");
    if (!s_wrap || !s_changed || !s_setitem || !s_update || !s_append ||
            !s_add || !list_sort) {
        return NULL;
    }
    m = PyModule_Create(&module_def);
    if (m == NULL) {
        return NULL;
    }
    atomic = Py_BuildValue("(OOOOOOOOO)", &PyUnicode_Type, &PyLong_Type,
                           &PyFloat_Type, &PyBool_Type, Py_TYPE(Py_None),
                           &PyBytes_Type, &PyComplex_Type, &PyTuple_Type,
                           &PyFrozenSet_Type);
    if (atomic == NULL ||
            PyModule_AddObject(m, "ATOMIC", PyFrozenSet_New(atomic)) < 0 ||
            PyModule_AddObjectRef(m, "RLock", (PyObject *)&RLockType) < 0 ||
            PyModule_AddObjectRef(m, "DictBase",
                                  (PyObject *)&DictBaseType) < 0 ||
            PyModule_AddObjectRef(m, "ListBase",
                                  (PyObject *)&ListBaseType) < 0 ||
            PyModule_AddObjectRef(m, "SetBase",
                                  (PyObject *)&SetBaseType) < 0) {
        Py_XDECREF(atomic);
        Py_DECREF(m);
        return NULL;
    }
    Py_DECREF(atomic);
    return m;
}
