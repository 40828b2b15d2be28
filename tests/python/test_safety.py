"""Memory-safety tests of the Python binding (bindings/python/iadsr.py):
the binding must never let the library read or write memory the caller
does not own, nor free a handle a call is still using.

Run from the repository root, with and without numpy:
  /usr/bin/python3 -m unittest discover -s tests/python
  IADSR_PY_NO_NUMPY=1 /usr/bin/python3 -m unittest discover -s tests/python

Scenarios that crashed (or corrupted memory) before the binding guarded
against them run in a child interpreter, so a segfault shows as a failed
test instead of killing the test runner.
"""

import array
import gc
import math
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest

_HERE = os.path.dirname(os.path.abspath(__file__))
# IADSR_TEST_REPO / IADSR_TEST_INSTALLED=1: as in test_iadsr.py (the
# installed iadsr is tested, here and in the child interpreters).
_REPO = os.path.abspath(os.environ.get('IADSR_TEST_REPO')
                        or os.path.join(_HERE, '..', '..'))
_INSTALLED = os.environ.get('IADSR_TEST_INSTALLED', '') not in ('', '0')
_BINDINGS = os.path.join(_REPO, 'bindings', 'python')
if not _INSTALLED:
    sys.path.insert(0, _BINDINGS)

import iadsr  # noqa: E402

np = iadsr.np
needs_numpy = unittest.skipUnless(iadsr.HAVE_NUMPY, 'numpy not used')
stdlib_only = unittest.skipIf(iadsr.HAVE_NUMPY, 'stdlib path only')
N_ITEMS = 40
I32, I64 = iadsr._I32, iadsr._I64

# Shared by every child interpreter: the binding under test, numpy mode as
# in the parent (the environment, IADSR_PY_NO_NUMPY included, is inherited).
_CHILD_PRELUDE = '''
import array, gc, math, os, random, sys, threading, time
%s
import iadsr
np = iadsr.np
I32, I64 = iadsr._I32, iadsr._I64

def seqs_of(n_users, n_items, seed, lo=5, hi=20):
    rng = random.Random(seed)
    return [[rng.randrange(1, n_items + 1)
             for _ in range(rng.randrange(lo, hi))] for _ in range(n_users)]

def tolist(x):
    return x.tolist() if hasattr(x, 'tolist') else list(x)

def flat(x):
    """Every value of a (batch) result, row-major, as one list."""
    return x.ravel().tolist() if hasattr(x, 'ravel') else list(x)
''' % ('' if _INSTALLED else 'sys.path.insert(0, %r)' % _BINDINGS)


def run_child(test, code, timeout=240):
    """Run code in a fresh interpreter; it must exit 0 and print CHILD-OK.
    A negative return code is a signal (a crash of the old binding)."""
    env = dict(os.environ)
    env.setdefault('OPENBLAS_NUM_THREADS', '1')
    r = subprocess.run([sys.executable, '-c',
                        _CHILD_PRELUDE + textwrap.dedent(code)],
                       env=env, capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode < 0:
        test.fail('child crashed with signal %d\nstdout:\n%s\nstderr:\n%s'
                  % (-r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    test.assertEqual(r.returncode, 0, 'child failed\nstdout:\n%s\nstderr:\n%s'
                     % (r.stdout[-3000:], r.stderr[-3000:]))
    test.assertIn('CHILD-OK', r.stdout)
    return r.stdout


def make_seqs(n_users, n_items=N_ITEMS, seed=1):
    rng = random.Random(seed)
    return [[rng.randrange(1, n_items + 1)
             for _ in range(rng.randrange(4, 12))] for _ in range(n_users)]


def tolist(x):
    return x.tolist() if hasattr(x, 'tolist') else list(x)


def i32(values):
    """int32 array of the active mode (numpy, or array.array)."""
    return np.array(values, np.int32) if np is not None else \
        array.array(I32, values)


def i64(values):
    return np.array(values, np.int64) if np is not None else \
        array.array(I64, values)


# ---------------------------------------------------------------------------
# 1. CSR inputs and output buffers are validated before the library sees them
# ---------------------------------------------------------------------------

class TestCSRValidation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = iadsr.Model.create(N_ITEMS, dim=8, max_seq_len=8)
        cls.ctx = iadsr.Context(cls.model)

    def test_offsets_past_items_child(self):
        # Used to segfault (offsets[-1] = 10**9: the library read a
        # gigabyte past a 3-item array) or read the caller's neighbouring
        # memory (offsets[-1] = 4).  Every CSR entry point must refuse it.
        run_child(self, '''
            def arrays(items, offsets):
                if np is not None:
                    return np.array(items, np.int32), np.array(offsets,
                                                               np.int64)
                return array.array(I32, items), array.array(I64, offsets)

            m = iadsr.Model.create(20, dim=8, max_seq_len=8)
            ctx = m.context()
            cases = [([1, 2, 3], [0, 10 ** 9]), ([1, 2, 3], [0, 4]),
                     ([1, 2, 3], [0, 1, 10 ** 9]),
                     # the end is right but a middle offset is far out:
                     # the batch scorer used to read items[0 : 10**9]
                     ([1, 2, 3], [0, 10 ** 9, 3]),
                     ([1, 2, 3], [0, 2 ** 62, 3])]
            for items, offsets in cases:
                for make in (arrays, lambda i, o: (i, o)):  # arrays, lists
                    it, off = make(items, offsets)
                    for what, call in (
                            ('from_csr', lambda: iadsr.Dataset.from_csr(
                                it, off)),
                            ('from_csr borrow', lambda: iadsr.Dataset.from_csr(
                                it, off, borrow=True)),
                            ('score_batch', lambda: ctx.score_batch(
                                iadsr.CSR(it, off))),
                            ('topk_batch', lambda: ctx.topk_batch(
                                iadsr.CSR(it, off), 3))):
                        try:
                            call()
                        except ValueError as e:
                            assert 'offsets' in str(e), (what, str(e))
                        else:
                            raise AssertionError('%s accepted %s' %
                                                 (what, offsets))
            print('CHILD-OK')
            ''')

    def _bad_csr(self):
        """(items, offsets, words expected in the message)."""
        return [([1, 2, 3], [0, 4], 'offsets[-1] = 4 but items has 3'),
                ([1, 2, 3], [0, 2], 'offsets[-1] = 2 but items has 3'),
                ([1, 2, 3], [1, 3], 'offsets[0] = 1'),
                ([1, 2, 3], [0, 3, 1, 3], 'offsets decrease at user 1'),
                ([1, 2, 3], [], 'empty'),
                ([1, 2, 3], [-1, 3], 'offsets[0] = -1')]

    def test_dataset_from_csr_refuses_bad_offsets(self):
        for items, offsets, words in self._bad_csr():
            for it, off in ((items, offsets), (i32(items), i64(offsets))):
                for borrow in (False, True):
                    with self.assertRaises(ValueError) as cm:
                        iadsr.Dataset.from_csr(it, off, borrow=borrow)
                    self.assertIn(words, str(cm.exception))

    def test_batch_scoring_refuses_bad_offsets(self):
        for items, offsets, words in self._bad_csr():
            for it, off in ((items, offsets), (i32(items), i64(offsets))):
                csr = iadsr.CSR(it, off)
                with self.assertRaises(ValueError) as cm:
                    self.ctx.score_batch(csr)
                self.assertIn(words, str(cm.exception))
                with self.assertRaises(ValueError) as cm:
                    self.ctx.topk_batch(csr, 3)
                self.assertIn(words, str(cm.exception))

    @needs_numpy
    def test_offsets_must_be_1d(self):
        items = np.array([1, 2, 3], np.int32)
        with self.assertRaises(ValueError):
            iadsr.Dataset.from_csr(items, np.array([[0, 3]], np.int64))
        with self.assertRaises(ValueError):
            self.ctx.score_batch(iadsr.CSR(items, np.array([[0, 3]])))
        with self.assertRaises(ValueError):
            iadsr.Dataset.from_csr(items.reshape(1, 3), [0, 3])

    def test_valid_csr_still_accepted(self):
        seqs = make_seqs(30)
        items, offsets = iadsr._build_csr(seqs)
        ds = iadsr.Dataset.from_csr(items, offsets, n_items=N_ITEMS)
        self.assertEqual(ds.to_lists(), seqs)
        flat = [i for s in seqs for i in s]
        offs = [0]
        for s in seqs:
            offs.append(offs[-1] + len(s))
        ds2 = iadsr.Dataset.from_csr(flat, offs)  # lists: copied
        self.assertEqual(ds2.to_lists(), seqs)
        ref = tolist(self.ctx.score_batch(seqs))
        self.assertEqual(tolist(self.ctx.score_batch(iadsr.CSR(flat, offs))),
                         ref)
        # users with no items are fine in a dataset
        ds3 = iadsr.Dataset.from_csr([1, 2], [0, 0, 2, 2])
        self.assertEqual(ds3.to_lists(), [[], [1, 2], []])

    @needs_numpy
    def test_out_buffers_numpy(self):
        seqs = make_seqs(5)
        n1 = N_ITEMS + 1
        good = np.empty((5, n1), np.float32)
        self.assertIs(self.ctx.score_batch(seqs, out=good), good)
        unaligned = np.empty(5 * n1 * 4 + 1, np.uint8)[1:].view(np.float32)
        ro = np.empty((5, n1), np.float32)
        ro.flags.writeable = False
        for out in (np.empty((4, n1), np.float32),      # a row short
                    np.empty((5, n1 - 1), np.float32),  # a column short
                    np.empty((6, n1), np.float32),
                    np.empty(5 * n1, np.float32),       # flat
                    np.empty((5, n1), np.float64),
                    np.empty((5, n1), '>f4'),
                    np.empty((n1, 5), np.float32).T,    # Fortran order
                    np.empty((5, 2 * n1), np.float32)[:, ::2],
                    unaligned.reshape(5, n1), ro,
                    array.array('f', bytes(4 * 5 * n1))):
            with self.assertRaises(ValueError):
                self.ctx.score_batch(seqs, out=out)
        ids, sc = np.empty((5, 3), np.int32), np.empty((5, 3), np.float32)
        r = self.ctx.topk_batch(seqs, 3, ids_out=ids, scores_out=sc)
        self.assertIs(r[0], ids)
        self.assertIs(r[1], sc)
        for kw in (dict(ids_out=np.empty((5, 3), np.int64)),
                   dict(ids_out=np.empty((5, 3), np.float32)),
                   dict(ids_out=np.empty((5, 2), np.int32)),
                   dict(ids_out=np.empty((4, 3), np.int32)),
                   dict(ids_out=np.empty(15, np.int32)),
                   dict(scores_out=np.empty((5, 2), np.float32)),
                   dict(scores_out=np.empty((5, 3), np.float64))):
            with self.assertRaises(ValueError):
                self.ctx.topk_batch(seqs, 3, **kw)
        with self.assertRaises(ValueError):
            self.ctx.topk(seqs[0], 3, ids_out=np.empty(2, np.int32))
        with self.assertRaises(ValueError):
            self.ctx.topk(seqs[0], 3, scores_out=np.empty(2, np.float32))

    @stdlib_only
    def test_out_buffers_stdlib(self):
        seqs = make_seqs(5)
        n1 = N_ITEMS + 1
        good = array.array('f', bytes(4 * 5 * n1))
        self.assertIs(self.ctx.score_batch(seqs, out=good), good)
        for out in (array.array('f', bytes(4 * (5 * n1 - 1))),
                    array.array('f', bytes(4 * 6 * n1)),
                    array.array('d', bytes(8 * 5 * n1)),
                    [0.0] * (5 * n1), bytearray(4 * 5 * n1)):
            with self.assertRaises(ValueError):
                self.ctx.score_batch(seqs, out=out)
        for kw in (dict(ids_out=array.array(I64, [0] * 15)),
                   dict(ids_out=array.array(I32, [0] * 14)),
                   dict(ids_out=array.array('f', [0] * 15)),
                   dict(scores_out=array.array('f', [0] * 14)),
                   dict(scores_out=array.array('d', [0] * 15))):
            with self.assertRaises(ValueError):
                self.ctx.topk_batch(seqs, 3, **kw)

    def test_lent_array_cannot_be_resized(self):
        # A borrowed array.array that grows is reallocated: the library
        # would then read freed memory.  The binding holds a buffer export
        # on it, so resizing raises BufferError instead.
        items = array.array(I32, [1, 2, 3, 4])
        offsets = array.array(I64, [0, 2, 4])
        ds = iadsr.Dataset.from_csr(items, offsets, borrow=True)
        with self.assertRaises(BufferError):
            items.extend(range(1, 10000))
        with self.assertRaises(BufferError):
            offsets.append(4)
        self.assertEqual(ds.to_lists(), [[1, 2], [3, 4]])


# ---------------------------------------------------------------------------
# 2. and 3. close() while a call uses the handle
# ---------------------------------------------------------------------------

class TestCloseDuringCall(unittest.TestCase):
    def test_model_close_while_other_thread_evaluates_child(self):
        # Was a use-after-free: close() freed the model while a call on
        # another thread (GIL released) was still reading its weights; with
        # a model this large (26 MB, its own mapping) it crashed every time.
        # One thread evaluates (and scores), one serialises the model.
        out = run_child(self, '''
            N = 100000
            ds = iadsr.Dataset.from_sequences(seqs_of(40, N, 1), n_items=N)
            deferred = 0
            for trial in range(3):
                m = iadsr.Model.create(N, dim=64, max_seq_len=16, seed=trial)
                h = m._h
                size = len(m.to_bytes())

                def evaluating(log):
                    while True:
                        r = iadsr.evaluate(m, ds)
                        assert r['n_users'] == 40, r
                        m.context().score([1, 2, 3])
                        log.append('ok')

                def serialising(log):
                    while True:
                        assert len(m.to_bytes()) == size
                        log.append('ok')

                def run(target, log, started):
                    started.set()
                    try:
                        target(log)
                    except ValueError as e:
                        log.append(str(e))
                    except BaseException as e:
                        log.append('unexpected %r' % (e,))

                logs, th = [], []
                for target in (evaluating, serialising):
                    log, started = [], threading.Event()
                    logs.append(log)
                    th.append(threading.Thread(target=run,
                                               args=(target, log, started)))
                    th[-1].start()
                    started.wait()
                time.sleep(0.02 + 0.04 * trial)
                m.close()
                deferred += h.ptr is not None  # a call was still running
                for t in th:
                    t.join()
                for log in logs:
                    assert log and log[-1] == 'Model is closed', log
                    assert all(x == 'ok' for x in log[:-1]), log
                assert h.ptr is None, 'not freed after the last call'
                for call in (lambda: iadsr.evaluate(m, ds),
                             lambda: m.context(), lambda: m.n_items,
                             lambda: m.to_bytes(),
                             lambda: m.item_embeddings(),
                             lambda: iadsr.Trainer(ds, m)):
                    try:
                        call()
                    except ValueError as e:
                        assert 'Model is closed' in str(e), str(e)
                    else:
                        raise AssertionError('a closed model was used')
            print('deferred', deferred)
            print('CHILD-OK')
            ''')
        self.assertIn('deferred', out)

    def test_context_and_dataset_close_while_in_use_child(self):
        run_child(self, '''
            N = 5000
            seqs = seqs_of(400, N, 2)
            ds = iadsr.Dataset.from_sequences(seqs, n_items=N)
            m = iadsr.Model.create(N, dim=32, max_seq_len=16)
            for victim in ('ctx', 'ds'):
                ctx = m.context()
                d2 = iadsr.Dataset.from_sequences(seqs, n_items=N)
                obj = ctx if victim == 'ctx' else d2
                h = obj._h
                started = threading.Event()
                log = []

                def work():
                    try:
                        while True:
                            started.set()
                            if victim == 'ctx':
                                ctx.score_batch(seqs)
                            else:
                                iadsr.evaluate(m, d2)
                            log.append('ok')
                    except ValueError as e:
                        log.append(str(e))
                    except BaseException as e:
                        log.append('unexpected %r' % (e,))

                t = threading.Thread(target=work)
                t.start()
                started.wait()
                time.sleep(0.03)
                obj.close()
                t.join()
                assert log[-1].endswith('is closed'), log
                assert all(x == 'ok' for x in log[:-1]), log
                assert h.ptr is None
            print('CHILD-OK')
            ''')

    def test_trainer_close_in_fit_callback_child(self):
        # Was a use-after-free: the trainer was freed inside its own fit.
        run_child(self, '''
            seqs = seqs_of(300, 50, 3)
            ds = iadsr.Dataset.from_sequences(seqs, n_items=50)
            m = iadsr.Model.create(50, dim=16, max_seq_len=16)
            for mode in ('return', 'raise', 'continue'):
                t = iadsr.Trainer(ds, m, max_epochs=4, batch_size=32)
                h = t._h
                seen = []

                def cb(info):
                    seen.append(info.epoch)
                    t.close()
                    assert t.closed
                    assert h.ptr is not None  # deferred: fit still runs
                    if mode == 'raise':
                        raise KeyError('stop')
                    return mode == 'return'
                try:
                    r = t.fit(callback=cb)
                except KeyError:
                    assert mode == 'raise'
                else:
                    assert mode != 'raise'
                    # closing stops training after the current epoch
                    assert r is False, r
                assert seen == [1], seen
                assert h.ptr is None, 'trainer not freed when fit returned'
                for call in (t.run_epoch, t.fit, t.snapshot,
                             lambda: t.epochs_done):
                    try:
                        call()
                    except ValueError as e:
                        assert 'Trainer is closed' in str(e), str(e)
                    else:
                        raise AssertionError('a closed trainer was used')
            print('CHILD-OK')
            ''')

    def test_trainer_close_from_other_thread_child(self):
        run_child(self, '''
            seqs = seqs_of(300, 50, 4)
            ds = iadsr.Dataset.from_sequences(seqs, n_items=50)
            m = iadsr.Model.create(50, dim=16, max_seq_len=16)
            t = iadsr.Trainer(ds, m, max_epochs=10000, patience=0,
                              batch_size=32)
            h = t._h
            first = threading.Event()
            result = []

            def work():
                try:
                    result.append(t.fit(callback=lambda i: first.set()))
                except BaseException as e:
                    result.append(e)

            th = threading.Thread(target=work)
            th.start()
            first.wait()
            t.close()      # returns at once; fit stops after this epoch
            th.join(120)
            assert not th.is_alive(), 'fit did not stop after close()'
            assert result == [False], result
            assert h.ptr is None
            print('CHILD-OK')
            ''')

    def test_snapshot_inside_callback_still_allowed(self):
        ds = iadsr.Dataset.from_sequences(make_seqs(100), n_items=N_ITEMS)
        m = iadsr.Model.create(N_ITEMS, dim=8, max_seq_len=8)
        t = iadsr.Trainer(ds, m, max_epochs=2)
        snaps = []
        self.assertTrue(t.fit(callback=lambda i: snaps.append(t.snapshot())))
        self.assertEqual(len(snaps), 2)
        self.assertEqual(snaps[0].n_items, N_ITEMS)

    def test_views_and_pins(self):
        m = iadsr.Model.create(N_ITEMS, dim=8)
        h = m._h
        view = m.item_embeddings()
        m.close()
        self.assertIsNotNone(h.ptr)  # the view pins the memory
        with self.assertRaises(ValueError):
            m.item_embeddings()
        with self.assertRaises(ValueError):
            iadsr._Pin(h)  # no new pin on a closed handle
        del view
        gc.collect()
        self.assertIsNone(h.ptr)

    def test_wrong_object_type(self):
        ds = iadsr.Dataset.from_sequences(make_seqs(10), n_items=N_ITEMS)
        with self.assertRaises(TypeError):
            iadsr.evaluate('not a model', ds)


# ---------------------------------------------------------------------------
# 4. one Context (or Trainer) used by two threads at once
# ---------------------------------------------------------------------------

class TestOneThreadAtATime(unittest.TestCase):
    def test_shared_context_never_returns_wrong_rows_child(self):
        # Was silent: two threads shared the context's scratch and got each
        # other's rows.  Now every call is right or ConcurrentUseError.
        out = run_child(self, '''
            N = 300
            m = iadsr.Model.create(N, dim=32, max_seq_len=20, n_layers=2)
            ctx = m.context()
            batches = [seqs_of(150, N, 10 + i, 2, 30) for i in range(2)]
            ref = [flat(ctx.score_batch(b)) for b in batches]
            ref_k = [flat(ctx.topk_batch(b, 5)[0]) for b in batches]
            stats = {'ok': 0, 'busy': 0}
            lock = threading.Lock()
            bad, errors = [], []
            go = threading.Barrier(2)

            def close(a, b):
                return len(a) == len(b) and all(
                    x == y or math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-6)
                    for x, y in zip(a, b))

            def hammer(i):
                go.wait()
                for it in range(150):
                    try:
                        if it % 2:
                            got = flat(ctx.topk_batch(batches[i], 5)[0])
                            good = got == ref_k[i]
                        else:
                            got = flat(ctx.score_batch(batches[i]))
                            good = close(got, ref[i])
                        with lock:
                            stats['ok'] += 1
                        if not good:
                            bad.append((i, it))
                    except iadsr.ConcurrentUseError as e:
                        msg = str(e)
                        assert 'one thread at a time; create a Context per '\\
                            'thread' in msg, msg
                        with lock:
                            stats['busy'] += 1
                    except BaseException as e:
                        errors.append(repr(e))

            th = [threading.Thread(target=hammer, args=(i,))
                  for i in range(2)]
            for t in th:
                t.start()
            for t in th:
                t.join()
            assert not errors, errors[:3]
            assert not bad, 'wrong rows from a shared Context: %r' % bad[:5]
            assert stats['ok'] > 0, stats
            print(stats)
            print('CHILD-OK')
            ''')
        self.assertIn('busy', out)

    def _held_elsewhere(self, obj):
        """Hold obj's one-thread lock on another thread, as a running call
        would; returns a function that lets it go."""
        held, done = threading.Event(), threading.Event()

        def hold():
            with obj._busy:
                held.set()
                done.wait(30)
        th = threading.Thread(target=hold)
        th.start()
        if not held.wait(10):
            done.set()
            self.fail('could not hold the one-thread lock')

        def release():
            done.set()
            th.join()
        return release

    def test_context_second_thread_gets_clear_error(self):
        m = iadsr.Model.create(N_ITEMS, dim=8, max_seq_len=8)
        ctx = m.context()
        seqs = make_seqs(4)
        ref = tolist(ctx.score(seqs[0]))
        release = self._held_elsewhere(ctx)
        try:
            for call in (lambda: ctx.score(seqs[0]),
                         lambda: ctx.score_batch(seqs),
                         lambda: ctx.topk(seqs[0], 3),
                         lambda: ctx.topk_batch(seqs, 3)):
                with self.assertRaises(iadsr.ConcurrentUseError) as cm:
                    call()
                self.assertIsInstance(cm.exception, RuntimeError)
                self.assertIn('one thread at a time; create a Context per '
                              'thread', str(cm.exception))
            # another Context on the same model is fine meanwhile
            self.assertEqual(tolist(m.context().score(seqs[0])), ref)
        finally:
            release()
        self.assertEqual(tolist(ctx.score(seqs[0])), ref)  # usable again

    def test_trainer_second_thread_gets_clear_error(self):
        ds = iadsr.Dataset.from_sequences(make_seqs(50), n_items=N_ITEMS)
        m = iadsr.Model.create(N_ITEMS, dim=8, max_seq_len=8)
        t = iadsr.Trainer(ds, m, max_epochs=1)
        release = self._held_elsewhere(t)
        try:
            for call in (t.run_epoch, t.fit, t.snapshot):
                with self.assertRaises(iadsr.ConcurrentUseError) as cm:
                    call()
                self.assertIn('one thread at a time', str(cm.exception))
            self.assertEqual(t.epochs_done, 0)  # a plain read is allowed
        finally:
            release()
        self.assertTrue(math.isfinite(t.run_epoch()))


# ---------------------------------------------------------------------------
# 5. paths with an embedded NUL
# ---------------------------------------------------------------------------

class TestPathNul(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def test_every_path_argument(self):
        a = os.path.join(self.tmp, 'a.txt')
        with open(a, 'w') as fh:
            fh.write('1 1 2 3\n2 2 3\n')
        self.assertEqual(iadsr.Dataset.load(a).n_users, 2)
        m = iadsr.Model.create(5, dim=8)
        mp = os.path.join(self.tmp, 'm.iadsr')
        m.save(mp, fsync=False)
        data = [[0.5, 1.0], [1.0, 0.25], [0.0, 2.0], [1.0, 1.0],
                [2.0, 0.5]]
        sem = iadsr.Semantic.from_array(data)
        npy = os.path.join(self.tmp, 's.npy')
        sem.save_npy(npy, fsync=False)
        cut = {'a.txt': a, 'm.iadsr': mp, 's.npy': npy}
        for base, full in cut.items():
            for bad in (full + '\0junk', os.fsencode(full) + b'\0junk'):
                calls = {
                    'a.txt': [lambda: iadsr.Dataset.load(bad)],
                    'm.iadsr': [lambda: iadsr.Model.load(bad),
                                lambda: iadsr.load_checkpoint(bad)],
                    's.npy': [lambda: iadsr.Semantic.load_npy(bad)],
                }[base]
                for call in calls:
                    with self.assertRaises(ValueError) as cm:
                        call()
                    self.assertIn('embedded null byte', str(cm.exception))
        # savers: nothing may be written under the cut name
        for name, call in (
                ('new.iadsr', lambda p: m.save(p, fsync=False)),
                ('ck.iadsr', lambda p: iadsr.save_checkpoint(p, m,
                                                             fsync=False)),
                ('s2.npy', lambda p: sem.save_npy(p, fsync=False)),
                ('d.npy', lambda p: iadsr.npy_save(p, data, fsync=False))):
            target = os.path.join(self.tmp, name)
            for bad in (target + '\0.bak', pathlib.Path(target + '\0x')):
                with self.assertRaises(ValueError):
                    call(bad)
            self.assertFalse(os.path.exists(target), name)
        with self.assertRaises(ValueError):
            iadsr.Trainer.joint(iadsr.Dataset.load(a),
                                iadsr.Model.create(5, dim=8), npy + '\0x')


# ---------------------------------------------------------------------------
# 6. borrow=True never silently copies
# ---------------------------------------------------------------------------

class TestBorrow(unittest.TestCase):
    @needs_numpy
    def test_semantic_borrow_numpy(self):
        base = np.arange(1, 25, dtype=np.float32).reshape(6, 4)
        s = iadsr.Semantic.from_array(base, borrow=True)
        self.assertEqual(s._row_ptr(2), base.ctypes.data + 16)
        wide = np.zeros((6, 8), np.float32)
        wide[:, :4] = base
        s = iadsr.Semantic.from_array(wide[:, :4], borrow=True)  # rows ok
        self.assertEqual(s._row_ptr(2), wide.ctypes.data + 32)
        unaligned = np.frombuffer(b'\0' + base.tobytes(), np.float32,
                                  offset=1).reshape(6, 4)
        for bad in (base.astype(np.float64), np.asfortranarray(base),
                    wide[:, ::2], base[::-1], base.astype('>f4'),
                    unaligned, base.tolist()):
            with self.assertRaises(ValueError) as cm:
                iadsr.Semantic.from_array(bad, borrow=True)
            msg = str(cm.exception)
            self.assertIn('float32', msg)
            self.assertIn('contiguous', msg)
            self.assertIn('borrow=False', msg)
            # borrow=False still copies and converts
            c = iadsr.Semantic.from_array(bad)
            want = np.asarray(bad, np.float32)
            self.assertEqual(c.n_items, want.shape[0])
            self.assertEqual(c.row(1).tolist(), want[0].tolist())

    @stdlib_only
    def test_semantic_borrow_stdlib(self):
        flat = array.array('f', [float(i) for i in range(1, 25)])
        s = iadsr.Semantic.from_array((flat, (6, 4)), borrow=True)
        self.assertEqual(s._row_ptr(1), flat.buffer_info()[0])
        with self.assertRaises(BufferError):
            flat.append(1.0)  # lent: may not be reallocated
        rows = [[float(4 * r + c + 1) for c in range(4)] for r in range(6)]
        with self.assertRaises(ValueError) as cm:
            iadsr.Semantic.from_array(rows, borrow=True)
        self.assertIn('float32', str(cm.exception))
        self.assertIn('borrow=False', str(cm.exception))
        self.assertEqual(tolist(iadsr.Semantic.from_array(rows).row(2)),
                         rows[1])

    def test_dataset_borrow_refuses_conversion(self):
        items, offsets = [1, 2, 3, 4], [0, 1, 4]
        bad = [(items, offsets), (i32(items), offsets),
               (items, i64(offsets)),
               (array.array(I64, items), array.array(I64, offsets)),
               (array.array(I32, items), array.array(I32, offsets))]
        if np is not None:
            bad += [(np.array(items, np.int64), np.array(offsets, np.int64)),
                    (np.array(items, np.int32), np.array(offsets, np.int32)),
                    (np.array(items, np.int32).repeat(2)[::2],
                     np.array(offsets, np.int64)),
                    (np.array(items, '>i4'), np.array(offsets, np.int64))]
        for it, off in bad:
            with self.assertRaises(ValueError) as cm:
                iadsr.Dataset.from_csr(it, off, borrow=True)
            self.assertIn('borrow=True needs items as int32 and offsets as '
                          'int64', str(cm.exception))
            # borrow=False converts as before
            self.assertEqual(iadsr.Dataset.from_csr(it, off).to_lists(),
                             [[1], [2, 3, 4]])
        # the zero-copy forms are still lent
        for it, off in ((i32(items), i64(offsets)),
                        (array.array(I32, items), array.array(I64, offsets))):
            ds = iadsr.Dataset.from_csr(it, off, borrow=True)
            p, n = ds._user_items_ptr(1)
            base = it.ctypes.data if hasattr(it, 'ctypes') else \
                it.buffer_info()[0]
            self.assertEqual((p, n), (base + 4, 3))
        # from_sequences lends its own arrays, as before
        self.assertEqual(iadsr.Dataset.from_sequences([[1], [2, 3]])
                         .to_lists(), [[1], [2, 3]])


if __name__ == '__main__':
    unittest.main()
